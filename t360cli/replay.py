"""`t360 replay` and `t360 status`: everything they need is in the progress log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path

from t360cli import readers
from t360cli.config import Settings, host_of
from t360cli.deliver import LogEntry, latest_entries
from t360cli.errors import UsageError
from t360cli.mapping import Mapping, load_mapping
from t360cli.plan import LogHeader, RunOptions, plan_from_log
from t360cli.progress_log import read_log
from t360cli.report import Report
from t360cli.run import Observer, deliver_plan


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


@dataclass(frozen=True)
class RunStatus:
    """A run as its progress log tells it; `ui` renders it as lines or as JSON."""

    log_path: Path
    kind: str | None
    started_at: str | None
    host: str | None
    files: list[InputFile]
    batches_acknowledged: int
    batches_failed: int
    records_pending: int
    last_summary: dict[str, object] | None  # the last finished run's report, as the log holds it

    def to_json(self) -> dict[str, object]:
        """The last report (or the kind and log) with what the log says of the batches."""
        data = self.last_summary if self.last_summary is not None else {"kind": self.kind, "log": str(self.log_path)}
        return {
            **data,
            "batches_acknowledged_in_log": self.batches_acknowledged,
            "batches_failed_in_log": self.batches_failed,
            "records_pending": self.records_pending,
            "finished": self.last_summary is not None,
        }


def status(log_path: Path) -> RunStatus:
    header, entries = read_log(log_path)
    latest = latest_entries(entries)
    summaries: list[dict[str, object]] = [line["summary"] for line in entries if "summary" in line]
    failed: list[LogEntry] = [line for line in latest.values() if line.get("status") != "acked"]
    return RunStatus(
        log_path=log_path,
        kind=header.get("kind"),
        started_at=header.get("started_at"),
        host=header.get("host"),
        files=[InputFile(recorded["path"], recorded["size"]) for recorded in header.get("files", [])],
        batches_acknowledged=len(latest) - len(failed),
        batches_failed=len(failed),
        records_pending=sum(hi - lo for line in failed for lo, hi in line.get("pending", [])),
        last_summary=summaries[-1] if summaries else None,
    )
