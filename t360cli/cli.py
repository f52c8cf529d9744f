"""The `t360` command line: one thin function per command, errors mapped in one place."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from t360cli import __version__
from t360cli.config import Settings, resolve
from t360cli.errors import ExitCode, T360Error, UsageError
from t360cli.ui import DemoView, Terminal

if TYPE_CHECKING:  # pyarrow only once a command runs: main() picks its allocator first
    from t360cli.plan import RunOptions
    from t360cli.sandbox import Faults

EXIT_CODES = """Exit codes: 0 every row valid and every batch acknowledged; 1 delivered, but some rows were rejected;
2 usage, configuration or input error, nothing sent; 3 stopped by a guard (API key refused, --max-rejects,
--min-rows); 4 delivery incomplete, rerun the same command to resume; 130 interrupted."""
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
    help="Bulk uploader for the Track360 attribution API: map, validate and deliver "
    "broker exports (CSV, TSV, XLSX, JSONL, JSON, Parquet).",
    epilog=EXIT_CODES,
)
mapping_app = typer.Typer(no_args_is_help=True, help="Work with mapping files.", context_settings=HELP_OPTIONS)
app.add_typer(mapping_app, name="mapping", short_help="Work with mapping files (mapping init).")

Files = Annotated[
    list[str], typer.Argument(metavar="FILE", help="Input files: paths or globs; .gz is read transparently.")
]
MappingOpt = Annotated[str, typer.Option("--mapping", "-m", metavar="PATH", help="The mapping file (YAML).")]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", metavar="PATH", help="Config file [default: $T360_CONFIG, else ./config.yaml]."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL", help="Track360 base URL [default: $T360_BASE_URL, else config]."),
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", min=1, metavar="N", help="Records per request [default: 500].")
]
ConcOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, metavar="N", help="Requests in flight [default: 4].")
]
RateOpt = Annotated[float | None, typer.Option("--rate", min=0.001, metavar="R", help="At most R requests per second.")]
LogOpt = Annotated[
    str | None,
    typer.Option("--log", metavar="PATH", help="Progress log [default: <state_dir>/runs/<name>-<fingerprint>.jsonl]."),
]
RejectsOpt = Annotated[
    str | None, typer.Option("--rejects", metavar="PATH", help="CSV of rejected rows [default: beside the log].")
]
ReportOpt = Annotated[
    str | None, typer.Option("--report", metavar="PATH", help="Write a JSON summary here ('-': stdout).")
]
MaxRejOpt = Annotated[
    str | None,
    typer.Option("--max-rejects", metavar="N|P%", help="Send nothing if more rows than N (or P%) are invalid."),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, metavar="N", help="Read only the first N data rows.")]
MinRowsOpt = Annotated[
    int, typer.Option("--min-rows", min=0, metavar="N", help="Send nothing unless at least N rows are valid.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the exit code.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More output; tracebacks on errors.")]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"t360 {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The options before any command (the help text is the app's)."""


def _call(
    fn: Callable[[Terminal], int], quiet: bool = False, verbose: bool = False, report_to_stdout: bool = False
) -> None:
    """Run a command body; turn errors into one or two sentences and an exit code.

    `report_to_stdout` (`--report -`): the human summary goes to stderr and the JSON report
    the run produced to stdout, even when the run then raised (a stopped run has a report)."""
    term = Terminal(out=sys.stderr if report_to_stdout else None, quiet=quiet, verbose=verbose)
    try:
        code = _run_body(fn, term, verbose)
    finally:
        if report_to_stdout and term.report is not None:
            sys.stdout.buffer.write(term.report.json_bytes())
            sys.stdout.flush()
    raise typer.Exit(code)


def _run_body(fn: Callable[[Terminal], int], term: Terminal, verbose: bool) -> int:
    try:
        return fn(term)
    except T360Error as exc:
        if verbose:
            traceback.print_exc()
        term.error(str(exc))
        code = int(exc.exit_code)
    except KeyboardInterrupt:
        term.error("interrupted.")
        code = int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: say so plainly, details with --verbose
        if verbose:
            traceback.print_exc()
        term.error(f"unexpected {type(exc).__name__}: {exc}. Run again with --verbose for details.")
        code = int(ExitCode.USAGE)
    return code


