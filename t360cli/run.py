"""Library entry points: validate, upload, replay, status. No printing: an Observer is told.

Every command builds a Pipeline over the inputs, cuts batches, and (unless dry) hands
them to a Delivery that records each one in the progress log.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from t360cli import __version__, contract, readers
from t360cli.batching import Batch, Batcher
from t360cli.config import Settings, host_of
from t360cli.errors import ExitCode, T360Error, TooManyRejects, UsageError
from t360cli.mapping import Mapping, load_mapping
from t360cli.pipeline import Inputs, Pipeline, open_inputs
from t360cli.report import RejectsWriter, report_dict, write_json_atomic
from t360cli.tally import Counts, Totals

if TYPE_CHECKING:
    from t360cli.progress_log import RunLog

MATCH_KEYS = ("kind", "files", "mapping_sha256", "batch_size", "max_batch_bytes", "host")


class Observer(Protocol):
    def start(self, title: str, total_bytes: int) -> None: ...
    def progress(self, counts: Counts, bytes_done: int | None = None) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: dict[str, Any]) -> None: ...


class NullObserver:
    def start(self, title: str, total_bytes: int) -> None: ...
    def progress(self, counts: Counts, bytes_done: int | None = None) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: dict[str, Any]) -> None: ...


@dataclass
class RunOptions:
    files: list[str]
    mapping: str
    dry_run: bool = False
    limit: int | None = None
    max_rejects: str | None = None
    log: str | None = None
    restart: bool = False
    rejects: str | None = None
    report: str | None = None


@dataclass
class Plan:
    """Everything fixed before the first row is read."""

    mapping: Mapping
    inputs: Inputs
    header: dict[str, Any]
    log_path: Path
    rejects_path: Path
    file_names: list[str] = field(default_factory=list)


def parse_max_rejects(text: str | None) -> tuple[float, bool] | None:
    if text is None:
        return None
    raw = text.strip()
    pct = raw.endswith("%")
    try:
        value = float(raw[:-1] if pct else raw)
    except ValueError:
        raise UsageError(
            f"--max-rejects '{text}' is not a number or a percentage.", "Examples: --max-rejects 100, --max-rejects 2%."
        ) from None
    if value < 0 or (not pct and value != int(value)):
        raise UsageError(f"--max-rejects '{text}' must be a whole number or a percentage >= 0.")
    return value, pct


def exceeded(limit: tuple[float, bool] | None, counts: Counts) -> bool:
    if limit is None:
        return False
    value, pct = limit
    allowed = value * counts.rows_read / 100 if pct else value
    return counts.rows_rejected > allowed


def plan(opts: RunOptions, settings: Settings) -> Plan:
    mapping = load_mapping(Path(opts.mapping))
    inputs = open_inputs(mapping, opts.files)
    files = [
        {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": readers.file_sha256(p)} for p in inputs.paths
    ]
    host = host_of(settings.base_url)
    base = urlsplit(settings.base_url or "")
    header = {
        "t360": __version__,
        "kind": mapping.kind,
        "files": files,
        "mapping": str(Path(opts.mapping).resolve()),
        "mapping_sha256": mapping.sha256,
        "batch_size": settings.batch_size,
        "max_batch_bytes": settings.max_batch_bytes,
        "host": host,
        "base_url": f"{base.scheme}://{host}{base.path}" if host else None,
        "limit": opts.limit,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    fingerprint = hashlib.sha256(orjson.dumps([header[k] for k in MATCH_KEYS] + [opts.limit])).hexdigest()[:12]
    name = inputs.paths[0].name.split(".")[0] if inputs.paths else "run"
    log_path = Path(opts.log) if opts.log else Path(settings.state_dir) / "runs" / f"{name}-{fingerprint}.jsonl"
    stem = log_path.with_suffix("")
    rejects = Path(opts.rejects) if opts.rejects else stem.with_name(stem.name + ".rejects.csv")
    return Plan(mapping, inputs, header, log_path, rejects, [str(p) for p in inputs.paths])


def estimate_rows(paths: list[Path]) -> int | None:
    """Line count of plain text inputs (a few ms per 100 MB); None if any is not text."""
    total = 0
    for path in paths:
        if path.suffix.lower() not in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson"):
            return None
        with open(path, "rb") as fh:
            total += sum(block.count(b"\n") for block in iter(lambda fh=fh: fh.read(1 << 20), b""))
    return total


def _announce(obs: Observer, title: str, p: Plan) -> None:
    obs.start(title, sum(f["size"] for f in p.header["files"]))
    if getattr(obs, "is_tty", False) and hasattr(obs, "expect_rows"):
        obs.expect_rows(estimate_rows(p.inputs.paths))


def batches(pipe: Pipeline, settings: Settings) -> Iterator[Batch]:
    batcher = Batcher(settings.batch_size, settings.max_batch_bytes)
    for piece in pipe.pieces():
        yield from batcher.add(piece)
    yield from batcher.flush()


def exit_code(counts: Counts, dry_run: bool) -> ExitCode:
    bad = counts.rows_rejected or (not dry_run and counts.batches_failed)
    return ExitCode.PARTIAL if bad else ExitCode.OK


def totals_json(pipe: Pipeline, acknowledged: Totals | None, dry: bool) -> dict[str, Any] | None:
    if pipe.kind != "activities":
        return None
    if acknowledged is None:
        return {"valid": pipe.totals.as_json(), "acknowledged": None if not dry else {}}
    return {"valid": pipe.totals.as_json(), "acknowledged": acknowledged.as_json()}


def _finish(
    p: Plan,
    opts: RunOptions,
    pipe: Pipeline,
    started: float,
    code: int,
    dry: bool,
    observer: Observer,
    acknowledged: Totals | None = None,
    log: str | None = None,
) -> dict[str, Any]:
    rejects = pipe.rejects.close() if pipe.rejects else None
    report = report_dict(
        p.mapping.kind,
        dry,
        p.file_names,
        pipe.counts,
        totals_json(pipe, acknowledged, dry),
        log,
        str(rejects) if rejects else None,
        time.monotonic() - started,
        int(code),
    )
    if opts.report:
        write_json_atomic(Path(opts.report), report)
    observer.finish(report)
    return report


def validate(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> dict[str, Any]:
    """The dry run: read, map, validate and batch everything; send nothing."""
    obs = observer or NullObserver()
    started = time.monotonic()
    p = plan(opts, settings)
    limit = parse_max_rejects(opts.max_rejects)
    pipe = Pipeline(p.mapping, p.inputs, RejectsWriter(p.rejects_path, p.inputs.columns, p.file_names), opts.limit)
    pipe.on_chunk = obs.progress
    _announce(obs, f"validating {', '.join(p.file_names)}", p)
    for _ in batches(pipe, settings):
        pipe.counts.batches_total += 1
    code = ExitCode.STOPPED if exceeded(limit, pipe.counts) else exit_code(pipe.counts, True)
    return _finish(p, opts, pipe, started, code, True, obs)


def upload(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> dict[str, Any]:
    if opts.dry_run:
        return validate(opts, settings, observer)
    obs = observer or NullObserver()
    for warning in settings.check_url():
        obs.note(warning)
    key = settings.api_key()
    limit = parse_max_rejects(opts.max_rejects)
    if limit is not None:  # refuse to send anything: a full dry pass first
        pre = validate(
            RunOptions(**{**opts.__dict__, "report": None, "max_rejects": opts.max_rejects}), settings, NullObserver()
        )
        if pre["exit_code"] == ExitCode.STOPPED:
            if opts.report:
                write_json_atomic(Path(opts.report), {**pre, "dry_run": False})
            raise TooManyRejects(
                f"{pre['rows_rejected']} of {pre['rows_read']} rows are invalid, more than --max-rejects "
                f"{opts.max_rejects}; nothing was sent.",
                f"See the rejects file {pre['rejects']}.",
            )
    started = time.monotonic()
    return asyncio.run(deliver_plan(plan(opts, settings), opts, settings, obs, key, started))


async def deliver_plan(
    p: Plan, opts: RunOptions, settings: Settings, obs: Observer, key: str, started: float, resend_all: bool = False
) -> dict[str, Any]:
    """Send what the log does not hold as acknowledged (everything with resend_all)."""
    from t360cli.deliver import latest_entries
    from t360cli.progress_log import RunLog

    with RunLog.open(p.log_path, p.header, restart=opts.restart, match_keys=MATCH_KEYS) as log:
        prior = {} if resend_all else latest_entries(log.entries)
        pipe = Pipeline(p.mapping, p.inputs, RejectsWriter(p.rejects_path, p.inputs.columns, p.file_names), opts.limit)
        pipe.on_chunk = obs.progress
        _announce(obs, f"uploading {', '.join(p.file_names)}", p)
        unacked = Totals(pipe.totals.fields)
        code, auth = await _deliver(p, pipe, settings, key, log, prior, unacked, obs)
        # interrupted or stopped: records still being batched are in neither bucket, so say
        # nothing rather than guess
        ack = None if code in (ExitCode.INTERRUPTED, ExitCode.STOPPED) else _acknowledged(pipe, unacked)
        report = _finish(p, opts, pipe, started, code, False, obs, ack, str(p.log_path))
        log.append({"index": -1, "summary": report})
    if auth is not None:
        raise auth
    return report


async def _deliver(
    p: Plan,
    pipe: Pipeline,
    settings: Settings,
    key: str,
    log: RunLog,
    prior: dict[int, dict[str, Any]],
    unacked: Totals,
    obs: Observer,
) -> tuple[int, Any]:
    from t360cli.client import RetryPolicy, Sender
    from t360cli.deliver import Delivery, Producer

    retry = RetryPolicy(settings.max_attempts, settings.backoff_initial_s, settings.backoff_max_s)
    async with Sender(
        base_url=settings.base_url or "",
        endpoint=contract.ENDPOINTS[p.mapping.kind],
        api_key=key,
        timeout_s=settings.timeout_s,
        retry=retry,
        rate_limit=settings.rate_limit,
        max_connections=settings.concurrency,
        api_key_hint=settings.key_hint(),
        on_retry=obs.retry,
    ) as sender:
        refusals = Refusals(pipe)
        delivery = Delivery(
            sender, log, pipe.counts, settings.concurrency, on_refused=refusals, on_batch=obs.progress, unacked=unacked
        )
        producer = Producer(batches(pipe, settings), depth=2 * settings.concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, delivery.stop)
        try:
            await delivery.run(producer, prior)
        except T360Error as exc:
            if exc.exit_code != ExitCode.STOPPED:
                raise
            return ExitCode.STOPPED, exc
        finally:
            producer.stop()
            producer.thread.join()
            refusals.fold()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    if delivery.stopping:
        return ExitCode.INTERRUPTED, None
    return exit_code(pipe.counts, False), None


@dataclass
class Refusals:
    """Records the server refused; folded into the counts once the producer is done."""

    pipe: Pipeline
    rows: set[tuple[int, int]] = field(default_factory=set)
    records: int = 0
    totals: Totals | None = None

    def __call__(self, batch: Batch, record: int, status: int, message: str) -> None:
        rec = orjson.loads(batch.part(record, record + 1))[0]
        if self.totals is None:
            self.totals = Totals(self.pipe.totals.fields)
        self.totals.add_record(rec)
        self.records += 1
        reason = f"server refused (HTTP {status}): {message}"
        if batch.origins:
            chunk, pos = batch.origin_of(record)
            key = (chunk.source.index, int(batch.lines[record]))
            if key not in self.rows and self.pipe.rejects is not None:
                self.pipe.rejects.write(chunk.source.name, key[1], reason, chunk.table.slice(pos, 1).to_pylist()[0])
        else:  # an aggregated record: no single source row
            key = (-1, -len(self.rows) - 1)
            if self.pipe.rejects is not None:
                self.pipe.rejects.write("(aggregate)", 0, reason, {})
        self.rows.add(key)

    def fold(self) -> None:
        """A refused row moves from valid to rejected (SPEC 9)."""
        c = self.pipe.counts
        c.rows_valid -= len(self.rows)
        c.rows_rejected += len(self.rows)
        c.records_valid -= self.records
        if self.totals is not None:
            _subtract(self.pipe.totals, self.totals)


def _subtract(into: Totals, other: Totals) -> None:
    into.merge(other, -1)


def _acknowledged(pipe: Pipeline, unacked: Totals) -> Totals:
    ack = pipe.totals.copy()
    _subtract(ack, unacked)
    return ack
