"""Apply a Mapping to a Chunk, vectorised over whole columns.

The result holds, for every row of the chunk, the canonical text of each target field
(null = absent), the reasons the row is rejected (null = fine) and whether `where`
filtered it out. Nothing here loops over cells in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import convert
from t360cli.mapping import FieldSpec, Mapping
from t360cli.readers import Chunk

STR = pa.string()


@dataclass
class Mapped:
    """One chunk after mapping: columns of target values plus a reason per rejected row."""

    values: dict[str, pa.Array]  # target -> text, null where absent
    errors: pa.Array  # per row: "; "-joined reasons, null where the row is fine
    filtered: np.ndarray  # bool: dropped by `where`

    def __len__(self) -> int:
        return len(self.filtered)


def _clean(arr: pa.Array) -> bool:
    return arr.null_count == len(arr)


def add_error(errors: pa.Array, new: pa.Array) -> pa.Array:
    """Append reasons row-wise ("a; b"), keeping nulls where neither has one."""
    if _clean(new):
        return errors
    if _clean(errors):
        return new
    joined = pc.binary_join_element_wise(errors, new, "; ")
    return pc.coalesce(joined, errors, new)


def prefix(target: str, reasons: pa.Array) -> pa.Array:
    return reasons if _clean(reasons) else pc.binary_join_element_wise(f"{target}: ", reasons, "")


def nulls(n: int) -> pa.Array:
    return pa.nulls(n, STR)


def cells(chunk: Chunk, column: str) -> pa.Array:
    """A column's cells, trimmed, with empty cells as null (a JSON key absent from
    every row of this chunk is all empty)."""
    if column not in chunk.table.column_names:
        return nulls(chunk.table.num_rows)
    col = chunk.table.column(column).combine_chunks()
    if col.type != STR:
        col = col.cast(STR)
    trimmed = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, STR), trimmed)


def where_mask(m: Mapping, chunk: Chunk) -> np.ndarray:
    """True for rows that `where` filters out."""
    keep = np.ones(chunk.table.num_rows, dtype=bool)
    for column, values in m.where.items():
        hit = pc.is_in(pc.fill_null(cells(chunk, column), ""), value_set=pa.array(values, STR))
        keep &= hit.to_numpy(zero_copy_only=False)
    return ~keep


def source_values(spec: FieldSpec, chunk: Chunk, n: int) -> pa.Array:
    if spec.column is not None:
        return cells(chunk, spec.column)
    if spec.value is not None:
        text = spec.value.strip()
        return pa.repeat(pa.scalar(text or None, STR), n)
    assert spec.template is not None
    parts: list[pa.Array | str] = []
    for i, part in enumerate(spec.template.parts):
        parts.append(cells(chunk, part) if i % 2 else part)
    # any empty placeholder makes the whole value empty (SPEC 9)
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def apply_map(spec: FieldSpec, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    assert spec.map is not None
    keys = pa.array(list(spec.map), STR)
    idx = pc.index_in(values, value_set=keys)
    mapped = pc.take(pa.array(list(spec.map.values()), STR), idx)
    missing = pc.and_(pc.is_valid(values), pc.is_null(idx))
    if not pc.any(missing).as_py():
        return mapped, nulls(len(values))
    reason = pc.binary_join_element_wise("'", values, "' is not in the map", "")
    return mapped, pc.if_else(missing, reason, pa.scalar(None, STR))


def convert_field(spec: FieldSpec, m: Mapping, values: pa.Array, numeric: np.ndarray | None) -> convert.Parsed:
    if spec.type in ("datetime", "date") and numeric is None and _repetitive(values):
        # a daily report repeats a few dates: parse each once, then spread back
        enc = values.dictionary_encode()
        once = _convert(spec, m, enc.dictionary, None)
        return convert.Parsed(once.values.take(enc.indices), once.errors.take(enc.indices))
    return _convert(spec, m, values, numeric)


def _repetitive(values: pa.Array, sample: int = 1024) -> bool:
    """Do the first cells repeat (at most one distinct value in eight)?"""
    return len(values) >= 2 * sample and pc.count_distinct(values.slice(0, sample)).as_py() * 8 <= sample


def _convert(spec: FieldSpec, m: Mapping, values: pa.Array, numeric: np.ndarray | None) -> convert.Parsed:
    t = spec.type
    if t == "string":
        return convert.Parsed(values, nulls(len(values)))
    if t in ("decimal", "integer"):
        fn = convert.parse_decimal if t == "decimal" else convert.parse_integer
        return fn(values, numeric=numeric, decimal=m.decimal, thousands=m.thousands)
    if t in ("datetime", "date"):
        return convert.parse_datetime(
            values, numeric=numeric, fmt=spec.format, tz=m.timezone, out_tz=m.output_timezone, date_only=t == "date"
        )
    if t == "currency":
        return convert.parse_currency(values)
    return convert.parse_country(values)


def map_field(spec: FieldSpec, m: Mapping, chunk: Chunk) -> tuple[pa.Array, pa.Array]:
    """Target values and reasons for one field over the whole chunk."""
    n = chunk.table.num_rows
    raw = source_values(spec, chunk, n)
    errors = nulls(n)
    empty = pc.is_null(raw)
    values = raw
    if spec.map is not None:
        values, errors = apply_map(spec, raw)
    numeric = chunk.numeric.get(spec.column) if spec.column and spec.map is None else None
    if spec.default is not None:
        values = pc.if_else(empty, pa.scalar(spec.default.strip() or None, STR), values)
        if numeric is not None:
            numeric = numeric & ~empty.to_numpy(zero_copy_only=False)
    parsed = convert_field(spec, m, values, numeric)
    errors = add_error(errors, parsed.errors)
    values = parsed.values
    if spec.max_length is not None:
        length = pc.utf8_length(values)
        too_long = pc.fill_null(pc.greater(length, spec.max_length), False)
        if pc.any(too_long).as_py():
            reason = pc.binary_join_element_wise(pc.cast(length, STR), f" characters, at most {spec.max_length}", "")
            errors = add_error(errors, pc.if_else(too_long, reason, pa.scalar(None, STR)))
    if spec.required and values.null_count:
        missing = pc.and_(pc.is_null(values), pc.is_null(errors))
        errors = add_error(errors, pc.if_else(missing, pa.scalar("required, but empty"), pa.scalar(None, STR)))
    return values, prefix(spec.target, errors)


def apply(m: Mapping, chunk: Chunk, specs: list[FieldSpec] | None = None, where: bool = True) -> Mapped:
    """Map every field of `specs` (default: the mapping's fields) over the chunk."""
    n = chunk.table.num_rows
    filtered = where_mask(m, chunk) if m.where and where else np.zeros(n, dtype=bool)
    errors = nulls(n)
    values: dict[str, pa.Array] = {}
    for spec in specs if specs is not None else m.fields:
        if spec.generate:
            continue
        vals, errs = map_field(spec, m, chunk)
        values[spec.target] = vals
        errors = add_error(errors, errs)
    return Mapped(values=values, errors=errors, filtered=filtered)
