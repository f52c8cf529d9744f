"""`t360 replay` and `t360 status`: everything they need is in the progress log."""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from t360cli import readers
from t360cli.config import Settings
from t360cli.deliver import LogEntry, latest_entries
from t360cli.errors import UsageError
from t360cli.mapping import Mapping, load_mapping
from t360cli.observer import Observer
from t360cli.plan import LogHeader, RunOptions, plan_from_log
from t360cli.progress_log import read_log
from t360cli.report import Report
from t360cli.run import deliver_plan
from t360cli.urls import host_of

REPLAY_KEYS: dict[str, type | tuple[type, ...]] = {
    "files": list,
    "mapping": str,
    "mapping_sha256": str,
    "batch_size": int,
    "max_batch_bytes": int,
    "limit": (int, type(None)),
}


def _check_header(log_path: Path, header: LogHeader) -> None:
    """What replay reads of the header is there and of the right type (a log damaged or
    written by hand is one sentence, never a KeyError)."""
    for key, kind in REPLAY_KEYS.items():
        value = header.get(key)
        files_ok = key != "files" or all(
            isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("sha256"), str)
            for item in value or []
        )
        if not isinstance(value, kind) or isinstance(value, bool) or not files_ok:
            raise UsageError(
                f"{log_path}: the progress log's header has no usable {key}, so its batches cannot be rebuilt.",
                "Upload the files again as a new run (t360 upload ... --restart).",
            )


def _check_unchanged(header: LogHeader) -> Mapping:
    """Refuse the whole replay if any input or the mapping changed (SPEC 9); the mapping."""
    for recorded in header.get("files", []):
        path = Path(recorded["path"])
        if not path.is_file():
            raise UsageError(f"replay refused: input {path} is gone.", "Put the original file back.")
        if readers.file_sha256(path) != recorded["sha256"]:
            raise UsageError(
                f"replay refused: input {path} changed since the run (its SHA-256 differs).",
                "Replay needs the exact original file; upload the new one as a new run.",
            )
    mapping_path = Path(header["mapping"])
    mapping = load_mapping(mapping_path) if mapping_path.is_file() else None
    if mapping is None or mapping.sha256 != header["mapping_sha256"]:
        raise UsageError(f"replay refused: the mapping {mapping_path} is gone or changed since the run.")
    return mapping


def _settings_of(header: LogHeader, settings: Settings) -> Settings:
    """The run's batching (so batches rebuild byte for byte) and, unless given, its base URL."""
    return replace(
        settings,
        batch_size=header["batch_size"],
        max_batch_bytes=header["max_batch_bytes"],
        base_url=settings.base_url or header.get("base_url"),
    )


def replay(
    log_path: Path, settings: Settings, observer: Observer, *, resend_all: bool = False, report: str | None = None
) -> Report:
    """Re-send the batches the log holds as failed (every batch with resend_all)."""
    started = time.monotonic()
    header, _ = read_log(log_path)
    _check_header(log_path, header)
    mapping = _check_unchanged(header)
    settings = _settings_of(header, settings)
    for warning in settings.check_url():
        observer.note(warning)
    if header.get("host") and host_of(settings.base_url) != header["host"]:
        raise UsageError(
            f"replay refused: the log was written for {header['host']}, not {host_of(settings.base_url)}.",
            "Pass --base-url for the original host.",
        )
    key = settings.api_key()
    the_plan = plan_from_log(log_path, header, mapping)
    opts = RunOptions(files=the_plan.file_names, mapping=header["mapping"], limit=header.get("limit"), report=report)
    return asyncio.run(deliver_plan(the_plan, opts, settings, observer, key, started, resend_all=resend_all))


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


RunState = Literal["complete", "rejects", "incomplete", "interrupted"]


