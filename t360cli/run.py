"""Library entry points: validate and upload (replay's delivery too). They return a Report and
never print: an Observer is told what happens.

Every command builds a Pipeline over the inputs, cuts batches, and (unless dry) hands
them to a Delivery that records each one in the progress log.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import orjson

from t360cli import contract
from t360cli.batching import Batch, Batcher
from t360cli.config import Settings
from t360cli.errors import AuthRefused, ExitCode, TooManyRejects, UsageError
from t360cli.pipeline import Pipeline
from t360cli.plan import MATCH_KEYS, Plan, RunOptions, plan
from t360cli.report import ControlTotals, RejectsWriter, Report
from t360cli.tally import Counts, Totals

if TYPE_CHECKING:
    from t360cli.client import AuthRefusal, Sender
    from t360cli.deliver import LogEntry
    from t360cli.progress_log import RunLog

RowEstimate = Callable[[], int | None]  # rows to read, counted only if the observer asks
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Observer(Protocol):
    """What a run tells its watcher (ui.Terminal on the command line; tests may keep a list)."""

    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None: ...
    def progress(self, counts: Counts) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: Report) -> None: ...


class NullObserver:
    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None: ...
    def progress(self, counts: Counts) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: Report) -> None: ...


@dataclass(frozen=True)
class RejectLimit:
    """--max-rejects: a number of rows, or a percentage of the rows read."""

    text: str
    value: float
    percent: bool

    def exceeded(self, counts: Counts) -> bool:
        allowed = self.value * counts.rows_read / 100 if self.percent else self.value
        return counts.rows_rejected > allowed

    def refusal(self, report: Report, sent_nothing: bool) -> TooManyRejects:
        """The one sentence for a run stopped by --max-rejects (validate and upload)."""
        tail = "; nothing was sent." if sent_nothing else "."
        return TooManyRejects(
            f"{report.counts.rows_rejected} of {report.counts.rows_read} rows are invalid, "
            f"more than --max-rejects {self.text}{tail}",
            f"See the rejects file {report.rejects}." if report.rejects else None,
        )


def parse_max_rejects(text: str | None) -> RejectLimit | None:
    if text is None:
        return None
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise UsageError(
            f"--max-rejects '{text}' is not a number or a percentage.", "Examples: --max-rejects 100, --max-rejects 2%."
        ) from None
    if value < 0 or (not percent and value != int(value)):
        raise UsageError(f"--max-rejects '{text}' must be a whole number or a percentage >= 0.")
    return RejectLimit(text, value, percent)


def estimate_rows(paths: list[Path]) -> int | None:
    """Line count of plain text inputs (a few ms per 100 MB); None if any is not text."""
    total = 0
    for path in paths:
        if path.suffix.lower() not in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson"):
            return None
        with open(path, "rb") as fh:
            total += sum(block.count(b"\n") for block in iter(partial(fh.read, 1 << 20), b""))
    return total


def _pipeline(the_plan: Plan, limit: int | None, observer: Observer, verb: str) -> tuple[Pipeline, RejectsWriter]:
    """The run's pipeline and its rejects file; the observer is told that reading starts."""
    rejects = RejectsWriter(the_plan.rejects_path, the_plan.inputs.columns, the_plan.file_names)
    pipe = Pipeline(the_plan.mapping, the_plan.inputs, rejects, limit)
    pipe.on_chunk = observer.progress
    title = f"{verb} {', '.join(the_plan.file_names)}"
    observer.start(title, verb == "validating", partial(estimate_rows, the_plan.inputs.paths))
    return pipe, rejects


def batches(pipe: Pipeline, settings: Settings) -> Iterator[Batch]:
    batcher = Batcher(settings.batch_size, settings.max_batch_bytes)
    for piece in pipe.pieces():
        yield from batcher.add(piece)
    yield from batcher.flush()


def exit_code(counts: Counts, dry_run: bool) -> ExitCode:
    bad = counts.rows_rejected or (not dry_run and counts.batches_failed)
    return ExitCode.PARTIAL if bad else ExitCode.OK


