"""`t360 mapping init`: a commented starter mapping from an export's columns and values.

How to read the file (format, encoding, delimiter, sheet, header row, Total line) comes
from starter_detect, as do the column matches (case, spaces, underscores, dashes and dots
ignored; contract.SYNONYMS plus a few more). Types are guessed here from a sample of
values: comma decimals, MetaTrader and other back-office datetimes; a slash or dash date
whose values read both day-first and month-first gets an AMBIGUOUS comment. The output,
plain UTF-8, is accepted by `t360 validate` as it is (SPEC 3, 12).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from t360cli import contract, readers
from t360cli.codes import CURRENCIES
from t360cli.errors import UsageError
from t360cli.mapping.field import intended
from t360cli.starter_detect import NOTES, Detected, Given, detect, fold, match_columns

SAMPLE_ROWS = 500
DATE_FORMATS = [  # the first that fits wins; a slash or dash date's twin swaps %d and %m
    "%Y.%m.%d %H:%M:%S",  # MetaTrader
    "%Y.%m.%d %H:%M",
    "%Y.%m.%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",  # a dotted date with the year last is day-first
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%m-%d-%Y %H:%M:%S",
    "%m-%d-%Y %H:%M",
    "%m-%d-%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y%m%d",
]
DECIMAL_DOT = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
FRACTION = re.compile(r"\.\d+$")
TIME_FIELD = {"customers": "regtime", "activities": "createtime"}


Guess = dict[str, str]  # type, and maybe format, decimal, note


def _share(mask: Sequence[bool] | pd.Series[bool]) -> float:
    return float(pd.Series(mask).mean()) if len(mask) else 0.0


def guess(values: list[str], fit: float = 0.8) -> Guess:
    """{type, format?, decimal?, note?} for a sample of non-empty cells.

    A type is chosen when at least `fit` of the sample reads as it: real exports have
    a few bad cells, and pointing at them is validation's job.
    """
    if not values:
        return {"type": "string"}

    def share(rx: re.Pattern[str]) -> float:
        return _share([bool(rx.match(v)) for v in values])

    if share(INTEGER) >= fit and not any(len(v) > 1 and v.lstrip("+-").startswith("0") for v in values):
        return {"type": "integer"}
    if share(DECIMAL_DOT) >= fit:
        return {"type": "decimal", "decimal": "."} if any(FRACTION.search(v) for v in values) else {"type": "decimal"}
    if share(DECIMAL_COMMA) >= fit:
        return {"type": "decimal", "decimal": ","}
    dated = guess_datetime(values, fit)
    if dated:
        return dated
    if _share([len(v) == 3 and v.upper() in CURRENCIES for v in values]) >= fit:
        return {"type": "currency"}
    return {"type": "string"}


def guess_datetime(values: list[str], fit: float = 0.8) -> Guess | None:
    """The first of DATE_FORMATS that reads `fit` of the values, else ISO 8601, else None.

    Slash and dash dates read day-first or month-first: the order that reads more values
    wins (a day above 12 decides); when both read the same values the note says AMBIGUOUS.
    """
    series = pd.Series(values, dtype="str")
    counts: dict[str, int] = {}

    def hits(fmt: str) -> int:
        if fmt not in counts:
            try:  # utc: values with different offsets are fine
                counts[fmt] = int(pd.to_datetime(series, format=fmt, errors="coerce", utc=True).notna().sum())
            except (ValueError, OverflowError):
                counts[fmt] = 0
        return counts[fmt]

    first = next((f for f in DATE_FORMATS if hits(f) >= fit * len(values)), None)
    if first is None:
        return {"type": "datetime"} if hits("ISO8601") >= fit * len(values) else None
    twin = first.replace("%d", "#").replace("%m", "%d").replace("#", "%m")
    if twin == first or twin not in DATE_FORMATS:
        return {"type": "datetime", "format": first}
    best, other = (twin, first) if hits(twin) > hits(first) else (first, twin)
    out: Guess = {"type": "datetime", "format": best}
    if hits(other) == hits(best):
        out["note"] = f"AMBIGUOUS: these dates read as {best} and as {other}; keep the one your export uses"
    return out


DECIMAL_TARGETS = {"Value", *contract.KPI_FIELDS}  # a whole-number sample still means decimal
TEXT_TARGETS = ("customerId", "customerid", "eventid", "tracking_data", "firstName", "lastName")


def _spec(column: str, guessed: Guess, target: str) -> str:
    parts = [f"column: {quote(column)}"]
    forced = contract.DEFAULT_TYPES.get("activities", {}) | contract.DEFAULT_TYPES.get("customers", {})
    kind_type = guessed["type"]
    if target in forced and kind_type not in ("datetime", "date", "decimal", "integer"):
        kind_type = forced[target]
    if target in DECIMAL_TARGETS and kind_type == "integer" and target != "Trades":
        kind_type = "decimal"
    if target in TEXT_TARGETS:
        kind_type = "string"  # ids stay text, whatever they look like
    if target == "country":
        kind_type = "country"
    if kind_type != "string":
        parts.append(f"type: {kind_type}")
    if guessed.get("format") and kind_type in ("datetime", "date"):
        parts.append(f"format: {quote(guessed['format'])}")
    return "{" + ", ".join(parts) + "}"


def quote(text: str) -> str:
    """A YAML double-quoted scalar in plain UTF-8 (`"José"`, not `"Jos\\u00e9"`)."""
    out = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in out)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) and name.lower() not in _YAML_WORDS else quote(name)


def _complete(
    kind: str, header: list[str], matched: dict[str, str], guesses: dict[str, Guess]
) -> tuple[dict[str, str], dict[str, str]]:
    """Fill the id and time fields the names did not give; (matched, notes per target)."""
    notes: dict[str, str] = {}
    time_field = TIME_FIELD[kind]
    if time_field not in matched:  # e.g. "Report Date", "Request Date"
        used = set(matched.values())
        col = next((c for c in header if c not in used and guesses[c]["type"] == "datetime"), None)
        if col is not None:
            matched[time_field] = col
            notes[time_field] = f"from {quote(col)}, chosen by its values: check it"
    id_field = contract.ID_FIELD[kind]
    if id_field not in matched:
        matched = {id_field: header[0], **{k: v for k, v in matched.items() if v != header[0]}}
        notes[id_field] = "TODO: no id column recognised; pick the right one"
    return matched, notes


def _decimal_comma(guesses: dict[str, Guess]) -> bool:
    """More columns read as 1.234,50 than as 1,234.50 (mapped or not: the user may add them)."""
    comma = sum(g.get("decimal") == "," for g in guesses.values())
    dot = sum(g.get("decimal") == "." for g in guesses.values())
    return comma > dot


def _samples(path: Path, opts: readers.SourceOptions, header: list[str]) -> dict[str, list[str]]:
    """The non-empty cells of the first SAMPLE_ROWS rows, per column."""
    chunk = next(iter(readers.read_chunks([path], opts, chunk_rows=SAMPLE_ROWS)), None)
    samples: dict[str, list[str]] = {c: [] for c in header}
    if chunk is not None:
        for c in chunk.columns:
            col = pc.utf8_trim_whitespace(chunk.table.column(c))
            samples[c] = [v for v in col.to_pylist() if v]
    return samples


def starter_mapping(path: Path, kind: str, given: Given | None = None) -> tuple[str, list[str]]:
    """The mapping text and the columns it left unmapped."""
    paths = readers.resolve_inputs([str(path)])
    found = detect(paths[0], kind, given or Given())
    header = readers.read_header(paths[0], found.opts)
    samples = _samples(paths[0], found.opts, header)
    guesses = {c: guess(samples.get(c, [])) for c in header}
    matched, notes = _complete(kind, header, match_columns(kind, header), guesses)
    if _decimal_comma(guesses):
        found.source["decimal"] = ","
    text = _render(path, kind, header, matched, notes, guesses, samples, found)
    return text, [c for c in header if c not in matched.values()]


def _render(
    path: Path,
    kind: str,
    header: list[str],
    matched: dict[str, str],
    notes: dict[str, str],
    guesses: dict[str, Guess],
    samples: dict[str, list[str]],
    found: Detected,
) -> str:
    lines = [
        f"# Starter mapping written by `t360 mapping init` from {path.name} ({kind}).",
        "# Check every line, then: t360 validate FILE -m THIS_FILE",
        f"kind: {kind}",
    ]
    if found.source:
        lines.append("source:")
        for key, value in found.source.items():
            shown = str(value) if isinstance(value, int) else quote(value)
            lines.append(f"  {key}: {shown}   # {NOTES[key]}")
    lines += ["timezone: UTC   # the zone of this export's timestamps without offset: change it if not UTC", "fields:"]
    if kind == "activities" and "eventname" not in matched:
        lines.append(
            "  eventname: {value: Deposit}   # TODO: the KPI this file reports "
            "(Deposit, Withdrawal, Lots, Volume, Rebate, DailyStats...)"
        )
    for target, column in matched.items():
        guessed = guesses[column]
        note = guessed.get("note") or notes.get(target) or f"from {quote(column)}"
        lines.append(f"  {target}: {_spec(column, guessed, target)}   # {note}")
    unmapped = [c for c in header if c not in matched.values()]
    if unmapped:
        lines.append("# Columns left unmapped: uncomment to send them as additional fields.")
        for c in unmapped:
            lines.append("#  " + _unmapped(kind, c, guesses[c], samples.get(c, []), set(matched)))
    return "\n".join(lines) + "\n"


def _unmapped(kind: str, column: str, guessed: Guess, sample: list[str], taken: set[str]) -> str:
    """A commented field line that the mapping accepts once uncommented: a name close to a
    guide field takes the guide's spelling (`Lots`), or says `extra: true` when that is taken."""
    name = fold(column) or "field"
    meant = intended(kind, name)
    spec = _spec(column, guessed, meant if meant != name and meant not in taken else "")
    if meant != name and meant not in taken:
        name = meant
    elif meant != name:
        spec = spec[:-1] + ", extra: true}"
    example = f"   # e.g. {quote(sample[0])}" if sample else ""  # uncommented, still valid YAML
    return f"{_key(name)}: {spec}{example}"


@dataclass(frozen=True)
class StarterMapping:
    """`mapping init`'s result: the text, where it was written (None: for stdout), what was left out."""

    text: str
    written_to: str | None
    unmapped: list[str]


def init_command(
    file: str,
    kind: str,
    output: str | None,
    force: bool,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    header_row: int | None = None,
) -> StarterMapping:
    """`t360 mapping init FILE --kind K [-o OUT] [--force] [--format ...]`: the options, when
    given, override what is found in the file and are written to `source:`."""
    if kind not in contract.KINDS:
        raise UsageError(f"--kind must be customers or activities, not '{kind}'.")
    if output and Path(output).exists() and not force:
        raise UsageError(f"{output} exists; not overwriting it.", "Pass --force to replace it, or choose another -o.")
    given = Given(format, delimiter, encoding, sheet, header_row)
    text, unmapped = starter_mapping(Path(file), kind, given)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    return StarterMapping(text, output or None, unmapped)
