"""Row rules (SPEC 5 and 9): a mapped chunk in, the reasons each row is rejected out.

transform.py makes the values and says why one could not be made (a map miss, a type
error); here those reasons join the rules every value must meet (at most `max_length`
characters, `required`), each named by its field, and the conflicts dedupe finds
become reasons too. Vectorised: no loop over cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import reasons, transform
from t360cli.mapping.spec import FieldSpec, Mapping
from t360cli.readers import Chunk


@dataclass
class Checked:
    """A chunk after mapping and the row rules."""

    values: dict[str, pa.Array]  # target -> values of the valid records
    rows: np.ndarray  # the chunk row of each valid record
    errors: pa.Array  # per chunk row: "; "-joined reasons, null where the row is fine
    filtered: np.ndarray  # per chunk row: dropped by `where` (or, with events, every event skipped)

    @property
    def bad(self) -> np.ndarray:
        """Per chunk row: rejected (filtered rows are never judged)."""
        valid: np.ndarray = self.errors.is_valid().to_numpy(zero_copy_only=False)
        bad: np.ndarray = valid & ~self.filtered
        return bad

    @classmethod
    def empty(cls) -> Checked:
        return cls({}, np.zeros(0, dtype=np.int64), reasons.nulls(0), np.zeros(0, dtype=bool))


def field_reasons(spec: FieldSpec, values: pa.Array, problems: pa.Array) -> pa.Array:
    """Why each row's value of one field is refused, prefixed with the field's name."""
    errors = problems
    if spec.type == "string" and values.null_count < len(values):
        nul = pc.fill_null(pc.match_substring(values, "\x00"), False)
        if pc.any(nul).as_py():
            errors = reasons.join(errors, reasons.where(nul, "holds a NUL character (it cannot be sent)"))
    if spec.max_length is not None:
        length = pc.utf8_length(values)
        too_long = pc.fill_null(pc.greater(length, spec.max_length), False)
        if pc.any(too_long).as_py():
            text = pc.binary_join_element_wise(
                pc.cast(length, reasons.STR), f" characters, at most {spec.max_length}", ""
            )
            errors = reasons.join(errors, reasons.where(too_long, text))
    if spec.required and values.null_count:
        missing = pc.and_(pc.is_null(values), pc.is_null(errors))
        errors = reasons.join(errors, reasons.where(missing, pa.scalar("required, but empty")))
    return reasons.prefix(spec.target, errors)


def row_reasons(specs: list[FieldSpec], mapped: transform.Mapped) -> pa.Array:
    """Every field's reasons, joined per row in the mapping's order."""
    errors = reasons.nulls(len(mapped))
    for spec in specs:
        if spec.target in mapped.values:
            errors = reasons.join(errors, field_reasons(spec, mapped.values[spec.target], mapped.problems[spec.target]))
    return errors


def check(mapping: Mapping, chunk: Chunk) -> Checked:
    """Map the chunk's rows (one record each) and judge them."""
    mapped = transform.apply(mapping, chunk)
    errors = row_reasons(mapping.fields, mapped)
    ok = errors.is_null().to_numpy(zero_copy_only=False) & ~mapped.filtered
    rows = np.flatnonzero(ok)
    take = pa.array(rows)
    return Checked({name: col.take(take) for name, col in mapped.values.items()}, rows, errors, mapped.filtered)


def conflict_reasons(ids: pa.Array, rows: np.ndarray, conflicted: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The rows holding a conflicting record (same eventid, other values), each with the
    reason naming its first such id. ids and rows are per record; conflicted a record mask."""
    first: dict[int, str] = {}
    for row, event_id in zip(rows[conflicted].tolist(), ids.filter(pa.array(conflicted)).to_pylist(), strict=True):
        first.setdefault(row, event_id)
    conflict_rows = sorted(first)
    texts = [f"eventid: '{first[row]}' was already sent with different values (conflict)" for row in conflict_rows]
    return np.array(conflict_rows, dtype=np.int64), texts