def control_totals(pipe: Pipeline, acknowledged: Totals | None, dry_run: bool) -> ControlTotals | None:
    if pipe.kind != "activities":
        return None
    if acknowledged is None:
        return ControlTotals(pipe.totals.as_json(), {} if dry_run else None)
    return ControlTotals(pipe.totals.as_json(), acknowledged.as_json())


def _finish(
    the_plan: Plan,
    report_path: str | None,
    pipe: Pipeline,
    rejects: RejectsWriter,
    started: float,
    code: int,
    observer: Observer,
    *,
    dry_run: bool,
    acknowledged: Totals | None = None,
    log: str | None = None,
) -> Report:
    """Close the rejects file, build the Report, write it (--report), tell the observer."""
    rejects_file = rejects.close()
    report = Report(
        kind=the_plan.mapping.kind,
        dry_run=dry_run,
        files=the_plan.file_names,
        counts=pipe.counts,
        log=log,
        rejects=str(rejects_file) if rejects_file else None,
        duration_s=round(time.monotonic() - started, 3),
        exit_code=int(code),
        totals=control_totals(pipe, acknowledged, dry_run),
    )
    if report_path:
        report.write(Path(report_path))
    observer.finish(report)
    return report


def _dry_run(opts: RunOptions, settings: Settings, observer: Observer) -> tuple[Report, RejectLimit | None]:
    started = time.monotonic()
    the_plan = plan(opts, settings)
    limit = parse_max_rejects(opts.max_rejects)
    pipe, rejects = _pipeline(the_plan, opts.limit, observer, "validating")
    for _ in batches(pipe, settings):
        pipe.counts.batches_total += 1
    stopped = limit is not None and limit.exceeded(pipe.counts)
    code = ExitCode.STOPPED if stopped else exit_code(pipe.counts, True)
    return _finish(the_plan, opts.report, pipe, rejects, started, code, observer, dry_run=True), limit


