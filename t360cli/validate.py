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
from t360cli.suggest import closest


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


def agreed(checked: Checked, allowed: dict[str, tuple[str, ...]]) -> Checked:
    """`contract.allowed` (SPEC 12): a record whose field holds a value other than the agreed
    ones (its final value, constants included; exact case) rejects its row, naming the
    field, the value and the closest agreed value."""
    names = [name for name in allowed if name in checked.values]
    if not names or not len(checked.rows):
        return checked
    record_reasons = reasons.nulls(len(checked.rows))
    for name in names:
        column = checked.values[name]
        outside = pc.fill_null(pc.invert(pc.is_in(column, value_set=pa.array(allowed[name], reasons.STR))), False)
        if not pc.any(outside).as_py():
            continue
        texts = {
            value: _not_agreed(name, value, allowed[name]) for value in pc.unique(column.filter(outside)).to_pylist()
        }
        keys = pa.array(list(texts), reasons.STR)
        found = pc.take(pa.array(list(texts.values()), reasons.STR), pc.index_in(column, value_set=keys))
        record_reasons = reasons.join(record_reasons, reasons.where(outside, found))
    return _reject_records(checked, record_reasons)


def _reject_records(checked: Checked, record_reasons: pa.Array) -> Checked:
    """Reject the rows of the records that have a reason (the first record's names the row);
    every record of those rows goes."""
    if reasons.is_clean(record_reasons):
        return checked
    bad = record_reasons.is_valid().to_numpy(zero_copy_only=False)
    first: dict[int, str] = {}
    for row, text in zip(checked.rows[bad].tolist(), record_reasons.filter(pa.array(bad)).to_pylist(), strict=True):
        first.setdefault(row, text)
    per_row: list[str | None] = [None] * len(checked.errors)
    for row, text in first.items():
        per_row[row] = text
    keep = ~np.isin(checked.rows, np.fromiter(first, dtype=np.int64, count=len(first)))
    mask = pa.array(keep)
    return Checked(
        {name: column.filter(mask) for name, column in checked.values.items()},
        checked.rows[keep],
        reasons.join(checked.errors, pa.array(per_row, reasons.STR)),
        checked.filtered,
    )


NUL_REASON = "holds a NUL character (it cannot be sent)"
_ESCAPED_NUL = np.frombuffer(b"u0000", dtype=np.uint8)


def _may_hold_nul(records: pa.Array) -> bool:
    """Whether any record's JSON text holds `\\u0000`: one pass over the bytes, looking
    closer only at the backslashes (few in exported text)."""
    data = records.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    slashes = np.flatnonzero(raw[: len(raw) - len(_ESCAPED_NUL)] == ord("\\"))
    if not len(slashes):
        return False
    following = raw[slashes[:, None] + 1 + np.arange(len(_ESCAPED_NUL))]
    return bool((following == _ESCAPED_NUL).all(axis=1).any())


def refuse_nul(checked: Checked, records: pa.Array | None) -> Checked:
    """SPEC 11: a NUL character in a mapped value rejects its row, naming the field. The
    records' JSON text (NUL written as \\u0000) tells at once whether any holds one; only
    then is each field looked at."""
    if not len(checked.rows):
        return checked
    suspects = None
    if records is not None:
        if not _may_hold_nul(records):
            return checked
        hit = pc.match_substring(records, "\\u0000")
        suspects = pa.array(hit.to_numpy(zero_copy_only=False))
    record_reasons = reasons.nulls(len(checked.rows))
    for name, column in checked.values.items():
        if not pa.types.is_string(column.type):
            continue
        nul = pc.fill_null(pc.match_substring(column, "\x00"), False)
        if suspects is not None:
            nul = pc.and_(nul, suspects)
        if pc.any(nul).as_py():
            record_reasons = reasons.join(record_reasons, reasons.where(nul, f"{name}: {NUL_REASON}"))
    return _reject_records(checked, record_reasons)


def _not_agreed(name: str, value: str, agreed_values: tuple[str, ...]) -> str:
    what = "KPI" if name == "eventname" else "value"
    close = closest(value, agreed_values)
    if close:
        return f"{name}: '{value}' is not an agreed {what}; did you mean {close}?"
    return f"{name}: '{value}' is not an agreed {what} (agreed: {', '.join(agreed_values[:10])})"