def _settings(config: str | None, term: Terminal, **cli: object) -> Settings:
    settings = resolve(config, cli)
    if term.verbose:  # where each setting came from (the key itself is never a setting)
        term.note(f"config file: {settings.config_path or 'none'} ({settings.sources['config_path']})")
        for f in fields(settings):
            if f.name not in ("config_path", "sources"):
                source = settings.sources.get(f.name, "default")
                term.note(f"setting {f.name} = {getattr(settings, f.name)!r} ({source})")
    return settings


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
    batch_size: BatchOpt = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
    max_rejects: MaxRejOpt = None,
    limit: LimitOpt = None,
    min_rows: MinRowsOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Dry run: read, map and validate; send nothing (no API key needed)."""
    from t360cli.plan import RunOptions

    opts = RunOptions(files, mapping, True, limit, max_rejects, rejects=rejects, report=report, min_rows=min_rows)
    _send(config, {"batch_size": batch_size}, quiet, verbose, opts)


def _send(config: str | None, cli: dict[str, object], quiet: bool, verbose: bool, opts: RunOptions) -> None:
    """The one implementation behind upload and validate (a dry run is an upload that sends nothing)."""
    to_stdout = opts.report == "-"
    if to_stdout:
        opts = replace(opts, report=None)

    def body(term: Terminal) -> int:
        from t360cli import run

        return run.upload(opts, _settings(config, term, **cli), term).exit_code

    _call(body, quiet, verbose, report_to_stdout=to_stdout)


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


@mapping_app.command("init", short_help="Write a starter mapping for an export.")
def mapping_init(
    file: Annotated[str, typer.Argument(metavar="FILE", help="An export to read the columns of.")],
    kind: Annotated[str, typer.Option("--kind", metavar="KIND", help="customers or activities.")],
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="PATH", help="Write here instead of stdout.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write a starter mapping by matching the file's columns to Track360's fields."""

    def body(term: Terminal) -> int:
        from t360cli import starter

        term.show_starter(starter.init_command(file, kind, output, force))
        return 0

    _call(body, False, verbose)


@app.command(short_help="Run a local Track360 receiver, with faults.")
def sandbox(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8360,
    db: Annotated[str | None, typer.Option(help="SQLite file [default: <state_dir>/sandbox.db].")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Key to accept [default: $T360_API_KEY, else 'sandbox-key'].")
    ] = None,
    fail_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of requests answered 503.")] = 0.0,
    throttle_rate: Annotated[float, typer.Option(min=0, max=1, help="Share answered 429 with Retry-After.")] = 0.0,
    drop_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of connections closed without an answer.")
    ] = 0.0,
    latency: Annotated[int, typer.Option(min=0, help="Delay before each answer, in ms.")] = 0,
    retry_after: Annotated[float, typer.Option(min=0, help="Retry-After seconds on 429.")] = 1.0,
    max_body_bytes: Annotated[int | None, typer.Option(min=1, help="Answer 413 above this body size.")] = None,
    poison: Annotated[str | None, typer.Option(help="Answer 400 to a batch holding a record with this value.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the fault dice.")] = None,
    fail_endpoint: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="customers or activities: every POST to it is answered 503 (an outage)."),
    ] = None,
    answer_status: Annotated[
        int | None,
        typer.Option(
            min=400,
            max=599,
            metavar="STATUS",
            help="Answer every POST to both endpoints with this status (404, 500...).",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run a local Track360 receiver (SQLite) with optional faults, for rehearsals."""

    def body(term: Terminal) -> int:
        from t360cli.sandbox import Faults

        try:
            faults = Faults(
                fail_rate=fail_rate,
                throttle_rate=throttle_rate,
                drop_rate=drop_rate,
                latency_ms=latency,
                retry_after=retry_after,
                max_body_bytes=max_body_bytes,
                poison=poison,
                seed=seed,
                fail_endpoint=fail_endpoint,
                answer_status=answer_status,
            )
        except ValueError as exc:
            raise UsageError(f"sandbox: {exc}.") from None
        _serve_sandbox(host, port, db, api_key, faults)
        return 0

    _call(body, False, verbose)


def _serve_sandbox(host: str, port: int, db: str | None, api_key: str | None, faults: Faults) -> None:
    """Serve until interrupted; the database in state_dir and the key from $T360_API_KEY by default."""
    from t360cli.sandbox import serve

    settings = resolve(None, {})
    path = db or str(Path(settings.state_dir) / "sandbox.db")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    key = api_key or os.environ.get(settings.api_key_env) or "sandbox-key"
    try:
        serve(host=host, port=port, db=path, api_key=key, faults=faults)
    except ValueError as exc:
        raise UsageError(f"sandbox: {exc}.") from None
    except OSError as exc:
        raise UsageError(
            f"sandbox cannot listen on {host}:{port}: {exc.strerror or exc}.",
            "Pick another --port (0 = any free port).",
        ) from None


@app.command(short_help="Sandbox + upload of the samples, end to end.")
def demo(verbose: VerboseOpt = False) -> None:
    """Start a sandbox, upload every sample file, and show what it received."""

    def body(term: Terminal) -> int:
        from t360cli import demo as demo_mod

        view = DemoView(term)
        return view.finish(demo_mod.run_demo(view))

    _call(body, False, verbose)


@app.command(short_help="Print the version (also t360 --version).")
def version() -> None:
    """Print the version."""
    typer.echo(f"t360 {__version__}")


def main() -> None:
    # Arrow's default allocator (mimalloc) keeps freed pages: ~60 MB more peak RSS on a
    # 1M-row file than jemalloc, which gives them back (bench/validate.py). Linux wheels
    # ship jemalloc; a user's own ARROW_DEFAULT_MEMORY_POOL wins.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    app(prog_name="t360")


if __name__ == "__main__":  # pragma: no cover
    main()
