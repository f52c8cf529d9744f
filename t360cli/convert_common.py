"""Shared pieces of the cell parsers: the Parsed result, reason building, number separators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Texts: TypeAlias = "pa.Array | pa.ChunkedArray"  # a column of text cells (pyarrow has no stubs: Any to mypy)
Mask: TypeAlias = npt.NDArray[np.bool_]
DECIMAL_MARKS = (".", ",")


@dataclass
class Parsed:
    values: pa.Array  # canonical text; null where the input was null or invalid
    errors: pa.Array  # reason text (no field name), null where fine


_NULL = pa.scalar(None, pa.string())


def separators(decimal: str, thousands: str | None) -> tuple[str, str]:
    """(decimal, thousands) separators to parse numbers with (SPEC 9, Numbers).

    With decimal "." the thousands separator is "," and with "," it is ".", unless
    `thousands` says otherwise ("" means none). ValueError when the decimal separator
    is not in DECIMAL_MARKS or both are the same.
    """
    if decimal not in DECIMAL_MARKS:
        raise ValueError(f"decimal separator must be '.' or ',', not {decimal!r}")
    if thousands is None:
        thousands = "," if decimal == "." else "."
    if thousands == decimal:
        raise ValueError(f"thousands separator {thousands!r} equals the decimal separator")
    return decimal, thousands


def _as_array(values: Texts) -> pa.Array:
    """One contiguous pa.string() array from an Array or ChunkedArray."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if values.type != pa.string():
        values = values.cast(pa.string())
    return values


def _mask(numeric: npt.ArrayLike | None, size: int) -> Mask | None:
    """The numeric mask as a bool array, or None when no cell is numeric."""
    if numeric is None:
        return None
    mask = np.asarray(numeric, dtype=bool)
    if mask.shape != (size,):
        raise ValueError(f"numeric mask has shape {mask.shape}, expected ({size},)")
    return mask if mask.any() else None


def _quote(arr: pa.Array, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise("'", arr, suffix, "")


def _finish(arr: pa.Array, out: pa.Array, suffix: str, special: tuple[tuple[Mask, str], ...] = ()) -> Parsed:
    """Parsed(out, errors): a cell given but null in `out` gets "'<cell>'" + suffix.

    `special` (bool mask, suffix) pairs, over cells null in `out`, override the suffix.
    """
    bad = pc.and_(arr.is_valid(), out.is_null())
    if not pc.any(bad).as_py():
        return Parsed(out, pa.nulls(len(arr), pa.string()))
    cells = arr.filter(bad)
    msgs = _quote(cells, suffix)
    bad_np = bad.to_numpy(zero_copy_only=False)
    for mask, text in special:
        if mask.any():
            msgs = pc.if_else(pa.array(mask[bad_np]), _quote(cells, text), msgs)
    return Parsed(out, pc.replace_with_mask(pa.nulls(len(arr), pa.string()), bad, msgs))
