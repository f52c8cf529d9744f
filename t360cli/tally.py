"""The run's shared state: Counts (every row in exactly one bucket), control Totals and
the rejects waiting to be written in file and line order."""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.readers import Chunk, Source

# -- reject reasons grouped by field and rule (SPEC 10: the summary's top five) ----------------------

_VALUE = re.compile(r"'.*?'(?= (?:is|does|was|has|holds) )")  # the cell in "'abc' is not a number"
_HOLE = "\x00"  # where the value was, until the rule is tidied
_SPLIT = re.compile(r"; (?=[A-Za-z_][\w.\-]*: )")  # "; " before the next field's name, not "; set format:"
_TIDY = (
    (re.compile(_HOLE + " is "), ""),  # "createtime: '03/04' is not ..." -> "createtime: not ..."
    (re.compile(_HOLE + " has "), "has "),  # "Value: '1234...' has more than 38 ..." -> "Value: has more than ..."
    (re.compile(_HOLE + " "), ""),  # "... 'x' does not match format %d" -> "... does not match format %d"
    (re.compile(r"^([^:]+: )\d+ characters, at most (\d+)$"), r"\1more than \2 characters"),
    (re.compile(r"^\d+ cells, the header has (\d+)$"), r"wrong number of cells (the header has \1)"),
    (re.compile(r"^(not valid JSON: .*) at column \d+$"), r"\1"),
    (re.compile(r"; set format: in the mapping$"), "; set format:"),
)
MAX_RULE_CHARS = 200  # a long server message is cut: memory stays bounded


def reason_rules(reason: str) -> list[str]:
    """A row's reason as its rules, the cell values left out: the keys the summary groups by.

    `Value: 'abc' is not a number; tracking_data: 57 characters, at most 50` gives
    `["Value: not a number", "tracking_data: more than 50 characters"]`."""
    return list(_rules_of(_VALUE.sub(_HOLE, reason) if "'" in reason else reason))


@lru_cache(maxsize=4096)
def _rules_of(text: str) -> tuple[str, ...]:
    """The rules of a reason whose values are taken out: a few distinct texts per run."""
    rules = _SPLIT.split(text) if "; " in text else [text]
    out = []
    for rule in rules:
        for pattern, replacement in _TIDY:
            rule = pattern.sub(replacement, rule)
        out.append(rule.replace(_HOLE, "'...'")[:MAX_RULE_CHARS])
    return tuple(out)


@dataclass(frozen=True)
class ReasonCount:
    """One rule of the reject reasons: how many rows broke it and the first of them."""

    reason: str
    count: int
    file: str
    line: int

    def text(self) -> str:
        return f"{self.count:,} x {self.reason} (first: {self.file} line {self.line})"

    def to_json(self) -> dict[str, object]:
        return {"reason": self.reason, "count": self.count, "first_file": self.file, "first_line": self.line}


class ReasonTally:
    """Rejected rows counted per rule as they come: O(1) per reject, at most MAX_GROUPS rules kept."""

    MAX_GROUPS = 1000

    def __init__(self) -> None:
        self.groups: dict[str, list[Any]] = {}  # rule -> [count, (file index, line), file, line]
        self.other = 0  # rows of rules beyond MAX_GROUPS (counted, not named)

    def add(self, reason: str, file: str, line: int, file_index: int = 0, rules: list[str] | None = None) -> None:
        """One rejected row; `rules`: its reason_rules, when a worker thread made them already."""
        where = (file_index, line)
        for rule in reason_rules(reason) if rules is None else rules:
            slot = self.groups.get(rule)
            if slot is None:
                if len(self.groups) >= self.MAX_GROUPS:
                    self.other += 1
                else:
                    self.groups[rule] = [1, where, file, line]
            else:
                slot[0] += 1
                if where < slot[1]:  # a later pass (conflicts) may find an earlier line
                    slot[1:] = [where, file, line]

    def top(self, n: int = 5) -> list[ReasonCount]:
        """The n most frequent rules; ties go to the one seen first in the inputs."""
        best = heapq.nsmallest(n, self.groups.items(), key=lambda item: (-item[1][0], item[1][1], item[0]))
        return [ReasonCount(rule, slot[0], slot[2], slot[3]) for rule, slot in best]


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
    rows_unchanged: int = 0  # acknowledged before with the same record (the ledger, SPEC 13)
    records_unchanged: int = 0
    orphan_activities: int | None = None  # activities for a customer never sent (SPEC 13)
    customers_missing: dict[str, int] | None = None  # per contract.customers_must_have field (SPEC 12)
    failed_causes: dict[str, int] = field(default_factory=dict)  # error of failed batches -> batches
    reject_reasons: ReasonTally = field(default_factory=ReasonTally, repr=False, compare=False)  # not a count


Sums = dict[str, dict[str, dict[str, Decimal]]]  # eventname -> Currency -> field -> sum


