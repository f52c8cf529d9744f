"""Library entry points: validate and upload (replay's delivery too). They return a Report and
never print: an Observer is told what happens.

Every command builds a Pipeline over the inputs, cuts batches, and (unless dry) hands
them to a Delivery that records each one in the progress log.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from t360cli import contract
from t360cli.config import Settings
from t360cli.errors import AuthRefused, DeliveryIncomplete, EndpointFailed, ExitCode, T360Error
from t360cli.guards import (
    RejectLimit,
    empty_run_warning,
    exit_code,
    min_rows_refusal,
    parse_max_rejects,
    too_few_rows,
)
from t360cli.ledger import FILE_NAME
from t360cli.ledger_view import Acknowledged, JobCustomers, ledger_notes, run_ledger
from t360cli.ledger_view import started as log_started
from t360cli.observer import NullObserver, Observer
from t360cli.pipeline import Pipeline
from t360cli.plan import MATCH_KEYS, Plan, RunOptions, batches, open_pipeline, plan
from t360cli.report import RejectsWriter, Report, report_of
from t360cli.tally import Counts, Totals

if TYPE_CHECKING:
    from t360cli.client import Halt, Sender
    from t360cli.deliver import LogEntry
    from t360cli.progress_log import RunLog


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


def _dry_run(opts: RunOptions, settings: Settings, observer: Observer, job: JobCustomers | None = None) -> DryPass:
    begun = time.monotonic()
    the_plan = plan(opts, settings)
    limit = parse_max_rejects(opts.max_rejects)
    key = settings.api_key_if_any()
    ledger_file = Path(settings.state_dir) / FILE_NAME
    if (key is None or not settings.base_url) and ledger_file.exists():  # SPEC 13: say so, in one line
        observer.note(
            f"the ledger {ledger_file} is not consulted (no API key or base_url says whose records to look up)."
        )
    kind = the_plan.mapping.kind
    with run_ledger(settings, key, kind, read_only=True, as_of=None, restart=opts.restart, job=job) as ledger:
        pipe, rejects = open_pipeline(the_plan, opts.limit, observer, "validating", settings, ledger)
        preview: list[str] = []
        for batch in batches(pipe, settings):
            pipe.counts.batches_total += 1
            wanted = min(batch.n, opts.show - len(preview))  # --show: the records exactly as they would go
            preview += [batch.part(i, i + 1)[1:-1].decode() for i in range(max(wanted, 0))]
    _after_reading(pipe, observer, job if ledger is not None else None)
    stopped = (limit is not None and limit.exceeded(pipe.counts)) or too_few_rows(pipe.counts, opts.min_rows)
    code = ExitCode.STOPPED if stopped else exit_code(pipe.counts, True)
    warning = _warn_if_empty(the_plan, pipe, observer)
    report = replace(
        report_of(the_plan.file_names, pipe, rejects.close(), begun, code, dry_run=True), preview=tuple(preview)
    )
    if opts.report:
        report.write(Path(opts.report))
    observer.finish(report)
    return DryPass(report, limit, warning)


def _after_reading(pipe: Pipeline, observer: Observer, job: JobCustomers | None, complete: bool = True) -> None:
    """What a run with a ledger says once it has read everything (a run that stopped early
    says only why); a customers feed of a job hands its customers to the job's activities."""
    if pipe.ledger is None:
        return
    notes = ledger_notes(pipe.kind, pipe.records_without_id, pipe.counts.orphan_activities, pipe.orphan_names)
    for note in notes if complete else []:
        observer.note(note)
    if job is not None and pipe.kind == "customers":
        job.keys.append(pipe.customer_keys())


def validate(
    opts: RunOptions, settings: Settings, observer: Observer | None = None, job: JobCustomers | None = None
) -> Report:
    """The dry run: read, map, validate and batch everything; send nothing.

    Over --max-rejects or under --min-rows, the report is written and the observer told,
    then TooManyRejects or TooFewRows is raised (exit 3)."""
    dry = _dry_run(opts, settings, observer or NullObserver(), job)
    refusal = dry.refusal(opts.min_rows, sent_nothing=False)
    if refusal is not None:
        raise refusal
    return dry.report