def validate(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> Report:
    """The dry run: read, map, validate and batch everything; send nothing.

    Over --max-rejects, the report is written and the observer told, then TooManyRejects is raised."""
    report, limit = _dry_run(opts, settings, observer or NullObserver())
    if limit is not None and report.exit_code == ExitCode.STOPPED:
        raise limit.refusal(report, sent_nothing=False)
    return report


def upload(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> Report:
    """Send what the progress log does not hold as acknowledged; AuthRefused (exit 3) once the
    report and the log's summary are written if the server refuses the key."""
    if opts.dry_run:
        return validate(opts, settings, observer)
    obs = observer or NullObserver()
    for warning in settings.check_url():
        obs.note(warning)
    key = settings.api_key()
    if opts.max_rejects is not None:  # refuse to send anything: a full dry pass first
        pre, limit = _dry_run(replace(opts, report=None), settings, NullObserver())
        if limit is not None and pre.exit_code == ExitCode.STOPPED:
            if opts.report:
                replace(pre, dry_run=False).write(Path(opts.report))
            raise limit.refusal(pre, sent_nothing=True)
    started = time.monotonic()
    return asyncio.run(deliver_plan(plan(opts, settings), opts, settings, obs, key, started))


async def deliver_plan(
    the_plan: Plan,
    opts: RunOptions,
    settings: Settings,
    observer: Observer,
    key: str,
    started: float,
    resend_all: bool = False,
) -> Report:
    """Send what the log does not hold as acknowledged (everything with resend_all)."""
    from t360cli.deliver import latest_entries
    from t360cli.progress_log import RunLog

    with RunLog.open(the_plan.log_path, the_plan.header, restart=opts.restart, match_keys=MATCH_KEYS) as log:
        prior = {} if resend_all else latest_entries(log.entries)
        pipe, rejects = _pipeline(the_plan, opts.limit, observer, "uploading")
        unacked = Totals(pipe.totals.fields)
        outcome = await _deliver(the_plan, pipe, Refusals(pipe, rejects), settings, key, log, prior, unacked, observer)
        # interrupted or stopped: records still being batched are in neither bucket, so say
        # nothing rather than guess
        stopped = outcome.code in (ExitCode.INTERRUPTED, ExitCode.STOPPED)
        acknowledged = None if stopped else _acknowledged(pipe, unacked)
        report = _finish(
            the_plan,
            opts.report,
            pipe,
            rejects,
            started,
            outcome.code,
            observer,
            dry_run=False,
            acknowledged=acknowledged,
            log=str(the_plan.log_path),
        )
        log.append({"index": -1, "summary": report.to_json()})
    if outcome.refusal is not None:
        raise AuthRefused(outcome.refusal.message, outcome.refusal.hint)
    return report


@dataclass(frozen=True)
class Delivered:
    code: ExitCode
    refusal: AuthRefusal | None = None  # the server refused the key: raised once the report is written


def _sender(the_plan: Plan, settings: Settings, key: str, observer: Observer) -> Sender:
    from t360cli.client import RetryPolicy, Sender

    return Sender(
        base_url=settings.base_url or "",
        endpoint=contract.ENDPOINTS[the_plan.mapping.kind],
        api_key=key,
        timeout_s=settings.timeout_s,
        retry=RetryPolicy(settings.max_attempts, settings.backoff_initial_s, settings.backoff_max_s),
        rate_limit=settings.rate_limit,
        max_connections=settings.concurrency,
        api_key_hint=settings.key_hint(),
        on_retry=observer.retry,
    )


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop sending; in-flight requests finish and the log is flushed."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _deliver(
    the_plan: Plan,
    pipe: Pipeline,
    refusals: Refusals,
    settings: Settings,
    key: str,
    log: RunLog,
    prior: dict[int, LogEntry],
    unacked: Totals,
    observer: Observer,
) -> Delivered:
    from t360cli.deliver import Delivery, Producer

    async with _sender(the_plan, settings, key, observer) as sender:
        delivery = Delivery(
            sender, log, pipe.counts, settings.concurrency, refusals, on_batch=observer.progress, unacked=unacked
        )
        producer = Producer(batches(pipe, settings), depth=2 * settings.concurrency)
        with _stop_on_signals(delivery.stop):
            try:
                await delivery.run(producer, prior)
            finally:
                producer.stop()
                producer.thread.join()
                refusals.fold()
    if delivery.refusal is not None:
        return Delivered(ExitCode.STOPPED, delivery.refusal)
    if delivery.stopping:
        return Delivered(ExitCode.INTERRUPTED)
    return Delivered(exit_code(pipe.counts, False))


@dataclass
class Refusals:
    """Records the server refused; folded into the counts once the producer is done."""

    pipe: Pipeline
    rejects: RejectsWriter
    rows: set[tuple[int, int]] = field(default_factory=set)
    records: int = 0
    totals: Totals | None = None

    def __call__(self, batch: Batch, record: int, status: int, message: str) -> None:
        refused = orjson.loads(batch.part(record, record + 1))[0]
        if self.totals is None:
            self.totals = Totals(self.pipe.totals.fields)
        self.totals.add_record(refused)
        self.records += 1
        reason = f"server refused (HTTP {status}): {message}"
        if batch.origins:
            chunk, pos = batch.origin_of(record)
            key = (chunk.source.index, int(batch.lines[record]))
            if key not in self.rows:
                self.rejects.write(chunk.source.name, key[1], reason, chunk.table.slice(pos, 1).to_pylist()[0])
        else:  # an aggregated record: no single source row
            key = (-1, -len(self.rows) - 1)
            self.rejects.write("(aggregate)", 0, reason, {})
        self.rows.add(key)

    def fold(self) -> None:
        """A refused row moves from valid to rejected (SPEC 9)."""
        counts = self.pipe.counts
        counts.rows_valid -= len(self.rows)
        counts.rows_rejected += len(self.rows)
        counts.records_valid -= self.records
        if self.totals is not None:
            self.pipe.totals.merge(self.totals, -1)


def _acknowledged(pipe: Pipeline, unacked: Totals) -> Totals:
    acknowledged = pipe.totals.copy()
    acknowledged.merge(unacked, -1)
    return acknowledged
