"""`t360 status` without LOG: the runs in `state_dir/runs`, newest first (SPEC 10).

Each progress log is read line by line (`progress_log.iter_log`) and summed up as a
`RunInfo`; a log that cannot be read is listed as "unreadable" with the reason, never raised.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from t360cli.errors import LogError
from t360cli.progress_log import Record, iter_log

RunState = Literal["complete", "rejects", "incomplete", "interrupted", "unreadable"]
_TIME = "%Y-%m-%dT%H:%M:%S%z"  # as the header's started_at


@dataclass(frozen=True)
class RunInfo:
    """One progress log as `t360 status` lists it (SPEC 10).

    state: complete (every batch acknowledged, no reject), rejects (complete, with rejected
    rows), incomplete (finished with failed or unsent batches), interrupted (no summary
    after its last batch, or a summary with exit code 130), unreadable (see `reason`)."""

    name: str  # the file's stem
    path: Path
    state: RunState
    when: str  # when the log was last written, local time
    kind: str | None = None
    started_at: str | None = None
    rows_read: int | None = None  # from the last summary line
    records_sent: int | None = None  # from the last summary line
    records_acknowledged: int = 0  # every acknowledged batch in the log, all runs together
    batches_acknowledged: int = 0
    batches_pending: int = 0  # batches whose last entry is not acknowledged
    exit_code: int | None = None  # of the last summary line
    command: str | None = None  # the command line the header recorded
    reason: str | None = None  # why the log is unreadable


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every `*.jsonl` in `runs_dir`, newest first; a missing folder has none.

    A log that cannot be read is listed as "unreadable" with the reason, never raised."""
    runs_dir = Path(runs_dir)
    try:
        paths = [p for p in runs_dir.iterdir() if p.name.endswith(".jsonl")]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LogError(f"cannot list the runs in {runs_dir} ({exc.strerror or exc}).") from None
    dated = [(_mtime(p), p) for p in paths]
    dated.sort(key=lambda item: (-item[0], item[1].name))
    return [_run_info(path, mtime) for mtime, path in dated]


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _run_info(path: Path, mtime: float) -> RunInfo:
    when = time.strftime(_TIME, time.localtime(mtime))
    if path.is_symlink():
        return RunInfo(path.stem, path, "unreadable", when, reason="a symbolic link (t360 does not follow links here)")
    try:
        return _tally(path, when, iter_log(path))
    except LogError as exc:
        return RunInfo(path.stem, path, "unreadable", when, reason=exc.message)


def _tally(path: Path, when: str, records: Iterator[Record]) -> RunInfo:
    """What a log says, read line by line: the last entry per batch and the last summary."""
    header = next(records)  # iter_log raises LogError for a file without one
    latest: dict[int, Record] = {}
    summary: Record | None = None
    batches_after_summary = False
    for record in records:
        if record["index"] < 0 and "summary" in record:
            summary, batches_after_summary = record["summary"], False
        elif record["index"] >= 0:
            latest[record["index"]] = record
            batches_after_summary = True
    acked = [e for e in latest.values() if e.get("status") == "acked"]
    return RunInfo(
        name=path.stem,
        path=path,
        state=_state(summary, batches_after_summary, pending=len(latest) - len(acked)),
        when=when,
        kind=_text(header.get("kind")),
        started_at=_text(header.get("started_at")),
        rows_read=_count(summary, "rows_read"),
        records_sent=_count(summary, "records_sent"),
        records_acknowledged=sum(e["records"] for e in acked if type(e.get("records")) is int),
        batches_acknowledged=len(acked),
        batches_pending=len(latest) - len(acked),
        exit_code=_count(summary, "exit_code"),
        command=_command(header.get("command")),
    )


def _state(summary: Record | None, batches_after_summary: bool, pending: int) -> RunState:
    if summary is None or batches_after_summary or summary.get("exit_code") == 130:
        return "interrupted"
    if pending or summary.get("exit_code") in (3, 4) or _count(summary, "batches_failed"):
        return "incomplete"
    if _count(summary, "rows_rejected") or summary.get("exit_code") == 1:
        return "rejects"
    return "complete"


def _count(summary: Record | None, key: str) -> int | None:
    value = (summary or {}).get(key)
    return value if type(value) is int else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _command(value: Any) -> str | None:
    """The header's command line, as a shell would take it back."""
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return shlex.join(value)
    return _text(value)
