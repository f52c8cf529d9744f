"""`t360 mapping init`: a commented starter mapping from an export's columns and values.

Columns are matched to the guide's fields by name (case, spaces, underscores, dashes
and dots ignored; synonyms from contract.SYNONYMS). Types are guessed from a sample of
values; a date whose values read both day-first and month-first gets a comment asking
the user to choose. The output is accepted by `t360 validate` as it is.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from t360cli import contract, readers
from t360cli.codes import CURRENCIES
from t360cli.errors import T360Error, UsageError

SAMPLE_ROWS = 500
DATE_FORMATS = [  # (format, day-first twin or None)
    "%d.%m.%Y %H:%M:%S",
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
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y%m%d",
]
DECIMAL_DOT = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
TIME_FIELD = {"customers": "regtime", "activities": "createtime"}
SNIFF_BYTES = 1 << 20


def fold(name: str) -> str:
    return re.sub(r"[\s_\-.#/()]+", "", name).lower()


def match_columns(kind: str, header: list[str]) -> dict[str, str]:
    """target -> column, best synonym first, each column used once."""
    folded = {fold(c): c for c in reversed(header)}
    used: set[str] = set()
    out: dict[str, str] = {}
    for target, synonyms in contract.SYNONYMS[kind].items():
        for syn in [fold(target)] + synonyms:
            col = folded.get(syn)
            if col and col not in used:
                out[target] = col
                used.add(col)
                break
    return out


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
        return {"type": "decimal"}
    if share(DECIMAL_COMMA) >= fit:
        return {"type": "decimal", "decimal": ","}
    series = pd.Series(values, dtype="str")
    if _share(pd.to_datetime(series, format="ISO8601", errors="coerce").notna()) >= fit:
        return {"type": "datetime"}
    fits = [f for f in DATE_FORMATS if _share(pd.to_datetime(series, format=f, errors="coerce").notna()) >= fit]
    if fits:
        out: Guess = {"type": "datetime", "format": fits[0]}
        other = fits[0].replace("%d", "#").replace("%m", "%d").replace("#", "%m")
        if other != fits[0] and other in fits:
            out["note"] = f"AMBIGUOUS: these dates read as {fits[0]} and as {other}; keep the one your export uses"
        return out
    if _share([len(v) == 3 and v.upper() in CURRENCIES for v in values]) >= fit:
        return {"type": "currency"}
    return {"type": "string"}


def _spec(column: str, guessed: Guess, target: str) -> str:
    parts = [f"column: {json.dumps(column)}"]
    forced = contract.DEFAULT_TYPES.get("activities", {}) | contract.DEFAULT_TYPES.get("customers", {})
    kind_type = guessed["type"]
    if target in forced and kind_type not in ("datetime", "date", "decimal", "integer"):
        kind_type = forced[target]
    if target in ("customerId", "customerid", "eventid", "tracking_data", "firstName", "lastName"):
        kind_type = "string"  # ids stay text, whatever they look like
    if target == "country":
        kind_type = "country"
    if kind_type != "string":
        parts.append(f"type: {kind_type}")
    if guessed.get("format") and kind_type in ("datetime", "date"):
        parts.append(f"format: {json.dumps(guessed['format'])}")
    return "{" + ", ".join(parts) + "}"


def _utf8(path: Path) -> bool:
    """Whether the first MiB of a text export decodes as UTF-8."""
    opener = gzip.open if readers.is_gzipped(path) else open
    with opener(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _best_sheet(path: Path, kind: str) -> str | None:
    """The sheet whose header matches most fields, when it is not the first one."""
    from python_calamine import CalamineWorkbook

    try:
        names = CalamineWorkbook.from_path(str(path)).sheet_names
    except Exception:  # a gzipped or unreadable workbook: the reader reports it
        return None
    scores = []
    for i, name in enumerate(names):
        try:
            header = readers.read_header(path, readers.SourceOptions(sheet=name))
        except T360Error:  # an empty sheet
            continue
        scores.append((len(match_columns(kind, header)), -i, name))
    best = max(scores, default=None)
    return best[2] if best and best[1] != 0 else None


def source_options(path: Path, kind: str) -> tuple[readers.SourceOptions, dict[str, str]]:
    """How to read the sample, and the `source:` keys the mapping needs for it."""
    name = readers.format_name(path)
    if name.endswith((".csv", ".tsv")) and not _utf8(path):
        return readers.SourceOptions(encoding="cp1252"), {"encoding": "cp1252"}
    if name.endswith(".xlsx"):
        sheet = _best_sheet(path, kind)
        if sheet is not None:
            return readers.SourceOptions(sheet=sheet), {"sheet": sheet}
    return readers.SourceOptions(), {}


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
            notes[time_field] = f"from {json.dumps(col)}, chosen by its values: check it"
    id_field = contract.ID_FIELD[kind]
    if id_field not in matched:
        matched = {id_field: header[0], **{k: v for k, v in matched.items() if v != header[0]}}
        notes[id_field] = "TODO: no id column recognised; pick the right one"
    return matched, notes


def starter_mapping(path: Path, kind: str) -> tuple[str, list[str]]:
    """The mapping text and the columns it left unmapped."""
    paths = readers.resolve_inputs([str(path)])
    opts, source = source_options(paths[0], kind)
    header = readers.read_header(paths[0], opts)
    chunk = next(iter(readers.read_chunks(paths[:1], opts, chunk_rows=SAMPLE_ROWS)), None)
    samples: dict[str, list[str]] = {c: [] for c in header}
    if chunk is not None:
        for c in chunk.columns:
            col = pc.utf8_trim_whitespace(chunk.table.column(c))
            samples[c] = [v for v in col.to_pylist() if v]
    guesses = {c: guess(samples.get(c, [])) for c in header}
    matched, notes = _complete(kind, header, match_columns(kind, header), guesses)
    if any(guesses[c].get("decimal") == "," for c in matched.values()):
        source["decimal"] = ","
    text = _render(path, kind, header, matched, notes, guesses, samples, source)
    return text, [c for c in header if c not in matched.values()]


def _render(
    path: Path,
    kind: str,
    header: list[str],
    matched: dict[str, str],
    notes: dict[str, str],
    guesses: dict[str, Guess],
    samples: dict[str, list[str]],
    source: dict[str, str],
) -> str:
    lines = [
        f"# Starter mapping written by `t360 mapping init` from {path.name} ({kind}).",
        "# Check every line, then: t360 validate FILE -m THIS_FILE",
        f"kind: {kind}",
    ]
    if source:
        flow = ", ".join(f"{k}: {json.dumps(v)}" for k, v in source.items())
        lines.append(f"source: {{{flow}}}   # " + "; ".join(_SOURCE_NOTE[k] for k in source))
    lines += ["timezone: UTC   # the zone of this export's timestamps without offset: change it if not UTC", "fields:"]
    if kind == "activities" and "eventname" not in matched:
        lines.append(
            "  eventname: {value: Deposit}   # TODO: the KPI this file reports "
            "(Deposit, Withdrawal, Lots, Volume, Rebate, DailyStats...)"
        )
    for target, column in matched.items():
        guessed = guesses[column]
        note = guessed.get("note") or notes.get(target) or f"from {json.dumps(column)}"
        lines.append(f"  {target}: {_spec(column, guessed, target)}   # {note}")
    unmapped = [c for c in header if c not in matched.values()]
    if unmapped:
        lines.append("# Columns left unmapped: uncomment to send them as additional fields.")
        for c in unmapped:
            guessed = guesses[c]
            example = f"  e.g. {json.dumps(samples[c][0])}" if samples.get(c) else ""
            lines.append(f"#  {fold(c) or 'field'}: {_spec(c, guessed, '')}{example}")
    return "\n".join(lines) + "\n"


_SOURCE_NOTE = {
    "encoding": "not UTF-8: read as Windows-1252 (check accented names)",
    "sheet": "the sheet whose header matches Track360's fields best",
    "decimal": "numbers like 1.234,50",
}


@dataclass(frozen=True)
class StarterMapping:
    """`mapping init`'s result: the text, where it was written (None: for stdout), what was left out."""

    text: str
    written_to: str | None
    unmapped: list[str]


def init_command(file: str, kind: str, output: str | None, force: bool) -> StarterMapping:
    if kind not in contract.KINDS:
        raise UsageError(f"--kind must be customers or activities, not '{kind}'.")
    if output and Path(output).exists() and not force:
        raise UsageError(f"{output} exists; not overwriting it.", "Pass --force to replace it, or choose another -o.")
    text, unmapped = starter_mapping(Path(file), kind)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    return StarterMapping(text, output or None, unmapped)
