"""`t360 run JOB.yaml`: the nightly job (SPEC 13). Several feeds, customers first, one lock, one report.

- `job_file.load_job` reads the job file and reports every mistake in it at once.
- `check` loads every feed's mapping, resolves its files and reads their headers before
  anything is sent: every problem in one message (exit 2, nothing sent); an optional feed
  without a file is skipped.
- `run_job` runs the feeds, customers feeds first, each through `run.upload` (or
  `run.validate` for a dry run) with the same `JobCustomers`, under one lock
  (`state_dir/jobs/<job name>.lock`); each feed keeps its own progress log (the default
  one), so a rerun resumes each feed. It returns a `JobReport`; it never prints.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from t360cli import run
from t360cli.config import Settings, resolve
from t360cli.errors import AuthRefused, DeliveryIncomplete, ExitCode, LogError, T360Error, UsageError
from t360cli.files import refuse_symlink, write_user_file
from t360cli.job_file import Feed, Job, load_job
from t360cli.ledger_view import JobCustomers
from t360cli.mapping import load_mapping
from t360cli.observer import NullObserver, Observer, RowEstimate
from t360cli.pipeline import open_inputs
from t360cli.plan import RunOptions
from t360cli.progress_log import LogLock
from t360cli.report import Report
from t360cli.tally import Counts

__all__ = ["Feed", "FeedResult", "Job", "JobReport", "check", "load_job", "run_job", "settings_of"]
RANK = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 130: 5}  # the job's exit code is its feeds' worst
INTERRUPTED = "the job was interrupted"


@dataclass(frozen=True)
class Checked:
    """A feed ready to run: its kind, its files and mapping as paths t360 can open."""

    feed: Feed
    kind: str
    files: list[str]
    mapping: str
    skipped: str | None = None  # optional, and no file matches


@dataclass(frozen=True)
class FeedResult:
    """What became of one feed: its Report, or why it was skipped, or the error that ended it."""

    name: str
    kind: str
    exit_code: int = 0
    report: Report | None = None
    skipped: str | None = None
    error: str | None = None
    key_refused: bool = False  # the server refused the API key: every later feed is skipped

    def to_json(self) -> dict[str, object]:
        if self.skipped is not None:
            return {"name": self.name, "skipped": self.skipped}
        data: dict[str, object] = {"name": self.name}
        data.update(self.report.to_json() if self.report is not None else {"kind": self.kind})
        data["exit_code"] = self.exit_code
        if self.error is not None:
            data["error"] = self.error
        return data

    def line(self) -> str:
        """`feed customers: read 40, sent 32, rejected 4, unchanged 0, exit 1` (the job's line per feed)."""
        if self.skipped is not None:
            return f"feed {self.name}: skipped ({self.skipped})"
        if self.report is None:
            return f"feed {self.name}: stopped before reading, exit {self.exit_code}"
        counts: Counts = self.report.counts
        sent = f"sent {counts.records_sent:,}" + (" (dry run)" if self.report.dry_run else "")
        return (
            f"feed {self.name}: read {counts.rows_read:,}, {sent}, rejected {counts.rows_rejected:,}, "
            f"unchanged {counts.rows_unchanged:,}, exit {self.exit_code}"
        )


@dataclass(frozen=True)
class JobReport:
    """`{"job": PATH, "exit_code": N, "feeds": [...]}`, the feeds in the order run."""

    job: str
    exit_code: int
    feeds: list[FeedResult] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"job": self.job, "exit_code": self.exit_code, "feeds": [feed.to_json() for feed in self.feeds]}

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2) + b"\n"


FeedDone = Callable[[FeedResult], None]  # told as each feed ends (the command prints its line)


# -- before anything is sent -----------------------------------------------------------
def settings_of(job: Job) -> Settings:
    """The job's settings: its `config:` as if given with -c (else $T360_CONFIG, ./config.yaml)."""
    return resolve(job.config_path, {})


def check(job: Job, settings: Settings, dry_run: bool = False) -> list[Checked]:
    """Every feed's mapping loaded, files resolved and headers read, customers feeds first.

    Every problem (and, to send, a missing key or base URL) in one UsageError: nothing was sent."""
    problems: list[str] = []
    if not dry_run:
        for what in (settings.check_url, settings.api_key):
            try:
                what()
            except T360Error as exc:
                problems.append(f"• {_indented(str(exc))}")
    checked = []
    for feed in job.feeds:
        try:
            checked.append(_check_feed(job, feed))
        except T360Error as exc:
            problems.append(f"• feed '{feed.name}': {_indented(str(exc))}")
    if problems:
        raise UsageError(f"job {job.path} cannot run; nothing was sent:\n" + "\n".join(problems))
    return [c for c in checked if c.kind == "customers"] + [c for c in checked if c.kind != "customers"]


def _indented(text: str) -> str:
    return text.replace("\n", "\n  ")


def _check_feed(job: Job, feed: Feed) -> Checked:
    mapping_path = job.here(feed.mapping)
    mapping = load_mapping(Path(mapping_path))
    files = [job.here(pattern) for pattern in feed.files]
    missing = [(shown, full) for shown, full in zip(feed.files, files, strict=True) if not _matches(full)]
    if feed.optional and len(missing) == len(files):
        return Checked(feed, mapping.kind, files, mapping_path, f"no file matches {', '.join(feed.files)}")
    if missing:
        shown, full = missing[0]
        where = "" if Path(shown).expanduser().is_absolute() else f" (in {Path(os.path.abspath(full)).parent})"
        raise UsageError(f"no file matches {shown}{where}.")
    open_inputs(mapping, files)  # every header read, the mapping's columns found
    return Checked(feed, mapping.kind, files, mapping_path)


