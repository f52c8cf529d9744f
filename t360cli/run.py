"""Library entry points: validate and upload (replay's delivery too). They return a Report and
never print: an Observer is told what happens.

Every command builds a Pipeline over the inputs, cuts batches, and (unless dry) hands
them to a Delivery that records each one in the progress log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from t360cli import contract
from t360cli.batching import Batch, Batcher
from t360cli.config import Settings
from t360cli.errors import AuthRefused, DeliveryIncomplete, EndpointFailed, ExitCode, T360Error
from t360cli.guards import RejectLimit, empty_run_warning, min_rows_refusal, parse_max_rejects, too_few_rows
from t360cli.pipeline import Pipeline
from t360cli.plan import MATCH_KEYS, Plan, RunOptions, plan
from t360cli.report import ControlTotals, RejectsWriter, Report
from t360cli.tally import Counts, Totals

if TYPE_CHECKING:
    from t360cli.client import Halt, Sender
    from t360cli.deliver import LogEntry
    from t360cli.progress_log import RunLog

RowEstimate = Callable[[], int | None]  # rows to read, counted only if the observer asks


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
    """SPEC 7: failed batches -> 4 (wins over 1); rejected rows with delivery complete -> 1."""
    if not dry_run and counts.batches_failed:
        return ExitCode.INCOMPLETE
    return ExitCode.PARTIAL if counts.rows_rejected else ExitCode.OK


def control_totals(pipe: Pipeline, acknowledged: Totals | None, dry_run: bool) -> ControlTotals | None:
    if pipe.kind != "activities":
        return None
    if acknowledged is None:
        return ControlTotals(pipe.totals.as_json(), {} if dry_run else None)
    return ControlTotals(pipe.totals.as_json(), acknowledged.as_json())


def _report(
    the_plan: Plan,
    pipe: Pipeline,
    rejects_file: Path | None,
    started: float,
    code: int,
    *,
    dry_run: bool,
    acknowledged: Totals | None = None,
    log: str | None = None,
) -> Report:
    return Report(
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


def _warn_if_empty(the_plan: Plan, pipe: Pipeline, observer: Observer) -> str | None:
    warning = empty_run_warning(pipe.counts, the_plan.file_names, pipe.where_seen())
    if warning is not None:
        observer.note(warning)
    return warning


@dataclass(frozen=True)
class DryPass:
    report: Report
    limit: RejectLimit | None
    warning: str | None  # no data row read, or where: filtered every row

    def refusal(self, min_rows: int, sent_nothing: bool) -> T360Error | None:
        """--max-rejects exceeded or --min-rows not met: the error to raise (exit 3)."""
        counts, rejects = self.report.counts, self.report.rejects
        if self.limit is not None and self.limit.exceeded(counts):
            return self.limit.refusal(counts, rejects, sent_nothing)
        if too_few_rows(counts, min_rows):
            return min_rows_refusal(counts, min_rows, rejects, sent_nothing)
        return None


def _dry_run(opts: RunOptions, settings: Settings, observer: Observer) -> DryPass:
    started = time.monotonic()
    the_plan = plan(opts, settings)
    limit = parse_max_rejects(opts.max_rejects)
    pipe, rejects = _pipeline(the_plan, opts.limit, observer, "validating")
    for _ in batches(pipe, settings):
        pipe.counts.batches_total += 1
    stopped = (limit is not None and limit.exceeded(pipe.counts)) or too_few_rows(pipe.counts, opts.min_rows)
    code = ExitCode.STOPPED if stopped else exit_code(pipe.counts, True)
    warning = _warn_if_empty(the_plan, pipe, observer)
    report = _report(the_plan, pipe, rejects.close(), started, code, dry_run=True)
    if opts.report:
        report.write(Path(opts.report))
    observer.finish(report)
    return DryPass(report, limit, warning)


def validate(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> Report:
    """The dry run: read, map, validate and batch everything; send nothing.

    Over --max-rejects or under --min-rows, the report is written and the observer told,
    then TooManyRejects or TooFewRows is raised (exit 3)."""
    dry = _dry_run(opts, settings, observer or NullObserver())
    refusal = dry.refusal(opts.min_rows, sent_nothing=False)
    if refusal is not None:
        raise refusal
    return dry.report


def upload(opts: RunOptions, settings: Settings, observer: Observer | None = None) -> Report:
    """Send what the progress log does not hold as acknowledged.

    Raises (once the report and the log's summary are written) AuthRefused (exit 3) if the
    server refuses the key, EndpointFailed (exit 4) if the endpoint cannot work or too many
    batches fail in a row, DeliveryIncomplete (exit 4) for an error after sending began."""
    if opts.dry_run:
        return validate(opts, settings, observer)
    obs = observer or NullObserver()
    for warning in settings.check_url():
        obs.note(warning)
    key = settings.api_key()
    if opts.max_rejects is not None or opts.min_rows:  # refuse to send anything: a full dry pass first
        pre = _dry_run(replace(opts, report=None), settings, NullObserver())
        refusal = pre.refusal(opts.min_rows, sent_nothing=True)
        if refusal is not None:
            if pre.warning:
                obs.note(pre.warning)
            if opts.report:
                replace(pre.report, dry_run=False).write(Path(opts.report))
            raise refusal
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
        if prior:
            observer.note(resume_note(log, prior))
        pipe, rejects = _pipeline(the_plan, opts.limit, observer, "uploading")
        unacked = Totals(pipe.totals.fields)
        outcome = await _deliver(the_plan, pipe, rejects, settings, key, log, prior, unacked, observer)
        _warn_if_empty(the_plan, pipe, observer)
        report, outcome = _wrap_up(the_plan, opts, pipe, rejects, started, outcome, observer, log, unacked)
    if outcome.error is not None:
        raise _after_sending(outcome.error, the_plan.log_path, key) if outcome.began else outcome.error
    if outcome.halt is not None:
        error = AuthRefused if outcome.halt.auth else EndpointFailed
        raise error(outcome.halt.message, outcome.halt.hint or None)
    return report


def resume_note(log: RunLog, prior: dict[int, LogEntry]) -> str:
    """`resuming LOG: A of B batches already acknowledged` (B: the batches the log knows of)."""
    acked = sum(1 for line in prior.values() if line.get("status") == "acked")
    totals = [line["summary"].get("batches_total") for line in log.entries if "summary" in line]
    known = max([len(prior), *(total for total in totals if type(total) is int)])
    return f"resuming {log.path}: {acked} of {known} batches already acknowledged"


@dataclass(frozen=True)
class Delivered:
    code: ExitCode
    halt: Halt | None = None  # a refused key or a broken endpoint: raised once the report is written
    began: bool = False  # a request was sent by this run
    error: BaseException | None = None  # what ended the run after sending began (or while wrapping up)

    @property
    def complete(self) -> bool:
        """Every batch of the input was settled (so the acknowledged totals are known)."""
        return self.halt is None and self.error is None and self.code not in (ExitCode.INTERRUPTED, ExitCode.STOPPED)


def _wrap_up(
    the_plan: Plan,
    opts: RunOptions,
    pipe: Pipeline,
    rejects: RejectsWriter,
    started: float,
    outcome: Delivered,
    observer: Observer,
    log: RunLog,
    unacked: Totals,
) -> tuple[Report, Delivered]:
    """Close the rejects file, write the report and the log's summary, tell the observer.

    A write that fails here is kept in the outcome (exit 4 once sending began); whatever can
    still be written is."""
    rejects_file = None
    try:
        rejects_file = rejects.close()
    except T360Error as exc:
        outcome = _failed(outcome, exc)
    acknowledged = _acknowledged(pipe, unacked) if outcome.complete else None
    report = _report(
        the_plan, pipe, rejects_file, started, outcome.code, dry_run=False, acknowledged=acknowledged, log=str(log.path)
    )
    if opts.report:
        try:
            report.write(Path(opts.report))
        except T360Error as exc:
            outcome = _failed(outcome, exc)
            report = replace(report, exit_code=int(outcome.code))
    try:
        log.append({"index": -1, "summary": report.to_json()})
    except T360Error as exc:
        outcome = _failed(outcome, exc)
    observer.finish(report)
    if outcome.code == ExitCode.INTERRUPTED:
        observer.note(
            f"interrupted after {pipe.counts.records_sent} records acknowledged; rerun the same command to resume"
        )
    return report, outcome


def _failed(outcome: Delivered, exc: T360Error) -> Delivered:
    """The outcome once `exc` struck while wrapping up (the first error is the one raised)."""
    code = ExitCode.INCOMPLETE if outcome.began else exc.exit_code
    return replace(outcome, code=code, error=outcome.error or exc)


def _after_sending(exc: BaseException, log_path: Path, key: str) -> DeliveryIncomplete:
    """An error after the first request: exit 4 (never 2, "nothing sent"), its message kept."""
    resume = f"What was acknowledged is kept in {log_path}: rerun the same command to resume."
    if isinstance(exc, DeliveryIncomplete):
        return exc
    if isinstance(exc, T360Error):
        return DeliveryIncomplete(exc.message, f"{exc.hint} {resume}" if exc.hint else resume)
    text = f"{exc}".replace(key, "***") if key else f"{exc}"
    return DeliveryIncomplete(f"the run stopped after sending began: {type(exc).__name__}: {text}.", resume)


def _sender(the_plan: Plan, settings: Settings, key: str, observer: Observer) -> Sender:
    from t360cli.client import RetryPolicy, Sender

    return Sender(
        base_url=settings.base_url or "",
        endpoint=contract.ENDPOINTS[the_plan.mapping.kind],
        api_key=key,
        timeout_s=settings.timeout_s,
        retry=RetryPolicy(
            settings.max_attempts, settings.backoff_initial_s, settings.backoff_max_s, settings.retry_after_max_s
        ),
        rate_limit=settings.rate_limit,
        max_connections=settings.concurrency,
        api_key_hint=settings.key_hint(),
        on_retry=observer.retry,
        ca_bundle=settings.ca_bundle,
    )


async def _deliver(
    the_plan: Plan,
    pipe: Pipeline,
    rejects: RejectsWriter,
    settings: Settings,
    key: str,
    log: RunLog,
    prior: dict[int, LogEntry],
    unacked: Totals,
    observer: Observer,
) -> Delivered:
    from t360cli.deliver import Delivery, Producer, Refusals, stop_on_signals

    refusals = Refusals(pipe.counts, pipe.totals, rejects)
    async with _sender(the_plan, settings, key, observer) as sender:
        delivery = Delivery(
            sender,
            log,
            pipe.counts,
            settings.concurrency,
            refusals,
            on_batch=observer.progress,
            unacked=unacked,
            stop_after=settings.stop_after_failed_batches,
        )
        producer = Producer(batches(pipe, settings), depth=2 * settings.concurrency)
        with stop_on_signals(delivery.stop):
            try:
                await delivery.run(producer, prior)
            except Exception as exc:
                if not delivery.began:
                    raise
                return Delivered(ExitCode.INCOMPLETE, delivery.halt, True, exc)
            finally:
                producer.stop()
                producer.thread.join()
                refusals.fold()
    return _delivered(delivery.halt, delivery.stopping, pipe.counts, delivery.began)


def _delivered(halt: Halt | None, stopping: bool, counts: Counts, began: bool) -> Delivered:
    if halt is not None:
        return Delivered(ExitCode.STOPPED if halt.auth else ExitCode.INCOMPLETE, halt, began)
    if stopping:
        return Delivered(ExitCode.INTERRUPTED, began=began)
    return Delivered(exit_code(counts, False), began=began)


def _acknowledged(pipe: Pipeline, unacked: Totals) -> Totals:
    acknowledged = pipe.totals.copy()
    acknowledged.merge(unacked, -1)
    return acknowledged
