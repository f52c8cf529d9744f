"""`events:` — one wide row becomes several single-KPI events (SPEC 3 and 9).

Each entry inherits `fields` and overrides some of them. An event is skipped (not
rejected) when every field it maps from a column itself is empty; a row whose events
are all skipped counts as filtered; a row with one invalid KPI is rejected whole.
Records are ordered row by row, then event by event, so batches never depend on
how the input was chunked.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from t360cli import reasons, transform, validate
from t360cli.mapping.spec import FieldSpec, Mapping
from t360cli.readers import Chunk


def kpi_specs(specs: list[FieldSpec]) -> list[FieldSpec]:
    """The fields whose emptiness skips an event: its Value and numeric KPIs read from
    columns; failing those, every column field it maps except eventid (an id built
    from a template is always there)."""
    read = [s for s in specs if s.column or s.template]
    kpis = [s for s in read if s.target == "Value" or s.type in ("decimal", "integer")]
    return kpis or [s for s in read if s.target != "eventid"]


def expand(mapping: Mapping, chunk: Chunk) -> validate.Checked:
    """Map and judge the chunk's rows, one record per event that is not skipped."""
    base = transform.apply(mapping, chunk)
    count = chunk.table.num_rows
    errors = validate.row_reasons(mapping.fields, base)
    own: list[dict[str, pa.Array]] = []
    present = []
    for event in mapping.events or []:
        mapped = transform.apply(mapping, chunk, event.fields, where=False)
        errors = reasons.join(errors, validate.row_reasons(event.fields, mapped))
        has = np.zeros(count, dtype=bool)
        for spec in kpi_specs(event.fields):  # presence of the raw cells: an invalid KPI still counts
            has |= transform.source_values(spec, chunk, count).is_valid().to_numpy(zero_copy_only=False)
        own.append(mapped.values)
        present.append(has)
    any_event = np.logical_or.reduce(present) if present else np.zeros(count, dtype=bool)
    filtered = base.filtered | ~any_event
    ok = errors.is_null().to_numpy(zero_copy_only=False) & ~filtered
    values, rows = _interleave(base.values, own, present, ok)
    return validate.Checked(values, rows, errors, filtered)


def _interleave(
    base: dict[str, pa.Array], own: list[dict[str, pa.Array]], present: list[np.ndarray], ok: np.ndarray
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Records row by row, then event by event: one take per field."""
    count, events = len(ok), len(own)
    flat = np.flatnonzero((np.stack(present, axis=1) & ok[:, None]).ravel())  # row-major
    rows, event = flat // events, flat % events
    names = list(dict.fromkeys([*base, *(name for ev in own for name in ev)]))
    values: dict[str, pa.Array] = {}
    row_idx = pa.array(rows)
    for name in names:
        if not any(name in ev for ev in own):
            values[name] = base[name].take(row_idx)
            continue
        per_event = [ev.get(name, base.get(name, reasons.nulls(count))) for ev in own]
        values[name] = pa.concat_arrays(per_event).take(pa.array(event * count + rows))
    return values, rows
