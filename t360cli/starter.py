"""`t360 mapping init`: a commented starter mapping from an export's columns and values.

Columns are matched to the guide's fields by name (case, spaces, underscores, dashes
and dots ignored; synonyms from contract.SYNONYMS). Types are guessed from a sample of
values; a date whose values read both day-first and month-first gets a comment asking
the user to choose. The output is accepted by `t360 validate` as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from t360cli import contract, readers
from t360cli.codes import CURRENCIES
from t360cli.errors import UsageError

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


def _share(mask: Any) -> float:
    return float(pd.Series(mask).mean()) if len(mask) else 0.0


def guess(values: list[str], fit: float = 0.8) -> dict[str, Any]:
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
        out: dict[str, Any] = {"type": "datetime", "format": fits[0]}
        other = fits[0].replace("%d", "#").replace("%m", "%d").replace("#", "%m")
        if other != fits[0] and other in fits:
            out["note"] = f"AMBIGUOUS: these dates read as {fits[0]} and as {other}; keep the one your export uses"
        return out
    if _share([len(v) == 3 and v.upper() in CURRENCIES for v in values]) >= fit:
        return {"type": "currency"}
    return {"type": "string"}


def _spec(column: str, g: dict[str, Any], target: str) -> str:
    parts = [f"column: {json.dumps(column)}"]
    forced = contract.DEFAULT_TYPES.get("activities", {}) | contract.DEFAULT_TYPES.get("customers", {})
    kind_type = g["type"]
    if target in forced and kind_type not in ("datetime", "date", "decimal", "integer"):
        kind_type = forced[target]
    if target in ("customerId", "customerid", "eventid", "tracking_data", "firstName", "lastName"):
        kind_type = "string"  # ids stay text, whatever they look like
    if target == "country":
        kind_type = "country"
    if kind_type != "string":
        parts.append(f"type: {kind_type}")
    if g.get("format") and kind_type in ("datetime", "date"):
        parts.append(f"format: {json.dumps(g['format'])}")
    return "{" + ", ".join(parts) + "}"


def starter_mapping(path: Path, kind: str) -> tuple[str, list[str]]:
    """The mapping text and the columns it left unmapped."""
    paths = readers.resolve_inputs([str(path)])
    opts = readers.SourceOptions()
    header = readers.read_header(paths[0], opts)
    chunk = next(iter(readers.read_chunks(paths[:1], opts, chunk_rows=SAMPLE_ROWS)), None)
    samples: dict[str, list[str]] = {c: [] for c in header}
    if chunk is not None:
        for c in chunk.columns:
            col = pc.utf8_trim_whitespace(chunk.table.column(c))
            samples[c] = [v for v in col.to_pylist() if v]
    matched = match_columns(kind, header)
    guesses = {c: guess(samples.get(c, [])) for c in header}
    return _render(path, kind, header, matched, guesses, samples), [c for c in header if c not in matched.values()]


def _render(
    path: Path,
    kind: str,
    header: list[str],
    matched: dict[str, str],
    guesses: dict[str, dict[str, Any]],
    samples: dict[str, list[str]],
) -> str:
    lines = [
        f"# Starter mapping written by `t360 mapping init` from {path.name} ({kind}).",
        "# Check every line, then: t360 validate FILE -m THIS_FILE",
        f"kind: {kind}",
    ]
    if any(guesses[c].get("decimal") == "," for c in matched.values()):
        lines.append('source: {decimal: ","}   # numbers like 1.234,50')
    lines += ["timezone: UTC   # the zone of this export's timestamps without offset: change it if not UTC", "fields:"]
    id_field = contract.ID_FIELD[kind]
    if id_field not in matched:
        lines.append(
            f"  {id_field}: {{column: {json.dumps(header[0])}}}   # TODO: no id column recognised; pick the right one"
        )
        matched = {id_field: header[0], **{k: v for k, v in matched.items() if v != header[0]}}
    if kind == "activities" and "eventname" not in matched:
        lines.append(
            "  eventname: {value: Deposit}   # TODO: the KPI this file reports "
            "(Deposit, Withdrawal, Lots, Volume, Rebate, DailyStats...)"
        )
    for target, column in matched.items():
        if target == id_field and lines[-1].endswith("pick the right one"):
            continue
        g = guesses[column]
        note = f"   # {g['note']}" if g.get("note") else f"   # from {json.dumps(column)}"
        lines.append(f"  {target}: {_spec(column, g, target)}{note}")
    unmapped = [c for c in header if c not in matched.values()]
    if unmapped:
        lines.append("# Columns left unmapped: uncomment to send them as additional fields.")
        for c in unmapped:
            g = guesses[c]
            example = f"  e.g. {json.dumps(samples[c][0])}" if samples.get(c) else ""
            lines.append(f"#  {fold(c) or 'field'}: {_spec(c, g, '')}{example}")
    return "\n".join(lines) + "\n"


def init_command(file: str, kind: str, output: str | None, force: bool, term: Any) -> int:
    if kind not in contract.KINDS:
        raise UsageError(f"--kind must be customers or activities, not '{kind}'.")
    if output and Path(output).exists() and not force:
        raise UsageError(f"{output} exists; not overwriting it.", "Pass --force to replace it, or choose another -o.")
    text, unmapped = starter_mapping(Path(file), kind)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        term.note(f"wrote {output}")
    else:
        term.print_json(text)
    if unmapped:
        term.note(f"left unmapped: {', '.join(unmapped)}")
    return 0
