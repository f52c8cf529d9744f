"""The run's written results: the rejects CSV and the JSON report."""

from __future__ import annotations

import csv
import os
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from t360cli.tally import Counts


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
        self.count = 0
        self._file: Any = None
        self._writer: Any = None
        self._grew = False
        self._lock = threading.Lock()  # the sender's refusals arrive from another thread

    def write(self, source: str, line: int, reason: str, cells: dict[str, Any]) -> None:
        with self._lock:
            self._write(source, line, reason, cells)

    def _write(self, source: str, line: int, reason: str, cells: dict[str, Any]) -> None:
        if self._file is None:
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
        self.count += 1

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


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
    os.replace(tmp, path)


def report_dict(
    kind: str,
    dry_run: bool,
    files: list[str],
    counts: Counts,
    totals: dict[str, Any] | None,
    log: str | None,
    rejects: str | None,
    duration_s: float,
    exit_code: int,
) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": kind, "dry_run": dry_run, "files": files}
    data.update(asdict(counts))
    data.update(log=log, rejects=rejects, duration_s=round(duration_s, 3), exit_code=exit_code, totals=totals)
    return data
