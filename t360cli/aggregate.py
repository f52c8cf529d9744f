"""`aggregate:` — roll transaction rows up into one record per group (SPEC 3 and 9).

Groups are kept as Python Decimals keyed by the group's `by` values, so memory grows
with the number of groups, never with rows; chunks and files add into the same groups.
Sums are exact (0.1 + 0.2 is 0.3). A group's `createtime` is its date. Records come
out at the end, sorted by group key, so batches never depend on chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from t360cli.mapping.spec import AggregateSpec, Mapping
from t360cli.tally import EXACT


@dataclass(frozen=True)
class Groups:
    """The records of every group, and each group's key as text (for generated ids)."""

    values: dict[str, pa.Array]
    keys: list[str]


@dataclass
class Aggregator:
    """Partial groups stay Arrow tables: each chunk is grouped, the partials are
    re-grouped together whenever they outgrow the groups seen so far, and Python sees
    each group once, at the end."""

    mapping: Mapping
    spec: AggregateSpec
    parts: list[pa.Table] = field(default_factory=list)
    part_rows: int = 0
    groups_seen: int = 0

    @property
    def key_names(self) -> list[str]:
        return [f"k{i}" for i in range(len(self.spec.by))]

    def _aggs(self) -> list[tuple[str, str]]:
        n = len(self.spec.sum)
        return [(f"s{i}", "sum") for i in range(n)] + [(f"p{i}", "max") for i in range(n)] + [("n", "sum")]

    def _group(self, table: pa.Table) -> pa.Table:
        out = table.group_by(self.key_names, use_threads=False).aggregate(self._aggs())
        return out.rename_columns(
            [name.rsplit("_", 1)[0] if name[-4:] in ("_sum", "_max") else name for name in out.column_names]
        )

    def add(self, values: dict[str, pa.Array]) -> None:
        """Add valid rows' mapped values into their groups (vectorised per chunk)."""
        if not len(next(iter(values.values()))):
            return
        cols = {f"k{i}": _key(values[name], date) for i, (name, date) in enumerate(self.spec.by)}
        for i, name in enumerate(self.spec.sum):
            cols[f"s{i}"], cols[f"p{i}"] = _decimal(values[name])
        cols["n"] = pa.repeat(1, len(cols["k0"]))
        part = self._group(pa.table(cols))
        self.parts.append(part)
        self.part_rows += part.num_rows
        if self.part_rows > max(1 << 17, 2 * self.groups_seen):
            self._compact()

    def _compact(self) -> None:
        """Re-group the partials into one table (sums at the widest scale seen)."""
        if len(self.parts) > 1:
            for i in range(len(self.spec.sum)):
                scale = max(p.schema.field(f"s{i}").type.scale for p in self.parts)
                wide = pa.decimal256(76, scale)
                self.parts = [
                    p.set_column(p.schema.get_field_index(f"s{i}"), f"s{i}", p.column(f"s{i}").cast(wide))
                    for p in self.parts
                ]
            self.parts = [self._group(pa.concat_tables(self.parts))]
        self.part_rows = self.groups_seen = self.parts[0].num_rows if self.parts else 0

    def finish(self) -> Groups | None:
        """Every group's record values, sorted by group key (None: no group)."""
        self._compact()
        if not self.parts or not self.parts[0].num_rows:
            return None
        rows = self.parts[0].to_pylist()
        nkeys = len(self.spec.by)
        rows.sort(key=lambda g: tuple("" if g[f"k{i}"] is None else g[f"k{i}"] for i in range(nkeys)))
        keys = [tuple(g[f"k{i}"] for i in range(nkeys)) for g in rows]
        values: dict[str, pa.Array] = {}
        for spec in self.mapping.fields:
            if spec.value is not None:
                values[spec.target] = pa.repeat(pa.scalar(spec.value.strip() or None, pa.string()), len(keys))
        for i, (name, _) in enumerate(self.spec.by):
            values[name] = pa.array([k[i] for k in keys], pa.string())
        for i, name in enumerate(self.spec.sum):
            values[name] = pa.array([_text(g[f"s{i}"], g[f"p{i}"]) for g in rows], pa.string())
        if self.spec.count:
            values[self.spec.count] = pa.array([str(g["n"]) for g in rows], pa.string())
        ordered = {spec.target: values[spec.target] for spec in self.mapping.fields if spec.target in values}
        ordered.update({name: col for name, col in values.items() if name not in ordered})
        return Groups(ordered, [_group_id(key) for key in keys])


def _key(col: pa.Array, date: bool) -> pa.Array:
    return pc.utf8_slice_codeunits(col, 0, 10) if date else col


def _decimal(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(decimal128 values, digits after the point of each)."""
    dot = pc.find_substring(col, ".")
    frac = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(pc.utf8_length(col), dot), 1))
    scale = max(int(pc.max(frac).as_py() or 0), 0)
    return pc.cast(col, pa.decimal256(76, scale)), frac


def _text(value: Decimal | None, places: int | None) -> str:
    """A sum written with the widest precision its group's values had (0.10 + 0.2 = 0.30)."""
    if value is None:  # every value of the group was empty
        return "0"
    return format(EXACT.quantize(value, Decimal(1).scaleb(-(places or 0))), "f")


def _group_id(key: tuple[Any, ...]) -> str:
    return "\x1f".join("" if v is None else str(v) for v in key)