def upload(
    opts: RunOptions, settings: Settings, observer: Observer | None = None, job: JobCustomers | None = None
) -> Report:
    """Send what the progress log does not hold as acknowledged.

    Raises (once the report and the log's summary are written) AuthRefused (exit 3) if the
    server refuses the key, EndpointFailed (exit 4) if the endpoint cannot work or too many
    batches fail in a row, DeliveryIncomplete (exit 4) for an error after sending began."""
    if opts.dry_run:
        return validate(opts, settings, observer, job)
    obs = observer or NullObserver()
    for warning in settings.check_url():
        obs.note(warning)
    key = settings.api_key()
    if opts.max_rejects is not None or opts.min_rows:  # refuse to send anything: a full dry pass first
        pre = _dry_run(
            replace(opts, report=None), settings, NullObserver(), JobCustomers(list(job.keys)) if job else None
        )
        refusal = pre.refusal(opts.min_rows, sent_nothing=True)
        if refusal is not None:
            if pre.warning:
                obs.note(pre.warning)
            if opts.report:
                replace(pre.report, dry_run=False).write(Path(opts.report))
            raise refusal
    started = time.monotonic()
    return asyncio.run(deliver_plan(plan(opts, settings), opts, settings, obs, key, started, job=job))


async def deliver_plan(
    the_plan: Plan,
    opts: RunOptions,
    settings: Settings,
    observer: Observer,
    key: str,
    started: float,
    resend_all: bool = False,
    job: JobCustomers | None = None,
) -> Report:
    """Send what the log does not hold as acknowledged (everything with resend_all), and what
    the ledger does not hold as acknowledged with the same record (SPEC 13)."""
    from t360cli.deliver import latest_entries
    from t360cli.progress_log import RunLog

    kind = the_plan.mapping.kind
    with (
        RunLog.open(the_plan.log_path, the_plan.header, restart=opts.restart, match_keys=MATCH_KEYS) as log,
        run_ledger(
            settings,
            key,
            kind,
            read_only=False,
            as_of=log_started(log.header),
            restart=opts.restart,
            job=job,
        ) as ledger,
    ):
        prior = {} if resend_all else latest_entries(log.entries)
        if prior:
            observer.note(resume_note(log, prior))
        pipe, rejects = open_pipeline(the_plan, opts.limit, observer, "uploading", settings, ledger)
        unacked = Totals(pipe.totals.fields)
        acknowledged = Acknowledged(ledger.ledger, kind) if ledger is not None else None
        outcome = await _deliver(the_plan, pipe, rejects, settings, key, log, prior, unacked, observer, acknowledged)
        _warn_if_empty(the_plan, pipe, observer)
        _after_reading(pipe, observer, job, outcome.complete)
        report, outcome = _wrap_up(the_plan, opts, pipe, rejects, started, outcome, observer, log, unacked)
    if outcome.error is not None:
        raise _after_sending(outcome.error, the_plan.log_path, key) if outcome.began else outcome.error
    if outcome.halt is not None:
        error = AuthRefused if outcome.halt.auth else EndpointFailed
        raise error(outcome.halt.message, outcome.halt.hint or None)
    return report


def resume_note(log: RunLog, prior: dict[int, LogEntry]) -> str:
    """`resuming LOG: A of B batches already acknowledged`; B only when an earlier attempt
    finished and so knew how many batches the run has (an interrupted one did not)."""
    acked = sum(1 for line in prior.values() if line.get("status") == "acked")
    totals = [line["summary"].get("batches_total") for line in log.entries if "summary" in line]
    known = [total for total in totals if type(total) is int and total >= len(prior)]
    if known:
        return f"resuming {log.path}: {acked} of {known[-1]} batches already acknowledged"
    return f"resuming {log.path}: {acked} batches already acknowledged; the rest are read and sent now"


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
    report = report_of(
        the_plan.file_names,
        pipe,
        rejects_file,
        started,
        outcome.code,
        dry_run=False,
        acknowledged=acknowledged,
        log=str(log.path),
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
    acknowledged: Acknowledged | None,
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
            acknowledged=acknowledged,
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
                remembered = await _remember(acknowledged)
    if remembered is not None:  # the log holds the acknowledgements; the next run resumes by it
        return Delivered(ExitCode.INCOMPLETE, delivery.halt, delivery.began, remembered)
    return _delivered(delivery.halt, delivery.stopping, pipe.counts, delivery.began)


async def _remember(acknowledged: Acknowledged | None) -> T360Error | None:
    """Write the last acknowledged records to the ledger (after the log, off the event loop)."""
    if acknowledged is None:
        return None
    try:
        await asyncio.to_thread(acknowledged.flush)
    except T360Error as exc:
        return exc
    return None


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