EXACT = Context(prec=200)  # sums of values of at most 38 significant digits never round


def _group_sums(keys: dict[str, pa.Array], col: pa.Array) -> list[tuple[str, str, Decimal]]:
    """Exact sums of one decimal column per (eventname, Currency), in Arrow while they fit
    38 digits (the usual case), in Python Decimals otherwise: never an overflow, never a wrap."""
    dot = pc.find_substring(col, ".")
    length = pc.utf8_length(col)
    frac = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(length, dot), 1))
    whole = pc.if_else(pc.less(dot, 0), length, dot)
    scale = max(int(pc.max(frac).as_py() or 0), 0)
    digits = max(int(pc.max(whole).as_py() or 0), 1) + scale + len(str(len(col)))  # room for the sum
    if digits <= 38:
        table = pa.table({**keys, "v": pc.cast(col, pa.decimal128(38, scale))}).group_by(["e", "c"])
        sums = table.aggregate([("v", "sum")])
        rows = zip(*(sums.column(name).to_pylist() for name in ("e", "c", "v_sum")), strict=True)
        return [(event, ccy, total) for event, ccy, total in rows if total is not None]
    out: dict[tuple[str, str], Decimal] = {}
    for event, ccy, text in zip(keys["e"].to_pylist(), keys["c"].to_pylist(), col.to_pylist(), strict=True):
        if text is not None:
            out[(event, ccy)] = EXACT.add(out.get((event, ccy), Decimal(0)), Decimal(text))
    return [(event, ccy, total) for (event, ccy), total in out.items()]


class Totals:
    """Exact decimal sums of Value and every decimal KPI per eventname and Currency."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = list(fields)
        self.sums: Sums = {}
        self.scale: dict[str, int] = {}  # widest precision seen per field: output never depends on chunking

    def _add(self, event: str, ccy: str, name: str, value: Decimal, sign: int = 1) -> None:
        slot = self.sums.setdefault(event, {}).setdefault(ccy, {})
        slot[name] = EXACT.add(slot.get(name, Decimal(0)), EXACT.multiply(sign, value))
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
            for event, ccy, total in _group_sums(keys, col):
                self._add(event, ccy, name, total, sign)

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
        return format(EXACT.quantize(value, Decimal(1).scaleb(-self.scale.get(name, 0))), "f")

    def as_json(self) -> dict[str, Any]:
        return {
            e: {c: {f: self.text(f, v) for f, v in fs.items()} for c, fs in cs.items()} for e, cs in self.sums.items()
        }


@dataclass(frozen=True)
class JudgedRows:
    """Rejected rows of a chunk, ready to be counted and written: the slow per-row part (the
    cells as Python values, the reason's rules) made beside the mapping, off the main thread."""

    lines: list[int]
    reasons: list[str]
    cells: list[dict[str, Any]]
    rules: list[list[str]]


def judged_rows(chunk: Chunk, rows: np.ndarray, reasons: list[str]) -> JudgedRows:
    cells = chunk.table.take(pa.array(rows)).to_pylist() if len(rows) else []
    lines = chunk.lines[rows].tolist() if len(rows) else []
    return JudgedRows(lines, reasons, cells, [reason_rules(reason) for reason in reasons])


class RejectSink(Protocol):
    def write(self, source: str, line: int, reason: str, cells: dict[str, Any]) -> None: ...


class RejectBuffer:
    """Rejects of the chunk being absorbed, counted at once and written in file and line
    order when the chunk is done (its bad rows, row rules and conflicts come in three passes)."""

    def __init__(self, counts: Counts, sink: RejectSink | None) -> None:
        self.counts = counts
        self.sink = sink
        self.held: list[tuple[int, int, str, str, dict[str, Any]]] = []

    def add(
        self, source: Source, line: int, reason: str, cells: dict[str, Any], rules: list[str] | None = None
    ) -> None:
        self.counts.rows_rejected += 1
        self.counts.reject_reasons.add(reason, source.name, line, source.index, rules)
        if self.sink is not None:
            self.held.append((source.index, line, source.name, reason, cells))

    def add_rows(self, chunk: Chunk, rows: np.ndarray, reasons: list[str]) -> None:
        """Rows of a chunk (positions in its table), with a reason each."""
        if len(reasons):
            self.add_judged(chunk, judged_rows(chunk, rows, reasons))

    def add_judged(self, chunk: Chunk, judged: JudgedRows) -> None:
        """Rows whose cells and rules a worker thread prepared (judged_rows)."""
        for line, reason, cell, rules in zip(judged.lines, judged.reasons, judged.cells, judged.rules, strict=True):
            self.add(chunk.source, line, reason, cell, rules)

    def flush(self) -> None:
        if self.sink is not None:
            for _, line, name, reason, cells in sorted(self.held, key=lambda held: (held[0], held[1])):
                self.sink.write(name, line, reason, cells)
        self.held = []
