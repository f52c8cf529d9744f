"""Commands that read exports and send them: upload, validate, replay, status."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from t360cli.cli.app import (
    BaseUrlOpt,
    BatchOpt,
    ConcOpt,
    ConfigOpt,
    Files,
    LimitOpt,
    LogOpt,
    MappingOpt,
    MaxRejOpt,
    MinRowsOpt,
    QuietOpt,
    RateOpt,
    RejectsOpt,
    ReportOpt,
    VerboseOpt,
    _call,
    _settings,
    app,
)
from t360cli.errors import ExitCode, T360Error, UsageError
from t360cli.ui import Terminal

if TYPE_CHECKING:  # pyarrow only once a command runs: main() picks its allocator first
    from t360cli.plan import RunOptions


@app.command(short_help="Send records to Track360 (a rerun resumes).")
def upload(
    files: Files,
    mapping: MappingOpt,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = None,
    concurrency: ConcOpt = None,
    rate: RateOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do everything but send (same as validate).")] = False,
    log: LogOpt = None,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore an existing progress log and start over.")] = False,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
    max_rejects: MaxRejOpt = None,
    limit: LimitOpt = None,
    min_rows: MinRowsOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Send records to Track360 (resumes an interrupted run of the same files)."""
    from t360cli.plan import RunOptions

    cli: dict[str, object] = {
        "base_url": base_url,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "rate_limit": rate,
    }
    opts = RunOptions(files, mapping, dry_run, limit, max_rejects, log, restart, rejects, report, min_rows=min_rows)
    _send(config, cli, quiet, verbose, opts)


@app.command(short_help="Dry run: read, map and validate; send nothing.")
def validate(
    files: Files,
    mapping: MappingOpt,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
    max_rejects: MaxRejOpt = None,
    limit: LimitOpt = None,
    min_rows: MinRowsOpt = 0,
    show: Annotated[
        int, typer.Option("--show", min=0, metavar="N", help="Print the first N valid records as they would be sent.")
    ] = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Dry run: read, map and validate; send nothing (no API key needed)."""
    from t360cli.plan import RunOptions

    opts = RunOptions(
        files, mapping, True, limit, max_rejects, rejects=rejects, report=report, min_rows=min_rows, show=show
    )
    _send(config, {"batch_size": batch_size, "base_url": base_url}, quiet, verbose, opts)


def _send(config: str | None, cli: dict[str, object], quiet: bool, verbose: bool, opts: RunOptions) -> None:
    """The one implementation behind upload and validate (a dry run is an upload that sends nothing)."""
    to_stdout = opts.report == "-"
    if to_stdout:
        opts = replace(opts, report=None)
    if to_stdout and opts.show:
        _call(_refuse_show_and_report, quiet, verbose)

    def body(term: Terminal) -> int:
        from t360cli import run

        return run.upload(opts, _settings(config, term, **cli), term).exit_code

    _call(body, quiet, verbose, report_to_stdout=to_stdout, records_to_stdout=opts.show > 0)


def _refuse_show_and_report(term: Terminal) -> int:
    raise UsageError("--show and --report - both print to standard output.", "Write the report to a file instead.")


@app.command(short_help="Re-send batches recorded in a progress log.")
def replay(
    log: Annotated[str, typer.Argument(metavar="LOG", help="The progress log of an earlier upload.")],
    failed: Annotated[bool, typer.Option("--failed", help="Re-send the batches that failed (default).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Re-send every batch.")] = False,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Re-send batches recorded in a progress log (inputs must be unchanged)."""
    to_stdout = report == "-"

    def body(term: Terminal) -> int:
        from t360cli import replay as replay_mod

        if failed and all_:
            raise T360Error("give --failed or --all, not both.")
        settings = _settings(config, term, base_url=base_url)
        path = None if to_stdout else report
        return replay_mod.replay(Path(log), settings, term, resend_all=all_, report=path).exit_code

    _call(body, quiet, verbose, report_to_stdout=to_stdout)


@app.command(short_help="Summarise a run from its log; no LOG: list the runs.")
def status(
    log: Annotated[
        str | None, typer.Argument(metavar="LOG", help="A progress log [default: list <state_dir>/runs].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Summarise a run from its progress log, with the command that finishes it; without LOG,
    list the runs in <state_dir>/runs, newest first."""

    def body(term: Terminal) -> int:
        from t360cli import replay as replay_mod

        if log is not None:
            term.show_status(replay_mod.status(Path(log)), as_json)
            return 0
        return _list_runs(config, term, as_json)

    _call(body, False, verbose)


def _list_runs(config: str | None, term: Terminal, as_json: bool) -> int:
    """Exit 0 when every run listed could be read; else 2 (ui shows one error line per unreadable log)."""
    from t360cli.runs import list_runs

    runs_dir = Path(_settings(config, term).state_dir) / "runs"
    return int(ExitCode.USAGE) if term.show_runs(runs_dir, list_runs(runs_dir), as_json) else 0
