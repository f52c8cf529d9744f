"""`t360 ledger stats|forget|seed`: what t360 remembers of what Track360 acknowledged (SPEC 13)."""

from __future__ import annotations

from typing import Annotated

import typer

from t360cli.cli.app import HELP_OPTIONS, BaseUrlOpt, ConfigOpt, Files, MappingOpt, VerboseOpt, _call, _settings, app
from t360cli.ui import Terminal

ledger_app = typer.Typer(
    no_args_is_help=True,
    help="The ledger: what Track360 acknowledged across runs, per target (state_dir/ledger.sqlite).",
    context_settings=HELP_OPTIONS,
)
app.add_typer(ledger_app, name="ledger", short_help="What t360 remembers across runs (ledger stats|forget|seed).")


@ledger_app.command("stats", short_help="Count, oldest and newest per target and kind.")
def stats(
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show what the ledger holds per target and kind (count, oldest, newest); * marks this target."""

    def body(term: Terminal) -> int:
        from t360cli import ledger_ops

        term.show_ledger_stats(ledger_ops.stats(_settings(config, term, base_url=base_url)), as_json)
        return 0

    _call(body, False, verbose)


@ledger_app.command("forget", short_help="Remove entries of this target (no prompt).")
def forget(
    kind: Annotated[
        str | None, typer.Option("--kind", metavar="KIND", help="customers or activities: all of them, or --id.")
    ] = None,
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", metavar="ID", help="A customerId or eventid to forget (repeatable; needs --kind)."),
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", metavar="YYYY-MM-DD", help="Entries acknowledged before this day (UTC).")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Everything this target's ledger holds.")] = False,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Remove this target's entries, so that the next upload sends those records again; prints how many."""

    def body(term: Terminal) -> int:
        from t360cli import ledger_ops

        settings = _settings(config, term, base_url=base_url)
        term.print(ledger_ops.forget(settings, kind, ids or (), before, everything).line())
        return 0

    _call(body, False, verbose)


@ledger_app.command("seed", short_help="Record valid records as acknowledged; send nothing.")
def seed(
    files: Files,
    mapping: MappingOpt,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Record the valid records of FILE... as acknowledged by this target without sending anything
    (adopting t360 where the data was already sent by other means)."""

    def body(term: Terminal) -> int:
        from t360cli import ledger_ops

        seeded = ledger_ops.seed(files, mapping, _settings(config, term, base_url=base_url))
        term.show_seeded(seeded)
        return seeded.exit_code

    _call(body, False, verbose)
