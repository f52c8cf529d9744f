"""The run's written results: the rejects CSV and the Report (its JSON through files.py)."""

from __future__ import annotations

import csv
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from t360cli.files import write_atomic
from t360cli.tally import Counts

if TYPE_CHECKING:
    from _csv import Writer


class RejectsWriter:
    """CSV of rejected rows: source_file, source_line, reason, then the original columns.

    Created on the first reject only. Columns are the union of the inputs' headers in
    order of first appearance; a column first seen later (JSONL) is added by a rewrite
    at close.
    """

    FIXED = ["source_file", "source_line", "reason"]

    def __init__(self, path: Path, columns: list[str], files: list[str] | None = None) -> None:
        self.path = path
        self.columns = list(dict.fromkeys(columns))
        self.files = {name: i for i, name in enumerate(files or [])}  # sort order of sources
        self._last: tuple[int, int] = (-1, -1)
        self._unsorted = False
        self._file: IO[str] | None = None
        self._writer: Writer | None = None
        self._grew = False
        self._lock = threading.Lock()  # the sender's refusals arrive from another thread

    def write(self, source: str, line: int, reason: str, cells: dict[str, object]) -> None:
        with self._lock:
            self._write(source, line, reason, cells)

    def _write(self, source: str, line: int, reason: str, cells: dict[str, object]) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.FIXED + self.columns)
        for key in cells:
            if key not in self.columns:
                self.columns.append(key)
                self._grew = True
        where = self._key(source, line)
        self._unsorted |= where < self._last  # a server refusal of an earlier line
        self._last = max(self._last, where)
        row = [source, line, reason] + ["" if cells.get(c) is None else cells.get(c) for c in self.columns]
        self._writer.writerow(row)

    def close(self) -> Path | None:
        if self._file is None:
            return None
        self._file.close()
        if self._grew or self._unsorted:
            self._rewrite()
        return self.path

    def _key(self, source: str, line: int) -> tuple[int, int]:
        """(file order, line): the inputs' order, else order of first appearance."""
        return (self.files.setdefault(source, len(self.files)), int(line))

    def _rewrite(self) -> None:
        width = len(self.FIXED) + len(self.columns)
        tmp = self.path.with_suffix(".tmp")
        with open(self.path, encoding="utf-8", newline="") as src, open(tmp, "w", encoding="utf-8", newline="") as dst:
            rows = csv.reader(src)
            next(rows)
            out = csv.writer(dst)
            out.writerow(self.FIXED + self.columns)
            body = [row + [""] * (width - len(row)) for row in rows]
            if self._unsorted:  # stable: a row's several reasons keep their order
                body.sort(key=lambda r: self._key(r[0], int(r[1])))
            out.writerows(body)
        os.replace(tmp, self.path)


TotalsJson = dict[str, dict[str, dict[str, str]]]  # eventname -> Currency -> field -> exact decimal text


@dataclass(frozen=True)
class ControlTotals:
    """SPEC 7 `totals`: sums of the valid records and of those Track360 acknowledged.

    `acknowledged` is None when a run was interrupted or stopped (unknown: rerun to finish)
    and empty for a dry run (nothing was sent).
    """

    valid: TotalsJson
    acknowledged: TotalsJson | None

    def to_json(self) -> dict[str, TotalsJson | None]:
        return {"valid": self.valid, "acknowledged": self.acknowledged}


@dataclass(frozen=True)
class Report:
    """What a run did (SPEC 7); `to_json()` is the `--report` file and the log's summary line."""

    kind: str
    dry_run: bool
    files: list[str]
    counts: Counts
    log: str | None
    rejects: str | None
    duration_s: float
    exit_code: int
    totals: ControlTotals | None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"kind": self.kind, "dry_run": self.dry_run, "files": self.files}
        data.update(asdict(self.counts))
        data.update(
            log=self.log,
            rejects=self.rejects,
            duration_s=round(self.duration_s, 3),
            exit_code=self.exit_code,
            totals=self.totals.to_json() if self.totals is not None else None,
        )
        return data

    def write(self, path: Path) -> None:
        write_atomic(path, orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
