"""`aggregate:` — roll transaction rows up into one record per group (SPEC 3 and 9).

Groups are kept as Python Decimals keyed by the group's `by` values, so memory grows
with the number of groups, never with rows; chunks and files add into the same groups.
Sums are exact (0.1 + 0.2 is 0.3). A group's `createtime` is its date. Records come
out at the end, sorted by group key, so batches never depend on chunking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import encode
from t360cli.batching import Piece

if TYPE_CHECKING:
    from t360cli.mapping import Mapping
    from t360cli.pipeline import Pipeline


@dataclass
class AggregateSpec:
    by: list[tuple[str, bool]]  # (target field, cut to its date)
    sum: list[str]
    count: str | None = None


def parse_aggregate(ck: Any, tree: Any, m: Mapping) -> AggregateSpec:
    from t360cli.mapping import YList, YMap

    node, line = tree["aggregate"], tree.line_of("aggregate")
    if m.kind != "activities" or m.events:
        raise ck.fail(line, "aggregate: is for activities mappings without events:.")
    if not isinstance(node, YMap):
        raise ck.fail(line, "aggregate: must be a map with by:, sum: and optionally count:.")
    ck.keys(node, ("by", "sum", "count"), "aggregate")
    mapped = {s.target: s for s in m.fields}
    by_raw = node.get("by")
    if not isinstance(by_raw, YList) or not by_raw:
        raise ck.fail(node.line_of("by"), "aggregate.by must list the target fields that form a group.")
    by = []
    for item, item_line in zip(by_raw, by_raw.item_lines, strict=True):
        date = isinstance(item, YMap)
        name = item.get("date") if date and list(item) == ["date"] else item
        if not isinstance(name, str) or name not in mapped:
            raise ck.fail(
                item_line,
                f"aggregate.by: '{item}' is not a field of this mapping.",
                "Name target fields from fields:, or {date: createtime}.",
            )
        if date and mapped[name].type not in ("datetime", "date"):
            raise ck.fail(item_line, f"aggregate.by: {{date: {name}}} needs a datetime or date field.")
        by.append((name, date))
    sums = node.get("sum", YList())
    sums = [sums] if isinstance(sums, str) else list(sums)
    for name in sums:
        if name not in mapped or mapped[name].type not in ("decimal", "integer"):
            raise ck.fail(node.line_of("sum"), f"aggregate.sum: '{name}' must be a decimal or integer field.")
    count = node.get("count")
    if count is not None and (not isinstance(count, str) or count in mapped):
        raise ck.fail(node.line_of("count"), "aggregate.count names a new field to hold the number of rows.")
    spec = AggregateSpec(by, sums, count)
    _check_constant_fields(ck, m, spec)
    return spec


def _check_constant_fields(ck: Any, m: Mapping, spec: AggregateSpec) -> None:
    """Any other field would differ inside a group (USD and EUR summed together)."""
    keyed = {name for name, _ in spec.by} | set(spec.sum)
    for s in m.fields:
        if s.target in keyed or s.value is not None or s.generate:
            continue
        raise ck.fail(
            s.line,
            f"aggregate: {s.target} can differ between the rows of a group.",
            f"Add {s.target} to aggregate.by, list it in sum:, or make it a value:.",
        )


@dataclass
class Aggregator:
    mapping: Mapping
    groups: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)

    @property
    def spec(self) -> AggregateSpec:
        return self.mapping.aggregate

    def add(self, values: dict[str, pa.Array]) -> None:
        """Add valid rows' mapped values into their groups (vectorised per chunk)."""
        if not len(next(iter(values.values()))):
            return
        keys = {f"k{i}": _key(values[name], date) for i, (name, date) in enumerate(self.spec.by)}
        cols: dict[str, pa.Array] = {}
        for i, name in enumerate(self.spec.sum):
            cols[f"s{i}"], cols[f"p{i}"] = _decimal(values[name])
        table = pa.table({**keys, **cols, "n": pa.repeat(1, len(keys["k0"]))})
        aggs = [(f"s{i}", "sum") for i in range(len(self.spec.sum))]
        aggs += [(f"p{i}", "max") for i in range(len(self.spec.sum))] + [("n", "sum")]
        grouped = table.group_by(list(keys), use_threads=False).aggregate(aggs).to_pylist()
        nsum = len(self.spec.sum)
        for g in grouped:
            key = tuple(g[k] for k in keys)
            slot = self.groups.get(key)
            if slot is None:  # sums, then the widest precision of each, then the row count
                slot = self.groups[key] = [Decimal(0)] * nsum + [0] * nsum + [0]
            for i in range(nsum):
                if g[f"s{i}_sum"] is not None:
                    slot[i] += g[f"s{i}_sum"]
                    slot[nsum + i] = max(slot[nsum + i], g[f"p{i}_max"] or 0)
            slot[-1] += g["n_sum"]

    def finish(self, pipe: Pipeline) -> Iterator[Piece]:
        if not self.groups:
            return
        keys = sorted(self.groups, key=lambda k: tuple("" if v is None else v for v in k))
        values: dict[str, pa.Array] = {}
        for s in self.mapping.fields:
            if s.value is not None:
                values[s.target] = pa.repeat(pa.scalar(s.value.strip() or None, pa.string()), len(keys))
        for i, (name, _) in enumerate(self.spec.by):
            values[name] = pa.array([k[i] for k in keys], pa.string())
        for i, name in enumerate(self.spec.sum):
            values[name] = pa.array(
                [_text(self.groups[k][i], self.groups[k][len(self.spec.sum) + i]) for k in keys], pa.string()
            )
        if self.spec.count:
            values[self.spec.count] = pa.array([str(self.groups[k][-1]) for k in keys], pa.string())
        ordered = {s.target: values[s.target] for s in self.mapping.fields if s.target in values}
        ordered.update({k: v for k, v in values.items() if k not in ordered})
        yield pipe.aggregated_piece(ordered, [_group_id(k) for k in keys])


def _key(col: pa.Array, date: bool) -> pa.Array:
    return pc.utf8_slice_codeunits(col, 0, 10) if date else col


def _decimal(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(decimal128 values, digits after the point of each)."""
    dot = pc.find_substring(col, ".")
    frac = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(pc.utf8_length(col), dot), 1))
    scale = max(int(pc.max(frac).as_py() or 0), 0)
    return pc.cast(col, pa.decimal128(38, scale)), frac


def _text(value: Decimal, places: int) -> str:
    """A sum written with the widest precision its group's values had (0.10 + 0.2 = 0.30)."""
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def _group_id(key: tuple[Any, ...]) -> str:
    return "\x1f".join("" if v is None else str(v) for v in key)


def group_ids(keys: list[str]) -> pa.Array:
    """Stable eventids from group keys (for `eventid: {generate: hash}`)."""
    return encode.hash_ids(pa.array(keys, pa.string()))


__all__ = ["AggregateSpec", "Aggregator", "group_ids", "parse_aggregate", "np"]
