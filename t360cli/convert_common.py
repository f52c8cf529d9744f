"""Shared pieces of the cell parsers: the Parsed result and reason building."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Parsed:
    values: pa.Array  # canonical text; null where the input was null or invalid
    errors: pa.Array  # reason text (no field name), null where fine


_NULL = pa.scalar(None, pa.string())


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous pa.string() array from an Array or ChunkedArray."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if values.type != pa.string():
        values = values.cast(pa.string())
    return values


def _mask(numeric: np.ndarray | None, n: int) -> np.ndarray | None:
    """The numeric mask as a bool array, or None when no cell is numeric."""
    if numeric is None:
        return None
    mask = np.asarray(numeric, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"numeric mask has shape {mask.shape}, expected ({n},)")
    return mask if mask.any() else None


def _quote(arr: pa.Array, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise("'", arr, suffix, "")


def _finish(arr: pa.Array, out: pa.Array, suffix: str, special: tuple[tuple[np.ndarray, str], ...] = ()) -> Parsed:
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
