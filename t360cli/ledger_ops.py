"""`t360 ledger stats|forget|seed` as library calls returning typed results (SPEC 13).

Each finds its target as `upload` does: the base URL and the API key of the settings
(`-c`, `--base-url`, `$T360_API_KEY` or `api_key_file`), the ledger at
`state_dir/ledger.sqlite`. The key itself is never kept: only `Target`'s SHA-256 prefix.

- `stats` reads (never creates or writes) the file: count, oldest and newest per target
  and kind, every target the file holds, this one marked (its two kinds always shown).
- `forget` removes entries of this target (a missing file stays missing: 0 removed).
- `seed` reads, maps and validates the inputs as `validate` does, with a ledger that skips
  nothing, and records every valid record as acknowledged now; nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

from t360cli.config import Settings
from t360cli.errors import ExitCode, UsageError
from t360cli.ledger import FILE_NAME, KINDS, Ledger, LedgerStats, Target
from t360cli.ledger_view import Acknowledged, ledger_notes, run_ledger
from t360cli.observer import NullObserver
from t360cli.plan import RunOptions, open_pipeline, plan
from t360cli.tally import Counts

__all__ = ["Forgotten", "Held", "Seeded", "forget", "locate", "parse_before", "seed", "stats"]

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def locate(settings: Settings) -> tuple[Path, Target, str]:
    """The ledger file, this target and the key, found as `upload` finds them."""
    if not settings.base_url:
        raise UsageError("no base URL.", "Pass --base-url, set $T360_BASE_URL or base_url in the config.")
    key = settings.api_key()
    return Path(settings.state_dir) / FILE_NAME, Target.of(settings.base_url, key), key


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Held:
    """What the ledger file holds: one entry per target and kind, this target's two kinds always."""

    HEAD = ("", "target", "kind", "count", "oldest", "newest")

    path: Path
    target: Target
    entries: list[LedgerStats]

    def title(self) -> str:
        return f"the ledger {self.path} (* = this target: {self.target})"

    def lines(self) -> list[str]:
        """The title, then aligned plain columns under a header line (cron, pipes)."""
        rows = [self.HEAD, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.HEAD))]
        aligned = [
            "  ".join(
                cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        return [self.title(), *(line.rstrip() for line in aligned)]

    def rows(self) -> list[tuple[str, ...]]:
        """Text cells per entry: marker (`*` = this target), target, kind, count, oldest, newest."""
        mark = {True: "*", False: ""}
        return [
            (
                mark[s.target == self.target],
                str(s.target),
                s.kind,
                f"{s.count:,}",
                _when(s.oldest) or "-",
                _when(s.newest) or "-",
            )
            for s in self.entries
        ]

    def to_json(self) -> dict[str, object]:
        entries = [
            {
                "host": s.target.host,
                "port": s.target.port,
                "key_sha256": s.target.key_id,
                "current": s.target == self.target,
                "kind": s.kind,
                "count": s.count,
                "oldest": _when(s.oldest),
                "newest": _when(s.newest),
            }
            for s in self.entries
        ]
        return {"ledger": str(self.path), "target": str(self.target), "entries": entries}


def stats(settings: Settings) -> Held:
    """Every target and kind the ledger holds (read-only: a missing file is an empty ledger)."""
    path, target, _ = locate(settings)
    with Ledger.open(path, target, read_only=True, state_dir=Path(settings.state_dir)) as ledger:
        held = ledger.stats(all_targets=True)
        mine = {s.kind for s in held if s.target == target}
    held += [LedgerStats(target, kind, 0, None, None) for kind in KINDS if kind not in mine]
    held.sort(key=lambda s: (s.target != target, s.target.host, s.target.port, s.target.key_id, KINDS.index(s.kind)))
    return Held(path, target, held)


@dataclass(frozen=True)
class Forgotten:
    path: Path
    target: Target
    removed: int

    def line(self) -> str:
        entries = "entry" if self.removed == 1 else "entries"
        return f"removed {self.removed:,} {entries} of {self.target} from {self.path}."


def parse_before(text: str | None) -> date | None:
    """`--before YYYY-MM-DD` (midnight UTC)."""
    if text is None:
        return None
    try:
        if DAY.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"--before takes a date YYYY-MM-DD (UTC), not {text!r}.")


def _check_forget(kind: str | None, ids: Sequence[str], before: date | None, everything: bool) -> None:
    """Bad combinations are one sentence (exit 2), before the file is touched."""
    if everything and (kind or ids or before is not None):
        raise UsageError("--all removes everything of this target: leave out --kind, --id and --before.")
    if ids and kind is None:
        raise UsageError("--id needs --kind (customers or activities).")
    if not (everything or kind or before is not None):
        raise UsageError("say what to forget: --kind K (with --id ID), --before YYYY-MM-DD, or --all.")
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown ledger kind {kind!r}: use customers or activities.")


def forget(
    settings: Settings,
    kind: str | None = None,
    ids: Sequence[str] = (),
    before: str | None = None,
    everything: bool = False,
) -> Forgotten:
    """Remove this target's entries: `kind` (with `ids`), `before` a day, or `everything`."""
    day = parse_before(before)
    _check_forget(kind, ids, day, everything)
    path, target, _ = locate(settings)
    if not path.exists():  # nothing to forget: the file is not created for it
        return Forgotten(path, target, 0)
    with Ledger.open(path, target, state_dir=Path(settings.state_dir)) as ledger:
        removed = ledger.forget(kind=kind, ids=list(ids) or None, before=day, all=everything)
    return Forgotten(path, target, removed)


@dataclass(frozen=True)
class Seeded:
    path: Path
    target: Target
    kind: str
    recorded: int  # records written to the ledger (activities without an eventid are not)
    counts: Counts
    rejects: Path | None
    notes: list[str]

    @property
    def exit_code(self) -> int:
        """0, or 1 when some rows were rejected (their records were not recorded)."""
        return int(ExitCode.PARTIAL if self.counts.rows_rejected else ExitCode.OK)

    def lines(self) -> list[str]:
        counts = self.counts
        said = [
            f"recorded {self.recorded:,} records of {self.kind} as acknowledged by {self.target} in {self.path}; "
            "nothing was sent.",
            f"rows: {counts.rows_read:,} read, {counts.rows_valid:,} valid, {counts.rows_rejected:,} rejected, "
            f"{counts.rows_filtered:,} filtered, {counts.rows_duplicate:,} duplicate",
        ]
        return said + ([f"rejects: {self.rejects}"] if self.rejects is not None else [])


def seed(files: list[str], mapping: str, settings: Settings) -> Seeded:
    """Record the valid records of `files` as acknowledged by this target, sending nothing.

    Built like `validate`'s pipeline, over a writable ledger that skips nothing (so each
    valid record is recorded, a changed one overwriting the old) and refuses no orphan."""
    path, target, key = locate(settings)
    settings = replace(settings, contract=replace(settings.contract, orphans="warn"))
    the_plan = plan(RunOptions(files, mapping, dry_run=True), settings)
    kind = the_plan.mapping.kind
    with run_ledger(settings, key, kind, read_only=False, as_of=None, restart=True) as ledger:
        assert ledger is not None  # a key and a base URL were found above
        pipe, rejects = open_pipeline(the_plan, None, NullObserver(), "seeding", settings, ledger)
        acknowledged = Acknowledged(ledger.ledger, kind)
        recorded = 0
        for piece in pipe.pieces():
            acknowledged.add(piece.ledger_ids, piece.ledger_hashes)
            if acknowledged.due:
                recorded += acknowledged.flush()
        recorded += acknowledged.flush()
    notes = ledger_notes(kind, pipe.records_without_id, None, [])
    return Seeded(path, target, kind, recorded, pipe.counts, rejects.close(), notes)