def _matches(pattern: str) -> bool:
    if Path(pattern).exists():
        return True
    return any(ch in pattern for ch in "*?[") and any(
        Path(hit).is_file() for hit in glob.iglob(pattern, recursive=True)
    )


# -- the run -------------------------------------------------------------------------
def run_job(
    job: Job,
    settings: Settings,
    observer: Observer | None = None,
    *,
    on_feed: FeedDone | None = None,
    dry_run: bool = False,
    report: str | None = None,
) -> JobReport:
    """Check every feed, then run them in order under the job's lock; write `report` if given."""
    obs = observer or NullObserver()
    lock = None if dry_run else _lock(job, settings)
    try:
        checked = check(job, settings, dry_run)
        results = _run_feeds(job, checked, settings, obs, dry_run, on_feed)
    finally:
        if lock is not None:
            lock.release()
    done = JobReport(str(job.path), job_exit_code(results, dry_run), results)
    if report:
        _write(done, Path(report), sent=not dry_run and any(r.report is not None for r in results))
    return done


def _lock(job: Job, settings: Settings) -> LogLock:
    """`state_dir/jobs/<job name>.lock`: a live owner is named (exit 2), a dead one's lock broken."""
    state_dir = Path(settings.state_dir)
    lock = LogLock(state_dir / "jobs" / job.name)
    refuse_symlink(lock.path, "lock file", state_dir)
    try:
        lock.path.parent.mkdir(parents=True, exist_ok=True)
        return lock.acquire()
    except LogError:
        holder = _holder(lock.path)
        raise LogError(
            f"job {job.path} is already running: {holder} holds the lock {lock.path}.",
            f"Wait for it to finish; if no t360 run is active, delete {lock.path}.",
        ) from None
    except OSError as exc:
        raise LogError(f"cannot take the job's lock {lock.path}: {exc.strerror or exc}.") from None


def _holder(path: Path) -> str:
    try:
        text = path.read_text("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text.isdigit() else "another process"


def _run_feeds(
    job: Job, checked: list[Checked], settings: Settings, observer: Observer, dry_run: bool, on_feed: FeedDone | None
) -> list[FeedResult]:
    """The feeds in order; what ends the job early (a refused key, an interruption) skips the rest."""
    customers = JobCustomers()  # the same object for every feed: activities see the job's customers
    results: list[FeedResult] = []
    stop_all: str | None = None  # why every later feed is skipped
    customers_failed: str | None = None  # why activities are skipped (on_customers_failure: stop)
    for feed in checked:
        held = customers_failed if feed.kind != "customers" and job.on_customers_failure == "stop" else None
        why = feed.skipped or stop_all or held
        result = (
            FeedResult(feed.feed.name, feed.kind, skipped=why)
            if why
            else _run_feed(feed, settings, observer, dry_run, customers)
        )
        if result.exit_code == ExitCode.INTERRUPTED:
            stop_all = INTERRUPTED
        elif result.key_refused:
            stop_all = stop_all or f"the server refused the API key (feed '{result.name}')"
        if feed.kind == "customers" and result.skipped is None and result.exit_code not in (0, 1):
            customers_failed = customers_failed or f"customers feed '{result.name}' did not deliver completely"
        results.append(result)
        if on_feed is not None:
            on_feed(result)
    return results


class _Catching:
    """The observer each feed's run is given: passes everything on, keeps the report (a run
    that raises has told `finish` first)."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.report: Report | None = None

    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None:
        self.observer.start(title, dry_run, estimate_rows)

    def progress(self, counts: Counts) -> None:
        self.observer.progress(counts)

    def retry(self, label: str) -> None:
        self.observer.retry(label)

    def note(self, text: str) -> None:
        self.observer.note(text)

    def finish(self, report: Report) -> None:
        self.report = report
        self.observer.finish(report)


def _run_feed(
    feed: Checked, settings: Settings, observer: Observer, dry_run: bool, customers: JobCustomers
) -> FeedResult:
    catching = _Catching(observer)
    opts = RunOptions(files=feed.files, mapping=feed.mapping, dry_run=dry_run)
    name = feed.feed.name
    try:
        report = run.upload(opts, settings, catching, job=customers)
    except T360Error as exc:  # the run wrote its report (if it got that far) before raising
        refused = isinstance(exc, AuthRefused)  # the key is wrong for every feed
        return FeedResult(name, feed.kind, int(exc.exit_code), catching.report, error=str(exc), key_refused=refused)
    except KeyboardInterrupt:
        return FeedResult(name, feed.kind, int(ExitCode.INTERRUPTED), catching.report, error="interrupted.")
    return FeedResult(name, feed.kind, report.exit_code, report)


def job_exit_code(results: list[FeedResult], dry_run: bool) -> int:
    """The most severe of the feeds' (130, 4, 3, 1, 0); a feed's 2 once another feed ran is a 4:
    the job did send, and a rerun resumes."""
    codes = [result.exit_code for result in results if result.skipped is None]
    if not dry_run and any(code != ExitCode.USAGE for code in codes):
        codes = [int(ExitCode.INCOMPLETE) if code == ExitCode.USAGE else code for code in codes]
    return max(codes, key=lambda code: RANK.get(code, 2), default=0)


def _write(done: JobReport, path: Path, sent: bool) -> None:
    try:
        write_user_file(path, done.json_bytes())
    except T360Error as exc:
        if not sent:
            raise
        hint = "The feeds' progress logs hold what was acknowledged: a rerun of the job resumes each feed."
        raise DeliveryIncomplete(exc.message, hint) from exc
