"""Commands around the uploads: mapping init, sandbox, demo, version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from t360cli import __version__
from t360cli.cli.app import VerboseOpt, _call, app, mapping_app
from t360cli.config import resolve
from t360cli.errors import UsageError
from t360cli.ui import DemoView, Terminal

if TYPE_CHECKING:
    from t360cli.sandbox import Faults


@mapping_app.command("init", short_help="Write a starter mapping for an export.")
def mapping_init(
    file: Annotated[str, typer.Argument(metavar="FILE", help="An export to read the columns of.")],
    kind: Annotated[str, typer.Option("--kind", metavar="KIND", help="customers or activities.")],
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="PATH", help="Write here instead of stdout.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv, tsv, xlsx, jsonl, json or parquet [default: by name, else sniffed].",
        ),
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option(metavar="CHAR", help='The cell delimiter; "\\t" for a tab [default: sniffed].')
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(metavar="NAME", help="The text encoding [default: utf-8, else cp1252].")
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(metavar="NAME", help="xlsx: sheet name or 0-based index [default: found].")
    ] = None,
    header_row: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="The header's line (xlsx: row) [default: found].")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write a starter mapping by matching the file's columns to Track360's fields."""

    def body(term: Terminal) -> int:
        from t360cli import starter

        options = {"format": fmt, "delimiter": delimiter, "encoding": encoding, "sheet": sheet}
        term.show_starter(starter.init_command(file, kind, output, force, header_row=header_row, **options))
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


@app.command(short_help="The guide's fields: name, type, required, limits.")
def fields(
    kind: Annotated[str | None, typer.Argument(metavar="KIND", help="customers or activities [default: both].")] = None,
) -> None:
    """Print the fields the Track360 guide names, per kind: name, type, required, limits."""

    def body(term: Terminal) -> int:
        from t360cli import contract

        if kind is not None and kind not in contract.KINDS:
            raise UsageError(f"no kind '{kind}': give customers or activities.")
        for name in [kind] if kind else list(contract.KINDS):
            term.show_fields(name, contract.FIELD_REFERENCE[name])
        return 0

    _call(body)


@app.command(short_help="Print the version (also t360 --version).")
def version() -> None:
    """Print the version."""
    typer.echo(f"t360 {__version__}")
