"""The run's shared state: Counts (every row in exactly one bucket), control Totals and
the rejects waiting to be written in file and line order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.readers import Chunk, Source


@dataclass
class Counts:
    rows_read: int = 0
    rows_valid: int = 0
    rows_filtered: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    records_valid: int = 0
    records_sent: int = 0
    batches_total: int = 0
    batches_sent: int = 0
    batches_failed: int = 0
    batches_skipped: int = 0
    retries: int = 0
    http_status_counts: dict[str, int] = field(default_factory=dict)
    unattributed_customers: int | None = None


Sums = dict[str, dict[str, dict[str, Decimal]]]  # eventname -> Currency -> field -> sum


class Totals:
    """Exact decimal sums of Value and every decimal KPI per eventname and Currency."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = list(fields)
        self.sums: Sums = {}
        self.scale: dict[str, int] = {}  # widest precision seen per field: output never depends on chunking

    def _add(self, event: str, ccy: str, name: str, value: Decimal, sign: int = 1) -> None:
        slot = self.sums.setdefault(event, {}).setdefault(ccy, {})
        slot[name] = slot.get(name, Decimal(0)) + sign * value
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int):
            self.scale[name] = max(self.scale.get(name, 0), -exponent)

    def merge(self, other: Totals, sign: int = 1) -> None:
        for event, by_ccy in other.sums.items():
            for ccy, sums in by_ccy.items():
                for name, value in sums.items():
                    self._add(event, ccy, name, value, sign)
        for name, places in other.scale.items():
            self.scale[name] = max(self.scale.get(name, 0), places)

    def add_columns(self, values: dict[str, pa.Array], sign: int = 1) -> None:
        """Vectorised: group the chunk's records and add their sums."""
        if not self.fields or "eventname" not in values:
            return
        n = len(values["eventname"])
        keys = {
            "e": pc.fill_null(values["eventname"], ""),
            "c": pc.fill_null(values.get("Currency", pa.nulls(n, pa.string())), ""),
        }
        for name in self.fields:
            col = values.get(name)
            if col is None or col.null_count == len(col):
                continue
            dot = pc.find_substring(col, ".")
            frac = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(pc.utf8_length(col), dot), 1))
            scale = max(int(pc.max(frac).as_py() or 0), 0)
            dec = pc.cast(col, pa.decimal128(38, scale))
            table = pa.table({**keys, "v": dec}).group_by(["e", "c"]).aggregate([("v", "sum")])
            for e, c, s in zip(*(table.column(x).to_pylist() for x in ("e", "c", "v_sum")), strict=True):
                if s is not None:
                    self._add(e, c, name, s, sign)

    def add_record(self, record: dict[str, Any], sign: int = 1) -> None:
        """Slow path for single records (server refusals, failed batches)."""
        event, ccy = record.get("eventname", ""), record.get("Currency", "")
        for name in self.fields:
            if name in record:
                self._add(event, ccy, name, Decimal(record[name]), sign)

    def copy(self) -> Totals:
        out = Totals(self.fields)
        out.sums = {e: {c: dict(f) for c, f in cs.items()} for e, cs in self.sums.items()}
        out.scale = dict(self.scale)
        return out

    def text(self, name: str, value: Decimal) -> str:
        return format(value.quantize(Decimal(1).scaleb(-self.scale.get(name, 0))), "f")

    def as_json(self) -> dict[str, Any]:
        return {
            e: {c: {f: self.text(f, v) for f, v in fs.items()} for c, fs in cs.items()} for e, cs in self.sums.items()
        }


class RejectSink(Protocol):
    def write(self, source: str, line: int, reason: str, cells: dict[str, Any]) -> None: ...


class RejectBuffer:
    """Rejects of the chunk being absorbed, counted at once and written in file and line
    order when the chunk is done (its bad rows, row rules and conflicts come in three passes)."""

    def __init__(self, counts: Counts, sink: RejectSink | None) -> None:
        self.counts = counts
        self.sink = sink
        self.held: list[tuple[int, int, str, str, dict[str, Any]]] = []

    def add(self, source: Source, line: int, reason: str, cells: dict[str, Any]) -> None:
        self.counts.rows_rejected += 1
        if self.sink is not None:
            self.held.append((source.index, line, source.name, reason, cells))

    def add_rows(self, chunk: Chunk, rows: np.ndarray, reasons: list[str]) -> None:
        """Rows of a chunk (positions in its table), with a reason each."""
        if not len(reasons):
            return
        cells = chunk.table.take(pa.array(rows)).to_pylist()
        for row, reason, cell in zip(rows, reasons, cells, strict=True):
            self.add(chunk.source, int(chunk.lines[row]), reason, cell)

    def flush(self) -> None:
        if self.sink is not None:
            for _, line, name, reason, cells in sorted(self.held, key=lambda held: (held[0], held[1])):
                self.sink.write(name, line, reason, cells)
        self.held = []
