"""The run's written results: the rejects CSV and the Report (its JSON through files.py)."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from t360cli.files import PRIVATE, WriteFailed, write_user_file
from t360cli.readers.csvsrc import REJECTS_HEAD, spreadsheet_safe
from t360cli.tally import Counts, ReasonCount, Totals

if TYPE_CHECKING:
    from _csv import Writer

    from t360cli.pipeline import Pipeline


class RejectsWriter:
    """CSV of rejected rows: source_file, source_line, reason, then the original columns.

    Created on the first reject only, as a private (0600) temporary file beside `path`
    that `close` puts in place: a regular or absent `path` is replaced atomically; a
    symlink or a FIFO is written through, in place, as a shell redirection would (SPEC 11).
    Columns are the union of the inputs' headers in order of first appearance; a column
    first seen later (JSONL) is added by a rewrite at close. Cells are spreadsheet-safe
    (SPEC 11): one that begins with = + - @ TAB or CR and is not a plain number gets a
    leading ', which the CSV reader removes again when the file is fed back in.
    """

    FIXED = REJECTS_HEAD

    def __init__(self, path: Path, columns: list[str], files: list[str] | None = None) -> None:
        self.path = path
        self.columns = list(dict.fromkeys(columns))
        self.files = {name: i for i, name in enumerate(files or [])}  # sort order of sources
        self._last: tuple[int, int] = (-1, -1)
        self._unsorted = False
        self._file: IO[str] | None = None
        self._tmp: Path | None = None
        self._writer: Writer | None = None
        self._grew = False
        self._lock = threading.Lock()  # the sender's refusals arrive from another thread

    def write(self, source: str, line: int, reason: str, cells: dict[str, object]) -> None:
        with self._lock:
            try:
                self._write(source, line, reason, cells)
            except OSError as exc:
                self._abandon()  # a full disk gets its space back: no temporary file is left
                raise WriteFailed.from_os_error(self.path, exc) from exc

    def _abandon(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file, self._writer = None, None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)

    def _open(self) -> Writer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")  # 0600
        self._tmp = Path(name)
        self._file = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        writer = csv.writer(self._file)
        writer.writerow(self._head())
        return writer

    def _head(self) -> list[str]:
        return [spreadsheet_safe(name) for name in self.FIXED + self.columns]

    def _write(self, source: str, line: int, reason: str, cells: dict[str, object]) -> None:
        if self._writer is None:
            self._writer = self._open()
        for key in cells:
            if key not in self.columns:
                self.columns.append(key)
                self._grew = True
        where = self._key(source, line)
        self._unsorted |= where < self._last  # a server refusal of an earlier line
        self._last = max(self._last, where)
        row = [_safe(source), int(line), _safe(reason)] + [_safe(cells.get(c)) for c in self.columns]
        self._writer.writerow(row)

    def close(self) -> Path | None:
        """Put the file in place; its path, or None when nothing was rejected."""
        if self._file is None or self._tmp is None:
            return None
        tmp = self._tmp
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._grew or self._unsorted:
                self._rewrite(tmp)
            _put_in_place(tmp, self.path)
        except OSError as exc:
            raise WriteFailed.from_os_error(self.path, exc) from exc
        finally:
            self._file = None
            for leftover in (tmp, tmp.with_name(tmp.name + ".sorted")):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
        return self.path

    def _key(self, source: str, line: int) -> tuple[int, int]:
        """(file order, line): the inputs' order, else order of first appearance."""
        return (self.files.setdefault(source, len(self.files)), int(line))

    def _rewrite(self, path: Path) -> None:
        width = len(self.FIXED) + len(self.columns)
        tmp = path.with_name(path.name + ".sorted")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        with open(path, encoding="utf-8", newline="") as src, open(fd, "w", encoding="utf-8", newline="") as dst:
            rows = csv.reader(src)
            next(rows)
            out = csv.writer(dst)
            out.writerow(self._head())
            body = [row + [""] * (width - len(row)) for row in rows]
            if self._unsorted:  # stable: a row's several reasons keep their order
                body.sort(key=lambda r: self._key(r[0], int(r[1])))
            out.writerows(body)
        os.replace(tmp, path)


def _safe(cell: object) -> object:
    """A cell as the rejects CSV holds it: "" for None, text made spreadsheet-safe."""
    if cell is None:
        return ""
    return spreadsheet_safe(cell) if isinstance(cell, str) else cell


def _put_in_place(tmp: Path, path: Path) -> None:
    """A regular or absent `path` is replaced by `tmp`; a symlink or FIFO is written through."""
    try:
        info: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is None or stat.S_ISREG(info.st_mode):
        os.replace(tmp, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY, PRIVATE)
    with open(fd, "wb") as dst, open(tmp, "rb") as src:
        shutil.copyfileobj(src, dst, 1 << 20)


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
    """What a run did (SPEC 7); `to_json()` is the `--report` file and the log's summary line.

    `failed_causes`: the distinct errors of failed batches, with how many batches each
    (delivery fills it). `top_reject_reasons` comes from the counts' reason tally."""

    kind: str
    dry_run: bool
    files: list[str]
    counts: Counts
    log: str | None
    rejects: str | None
    duration_s: float
    exit_code: int
    totals: ControlTotals | None
    preview: tuple[str, ...] = ()  # validate --show N: the first records as sent (not in the JSON)

    @property
    def failed_causes(self) -> dict[str, int]:
        return self.counts.failed_causes

    @property
    def top_reject_reasons(self) -> list[ReasonCount]:
        """The five most frequent reject rules, with the first row of each (SPEC 10)."""
        return self.counts.reject_reasons.top(5)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"kind": self.kind, "dry_run": self.dry_run, "files": self.files}
        data.update({f.name: getattr(self.counts, f.name) for f in fields(self.counts) if f.name != "reject_reasons"})
        data.update(
            log=self.log,
            rejects=self.rejects,
            duration_s=round(self.duration_s, 3),
            exit_code=self.exit_code,
            totals=self.totals.to_json() if self.totals is not None else None,
            top_reject_reasons=[reason.to_json() for reason in self.top_reject_reasons],
        )
        return data

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2) + b"\n"

    def write(self, path: Path) -> None:
        """`--report PATH`: a regular file replaced atomically, a symlink or FIFO written through."""
        write_user_file(path, self.json_bytes())


def control_totals(pipe: Pipeline, acknowledged: Totals | None, dry_run: bool) -> ControlTotals | None:
    if pipe.kind != "activities":
        return None
    if acknowledged is None:
        return ControlTotals(pipe.totals.as_json(), {} if dry_run else None)
    return ControlTotals(pipe.totals.as_json(), acknowledged.as_json())


def report_of(
    files: list[str],
    pipe: Pipeline,
    rejects_file: Path | None,
    started: float,
    code: int,
    *,
    dry_run: bool,
    acknowledged: Totals | None = None,
    log: str | None = None,
) -> Report:
    """The report of a run over `files` that read through `pipe`."""
    return Report(
        kind=pipe.kind,
        dry_run=dry_run,
        files=files,
        counts=pipe.counts,
        log=log,
        rejects=str(rejects_file) if rejects_file else None,
        duration_s=round(time.monotonic() - started, 3),
        exit_code=int(code),
        totals=control_totals(pipe, acknowledged, dry_run),
    )
