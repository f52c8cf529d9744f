"""Apply a Mapping to a Chunk, vectorised over whole columns.

The result holds, for every row of the chunk, the canonical text of each target field
(null = absent), why a value could not be made (a map miss, a type error) and whether
`where` filtered the row out. The row rules that judge the values are validate.py's.
Nothing here loops over cells in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import convert, reasons
from t360cli.mapping.spec import FieldSpec, Mapping
from t360cli.readers import Chunk

STR = reasons.STR


@dataclass
class Mapped:
    """One chunk after mapping: the target values, and what went wrong making them."""

    values: dict[str, pa.Array]  # target -> text, null where absent
    problems: dict[str, pa.Array]  # target -> why its value could not be made (unprefixed), null where fine
    filtered: np.ndarray  # bool: dropped by `where`

    def __len__(self) -> int:
        return len(self.filtered)


def cells(chunk: Chunk, column: str) -> pa.Array:
    """A column's cells, trimmed, with empty cells as null (a JSON key absent from
    every row of this chunk is all empty)."""
    if column not in chunk.table.column_names:
        return reasons.nulls(chunk.table.num_rows)
    col = chunk.table.column(column).combine_chunks()
    if col.type != STR:
        col = col.cast(STR)
    trimmed = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, STR), trimmed)


def where_mask(mapping: Mapping, chunk: Chunk) -> np.ndarray:
    """True for rows that `where` filters out."""
    keep = np.ones(chunk.table.num_rows, dtype=bool)
    for column, values in mapping.where.items():
        hit = pc.is_in(pc.fill_null(cells(chunk, column), ""), value_set=pa.array(values, STR))
        keep &= hit.to_numpy(zero_copy_only=False)
    return ~keep


def source_values(spec: FieldSpec, chunk: Chunk, count: int) -> pa.Array:
    """The field's text before map and type: a column's cells (with `strip` applied),
    a constant, or a template filled in; null where empty."""
    if spec.column is not None:
        values = cells(chunk, spec.column)
        return _strip(values, spec.strip) if spec.strip else values
    if spec.value is not None:
        text = spec.value.strip()
        return pa.repeat(pa.scalar(text or None, STR), count)
    assert spec.template is not None
    parts: list[pa.Array | str] = []
    for i, part in enumerate(spec.template.parts):
        parts.append(cells(chunk, part) if i % 2 else part)
    # any empty placeholder makes the whole value empty (SPEC 9)
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def _strip(values: pa.Array, characters: str) -> pa.Array:
    """`strip: "€$% "`: those characters off both ends, then spaces; empty is null."""
    stripped = pc.utf8_trim_whitespace(pc.utf8_trim(values, characters=characters))
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, STR), stripped)


def apply_map(spec: FieldSpec, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Translate through `map:`; a value missing from it is a reject, or kept as it is
    with `unmapped: keep`."""
    assert spec.map is not None
    keys = pa.array(list(spec.map), STR)
    idx = pc.index_in(values, value_set=keys)
    mapped = pc.take(pa.array(list(spec.map.values()), STR), idx)
    missing = pc.and_(pc.is_valid(values), pc.is_null(idx))
    if spec.unmapped == "keep":
        return pc.if_else(missing, values, mapped), reasons.nulls(len(values))
    if not pc.any(missing).as_py():
        return mapped, reasons.nulls(len(values))
    return mapped, reasons.where(missing, pc.binary_join_element_wise("'", values, "' is not in the map", ""))


def convert_field(
    spec: FieldSpec, mapping: Mapping, values: pa.Array, numeric: np.ndarray | None, date1904: bool = False
) -> convert.Parsed:
    if spec.type in ("datetime", "date") and numeric is None and _repetitive(values):
        # a daily report repeats a few dates: parse each once, then spread back
        enc = values.dictionary_encode()
        once = _convert(spec, mapping, enc.dictionary, None, date1904)
        return convert.Parsed(once.values.take(enc.indices), once.errors.take(enc.indices))
    return _convert(spec, mapping, values, numeric, date1904)


def _repetitive(values: pa.Array, sample: int = 1024) -> bool:
    """Do the first cells repeat (at most one distinct value in eight)?"""
    return len(values) >= 2 * sample and pc.count_distinct(values.slice(0, sample)).as_py() * 8 <= sample


def _convert(
    spec: FieldSpec, mapping: Mapping, values: pa.Array, numeric: np.ndarray | None, date1904: bool
) -> convert.Parsed:
    kind = spec.type
    if kind == "string":
        return convert.Parsed(values, reasons.nulls(len(values)))
    if kind in ("decimal", "integer"):
        parse = convert.parse_decimal if kind == "decimal" else convert.parse_integer
        return parse(values, numeric=numeric, decimal=mapping.decimal, thousands=mapping.thousands)
    if kind in ("datetime", "date"):
        return convert.parse_datetime(
            values,
            numeric=numeric,
            fmt=spec.format,
            tz=mapping.timezone,
            out_tz=mapping.output_timezone,
            date_only=kind == "date",
            date1904=date1904,
        )
    if kind == "currency":
        return convert.parse_currency(values)
    return convert.parse_country(values)


def map_field(spec: FieldSpec, mapping: Mapping, chunk: Chunk) -> tuple[pa.Array, pa.Array]:
    """Target values of one field over the whole chunk, and why some could not be made."""
    count = chunk.table.num_rows
    raw = source_values(spec, chunk, count)
    problems = reasons.nulls(count)
    values = raw
    if spec.map is not None:
        values, problems = apply_map(spec, raw)
    numeric = chunk.numeric.get(spec.column) if spec.column and spec.map is None else None
    if spec.default is not None:
        empty = pc.is_null(raw)
        values = pc.if_else(empty, pa.scalar(spec.default.strip() or None, STR), values)
        if numeric is not None:
            numeric = numeric & ~empty.to_numpy(zero_copy_only=False)
    parsed = convert_field(spec, mapping, values, numeric, chunk.date1904)
    values, problems = parsed.values, reasons.join(problems, parsed.errors)
    excel = chunk.errors.get(spec.column) if spec.column is not None else None
    if excel is not None and excel.any():  # SPEC 12: an error cell is a reject naming the error
        flagged = pa.array(excel)
        error = pc.binary_join_element_wise("the cell holds the Excel error ", raw, "")
        values, problems = pc.if_else(flagged, pa.scalar(None, STR), values), pc.if_else(flagged, error, problems)
    return values, problems


def apply(mapping: Mapping, chunk: Chunk, specs: list[FieldSpec] | None = None, where: bool = True) -> Mapped:
    """Map every field of `specs` (default: the mapping's fields) over the chunk."""
    count = chunk.table.num_rows
    filtered = where_mask(mapping, chunk) if mapping.where and where else np.zeros(count, dtype=bool)
    values: dict[str, pa.Array] = {}
    problems: dict[str, pa.Array] = {}
    for spec in specs if specs is not None else mapping.fields:
        if spec.generate:
            continue
        values[spec.target], problems[spec.target] = map_field(spec, mapping, chunk)
    return Mapped(values=values, problems=problems, filtered=filtered)
