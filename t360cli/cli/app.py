"""The Typer app, the options commands share, and the one place errors become an exit code."""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import fields
from types import FrameType
from typing import Annotated

import typer

from t360cli import __version__
from t360cli.config import Settings, resolve
from t360cli.errors import ExitCode, T360Error
from t360cli.ui import Terminal

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
    fn: Callable[[Terminal], int],
    quiet: bool = False,
    verbose: bool = False,
    report_to_stdout: bool = False,
    records_to_stdout: bool = False,
) -> None:
    """Run a command body; turn errors into one or two sentences and an exit code.

    `report_to_stdout` (`--report -`): the human summary goes to stderr and the JSON report
    the run produced to stdout, even when the run then raised (a stopped run has a report).
    `records_to_stdout` (`validate --show N`): the same, with the first records, one JSON
    object a line."""
    to_stdout = report_to_stdout or records_to_stdout
    term = Terminal(out=sys.stderr if to_stdout else None, quiet=quiet, verbose=verbose)
    previous = _interruptible()
    try:
        code = _run_body(fn, term, verbose)
    finally:
        _restore(previous)
        if to_stdout and term.report is not None:
            if report_to_stdout:
                sys.stdout.buffer.write(term.report.json_bytes())
            for record in term.report.preview if records_to_stdout else ():
                sys.stdout.write(record + "\n")
            sys.stdout.flush()
    raise typer.Exit(code)


Handlers = dict[int, Callable[[int, FrameType | None], object] | int | None]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interruptible() -> Handlers:
    """While a command runs, Ctrl-C and SIGTERM raise KeyboardInterrupt: "interrupted", exit
    130 (a run that sends installs its own handlers to stop cleanly and flush its log)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: Handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return previous


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _restore(previous: Handlers) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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
        from t360cli.urls import mask_url  # a URL's password is never shown (SPEC 11)

        term.note(f"config file: {settings.config_path or 'none'} ({settings.sources['config_path']})")
        for f in fields(settings):
            if f.name not in ("config_path", "sources"):
                source = settings.sources.get(f.name, "default")
                value = getattr(settings, f.name)
                shown = repr(mask_url(value)) if isinstance(value, str) else repr(value)
                term.note(f"setting {f.name} = {shown} ({source})")
    return settings
