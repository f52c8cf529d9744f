"""Per-row reasons as Arrow string arrays: null where the row is fine, "; "-joined otherwise."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

STR = pa.string()


def nulls(count: int) -> pa.Array:
    """No reason for any of `count` rows."""
    return pa.nulls(count, STR)


def is_clean(reasons: pa.Array) -> bool:
    return bool(reasons.null_count == len(reasons))


def join(reasons: pa.Array, new: pa.Array) -> pa.Array:
    """Append reasons row-wise ("a; b"), keeping nulls where neither has one."""
    if is_clean(new):
        return reasons
    if is_clean(reasons):
        return new
    joined = pc.binary_join_element_wise(reasons, new, "; ")
    return pc.coalesce(joined, reasons, new)


def prefix(target: str, reasons: pa.Array) -> pa.Array:
    """Name the field: "Value: not a number"."""
    return reasons if is_clean(reasons) else pc.binary_join_element_wise(f"{target}: ", reasons, "")


def where(mask: pa.Array, reason: pa.Array | str) -> pa.Array:
    """`reason` where mask is true, else null."""
    return pc.if_else(mask, reason, pa.scalar(None, STR))
