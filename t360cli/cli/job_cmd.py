"""`t360 run JOB.yaml`: the nightly job (SPEC 13): every feed checked, then customers feeds first."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from t360cli.cli.app import QuietOpt, ReportOpt, VerboseOpt, _call, _settings, app
from t360cli.ui import Terminal

if TYPE_CHECKING:  # pyarrow only once a command runs: main() picks its allocator first
    from t360cli.job import FeedResult

JobArg = Annotated[
    str, typer.Argument(metavar="JOB.yaml", help="The job file: its feeds, config and failure policy (README).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate every feed (run.validate); send nothing.")]


@app.command(name="run", short_help="The nightly job: several feeds, customers first.")
def run_job(
    job: JobArg,
    dry_run: DryRunOpt = False,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run a job file's feeds: every feed's files and mapping checked first (nothing is sent
    if one is wrong), then customers feeds, then activities feeds; one line per feed, one
    JSON report for the job. A rerun resumes each feed."""
    to_stdout = report == "-"

    def body(term: Terminal) -> int:
        from t360cli import job as job_mod

        the_job = job_mod.load_job(Path(job))
        settings = _settings(the_job.config_path, term)
        path = None if to_stdout else report
        try:
            done = job_mod.run_job(the_job, settings, term, on_feed=_feed_line(term), dry_run=dry_run, report=path)
        finally:
            term.report = None  # `--report -` prints the job's report, not its last feed's
        if to_stdout:
            sys.stdout.buffer.write(done.json_bytes())
            sys.stdout.flush()
        if not quiet:
            term.print(f"t360 run: job {done.job} finished, exit {done.exit_code}")
        return done.exit_code

    _call(body, quiet, verbose, report_to_stdout=to_stdout)


def _feed_line(term: Terminal) -> Callable[[FeedResult], None]:
    """A line per feed as it ends (with -q only a feed's error)."""

    def show(feed: FeedResult) -> None:
        if feed.error is not None:
            term.error(f"feed {feed.name}: {feed.error}")
        if not term.quiet:
            term.print(f"t360 run: {feed.line()}")

    return show
