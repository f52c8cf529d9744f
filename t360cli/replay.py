"""`t360 replay` and `t360 status`: everything they need is in the progress log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from t360cli import readers
from t360cli.config import Settings, host_of
from t360cli.deliver import latest_entries
from t360cli.errors import UsageError
from t360cli.mapping import load_mapping
from t360cli.pipeline import open_inputs
from t360cli.progress_log import read_log
from t360cli.run import Observer, Plan, RunOptions, deliver_plan


def _check_unchanged(header: dict[str, Any]) -> None:
    """Refuse the whole replay if any input or the mapping changed (SPEC 9)."""
    for f in header.get("files", []):
        path = Path(f["path"])
        if not path.is_file():
            raise UsageError(f"replay refused: input {path} is gone.", "Put the original file back.")
        if readers.file_sha256(path) != f["sha256"]:
            raise UsageError(
                f"replay refused: input {path} changed since the run (its SHA-256 differs).",
                "Replay needs the exact original file; upload the new one as a new run.",
            )
    mapping = Path(header["mapping"])
    if not mapping.is_file() or load_mapping(mapping).sha256 != header["mapping_sha256"]:
        raise UsageError(f"replay refused: the mapping {mapping} is gone or changed since the run.")


def replay(log_path: Path, mode: str, settings: Settings, obs: Observer, report: str | None) -> dict[str, Any]:
    started = time.monotonic()
    header, _ = read_log(log_path)
    _check_unchanged(header)
    settings.batch_size = header["batch_size"]
    settings.max_batch_bytes = header["max_batch_bytes"]
    if not settings.base_url:
        settings.base_url = header.get("base_url")
    for warning in settings.check_url():
        obs.note(warning)
    if header.get("host") and host_of(settings.base_url) != header["host"]:
        raise UsageError(
            f"replay refused: the log was written for {header['host']}, not {host_of(settings.base_url)}.",
            "Pass --base-url for the original host.",
        )
    key = settings.api_key()
    mapping = load_mapping(Path(header["mapping"]))
    inputs = open_inputs(mapping, [f["path"] for f in header["files"]])
    rejects = log_path.with_suffix("")
    p = Plan(
        mapping,
        inputs,
        header,
        log_path,
        rejects.with_name(rejects.name + ".rejects.csv"),
        [f["path"] for f in header["files"]],
    )
    opts = RunOptions(files=p.file_names, mapping=header["mapping"], limit=header.get("limit"), report=report)
    return asyncio.run(deliver_plan(p, opts, settings, obs, key, started, resend_all=mode == "all"))


def status(log_path: Path, term: Any, as_json: bool) -> int:
    header, entries = read_log(log_path)
    latest = latest_entries(entries)
    summaries = [e["summary"] for e in entries if "summary" in e]
    acked = sum(1 for e in latest.values() if e.get("status") == "acked")
    failed = [e for e in latest.values() if e.get("status") != "acked"]
    pending = sum(sum(hi - lo for lo, hi in e.get("pending", [])) for e in failed)
    if as_json:
        data = summaries[-1] if summaries else {"kind": header.get("kind"), "log": str(log_path)}
        data = {
            **data,
            "batches_acknowledged_in_log": acked,
            "batches_failed_in_log": len(failed),
            "records_pending": pending,
            "finished": bool(summaries),
        }
        term.print_json(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return 0
    files = ", ".join(f"{f['path']} ({f['size']:,} bytes)" for f in header.get("files", []))
    lines = [
        f"log: {log_path}",
        f"kind: {header.get('kind')}  started: {header.get('started_at')}  host: {header.get('host') or '-'}",
        f"files: {files}",
        f"batches: {acked:,} acknowledged, {len(failed):,} failed ({pending:,} records pending)",
    ]
    if summaries:
        s = summaries[-1]
        lines.append(
            f"last run: exit {s.get('exit_code')}, rows read {s.get('rows_read'):,}, "
            f"rejected {s.get('rows_rejected'):,}, records sent {s.get('records_sent'):,}"
        )
    else:
        lines.append("last run: did not finish (interrupted or killed); run the same upload again to resume.")
    if failed:
        lines.append(f"to re-send the failed batches: t360 replay {log_path} --failed")
    for line in lines:
        term.print(line)
    return 0