@dataclass(frozen=True)
class RunStatus:
    """A run as its progress log tells it; `ui` renders it as lines or as JSON.

    state: complete (every batch acknowledged, no reject), rejects (delivered, some rows
    rejected), incomplete (failed or unsent batches), interrupted (no summary after its last
    batch, or exit 130). `command` finishes a run that is not complete: the command line the
    header recorded, else one rebuilt from its inputs (a rerun of it resumes)."""

    log_path: Path
    kind: str | None
    started_at: str | None
    host: str | None
    files: list[InputFile]
    batches_acknowledged: int
    batches_failed: int
    records_pending: int
    last_summary: dict[str, object] | None  # the last finished run's report, as the log holds it
    state: RunState = "complete"
    command: str = ""
    records_acknowledged: int = 0
    failed_causes: dict[str, int] = field(default_factory=dict)  # error of each failed batch -> batches

    def to_json(self) -> dict[str, object]:
        """The last report (or the kind and log) with what the log says of the batches."""
        data = self.last_summary if self.last_summary is not None else {"kind": self.kind, "log": str(self.log_path)}
        return {
            **data,
            "batches_acknowledged_in_log": self.batches_acknowledged,
            "batches_failed_in_log": self.batches_failed,
            "records_pending": self.records_pending,
            "records_acknowledged_in_log": self.records_acknowledged,
            "finished": self.last_summary is not None,
            "state": self.state,
            "failed_causes_in_log": self.failed_causes,
            "command": None if self.state in ("complete", "rejects") else self.command,
        }


def status(log_path: Path) -> RunStatus:
    """What a progress log says; a LogError (exit 2, one sentence naming the file) if it is malformed."""
    header, entries = read_log(log_path)
    latest = latest_entries(entries)
    summaries: list[dict[str, object]] = [line["summary"] for line in entries if "summary" in line]
    failed: list[LogEntry] = [line for line in latest.values() if line.get("status") != "acked"]
    last_batch = max((n for n, line in enumerate(entries) if line.get("index", -1) >= 0), default=-1)
    last_summary = max((n for n, line in enumerate(entries) if "summary" in line), default=-1)
    summary = summaries[-1] if summaries else None
    return RunStatus(
        log_path=log_path,
        kind=header.get("kind"),
        started_at=header.get("started_at"),
        host=header.get("host"),
        files=[InputFile(recorded["path"], recorded.get("size", 0)) for recorded in header.get("files", [])],
        batches_acknowledged=len(latest) - len(failed),
        batches_failed=len(failed),
        records_pending=sum(_span(pair) for line in failed for pair in _pairs(line.get("pending"))),
        last_summary=summary,
        state=_state(summary, last_batch > last_summary, len(failed)),
        command=finishing_command(header, log_path),
        records_acknowledged=sum(
            _int(line.get("records")) for line in latest.values() if line.get("status") == "acked"
        ),
        failed_causes=dict(Counter(str(line.get("error") or "no answer recorded") for line in failed)),
    )


def _state(summary: dict[str, Any] | None, batches_after_summary: bool, failed: int) -> RunState:
    if summary is None or batches_after_summary or summary.get("exit_code") == 130:
        return "interrupted"
    if failed or summary.get("exit_code") in (3, 4) or _int(summary.get("batches_failed")):
        return "incomplete"
    if _int(summary.get("rows_rejected")) or summary.get("exit_code") == 1:
        return "rejects"
    return "complete"


def finishing_command(header: LogHeader, log_path: Path) -> str:
    """The header's command line, else `t360 upload FILES -m MAPPING --log LOG` (a rerun resumes)."""
    recorded = header.get("command")
    if isinstance(recorded, list) and recorded and all(isinstance(part, str) for part in recorded):
        cwd = header.get("cwd")  # the command's relative paths are the folder's it ran in
        where = f"cd {shlex.quote(cwd)} && " if isinstance(cwd, str) and cwd and cwd != os.getcwd() else ""
        return where + shlex.join(recorded)
    if isinstance(recorded, str) and recorded.strip():
        return recorded
    words = ["t360", "upload", *(str(f.get("path")) for f in header.get("files", [])), "-m", str(header.get("mapping"))]
    if isinstance(header.get("limit"), int):
        words += ["--limit", str(header["limit"])]
    return shlex.join([*words, "--log", str(log_path)])


def _int(value: object) -> int:
    return value if type(value) is int else 0


def _pairs(value: object) -> list[list[int]]:
    return [pair for pair in value if isinstance(pair, list) and len(pair) == 2] if isinstance(value, list) else []


def _span(pair: list[int]) -> int:
    return _int(pair[1]) - _int(pair[0])
