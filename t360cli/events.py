"""`events:` — one wide row becomes several single-KPI events (SPEC 3 and 9).

Each entry inherits `fields` and overrides some of them. An event is skipped (not
rejected) when every field it maps from a column itself is empty; a row whose events
are all skipped counts as filtered; a row with one invalid KPI is rejected whole.
Records are ordered row by row, then event by event, so batches never depend on
how the input was chunked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from t360cli import transform
from t360cli.readers import Chunk

if TYPE_CHECKING:
    from t360cli.mapping import FieldSpec, Mapping


def parse_events(ck: Any, tree: Any, m: Mapping) -> list[list[FieldSpec]]:
    from t360cli.mapping import YList, YMap, field_list

    node = tree["events"]
    line = tree.line_of("events")
    if m.kind != "activities":
        raise ck.fail(line, "events: is for activities mappings only.")
    if not isinstance(node, YList) or not node:
        raise ck.fail(
            line,
            "events: must be a list of event overrides.",
            "Example: - {eventname: {value: Lots}, Value: {column: lots, type: decimal}}",
        )
    events = []
    for item, item_line in zip(node, node.item_lines, strict=True):
        if not isinstance(item, YMap) or not item:
            raise ck.fail(item_line, "each entry of events: is a map of fields that override `fields:`.")
        specs = field_list(ck, m.kind, item)
        if not any(s.column or s.template for s in specs):
            raise ck.fail(
                item_line,
                "this event maps no column, so it could never be skipped when empty.",
                "Give it at least one column, e.g. Value: {column: lots, type: decimal}.",
            )
        events.append(specs)
    return events


def kpi_specs(specs: list[FieldSpec]) -> list[FieldSpec]:
    """The fields whose emptiness skips an event: its Value and numeric KPIs read from
    columns; failing those, every column field it maps except eventid (an id built
    from a template is always there)."""
    read = [s for s in specs if s.column or s.template]
    kpis = [s for s in read if s.target == "Value" or s.type in ("decimal", "integer")]
    return kpis or [s for s in read if s.target != "eventid"]


@dataclass
class Expanded:
    """The chunk's events, row-major: record i comes from row rows[i]."""

    values: dict[str, pa.Array]
    rows: np.ndarray
    errors: pa.Array  # per row
    filtered: np.ndarray  # per row: where, or every event skipped


def expand(m: Mapping, chunk: Chunk) -> Expanded:
    base = transform.apply(m, chunk)
    n = chunk.table.num_rows
    errors = base.errors
    own: list[dict[str, pa.Array]] = []
    present = []
    for specs in m.events or []:
        mapped = transform.apply(m, chunk, specs, where=False)
        errors = transform.add_error(errors, mapped.errors)
        has = np.zeros(n, dtype=bool)
        for spec in kpi_specs(specs):  # presence of the raw cells: an invalid KPI still counts
            has |= transform.source_values(spec, chunk, n).is_valid().to_numpy(zero_copy_only=False)
        own.append(mapped.values)
        present.append(has)
    any_event = np.logical_or.reduce(present) if present else np.zeros(n, dtype=bool)
    filtered = base.filtered | ~any_event
    ok = errors.is_null().to_numpy(zero_copy_only=False) & ~filtered
    return _interleave(base.values, own, present, ok, errors, filtered)


def _interleave(
    base: dict[str, pa.Array],
    own: list[dict[str, pa.Array]],
    present: list[np.ndarray],
    ok: np.ndarray,
    errors: pa.Array,
    filtered: np.ndarray,
) -> Expanded:
    """Records row by row, then event by event: one take per field."""
    n, k = len(ok), len(own)
    flat = np.flatnonzero((np.stack(present, axis=1) & ok[:, None]).ravel())  # row-major
    rows, event = flat // k, flat % k
    names = list(dict.fromkeys([*base, *(name for ev in own for name in ev)]))
    values: dict[str, pa.Array] = {}
    row_idx = pa.array(rows)
    for name in names:
        if not any(name in ev for ev in own):
            values[name] = base[name].take(row_idx)
            continue
        per_event = [ev.get(name, base.get(name, pa.nulls(n, pa.string()))) for ev in own]
        values[name] = pa.concat_arrays(per_event).take(pa.array(event * n + rows))
    return Expanded(values, rows, errors, filtered)
