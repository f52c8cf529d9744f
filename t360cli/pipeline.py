"""Read -> map and check -> encode -> dedupe, chunk by chunk: the part every command shares.

`Pipeline.pieces()` only sequences the stages: chunks are prepared (`prepare`: pure,
mostly Arrow kernels that release the GIL) two at a time, then absorbed (`absorb`:
counted, deduplicated, rejected) one by one in file order.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import contract, encode, events, readers, transform, validate
from t360cli.aggregate import Aggregator, Groups
from t360cli.batching import Origin, Piece
from t360cli.dedupe import Dedupe, Presence, RecordKeys, classify, hash_strings
from t360cli.ledger_view import RunLedger, Verdict, orphan_names
from t360cli.mapping import Mapping, check_columns
from t360cli.readers import Chunk
from t360cli.tally import Counts, JudgedRows, RejectBuffer, RejectSink, Totals, judged_rows

WORKERS = 2  # these machines have 2 cores; the floor leaves one idle
CHUNK_ROWS = 12_288  # peak memory grows with the chunk; speed barely does past ~16k rows


@dataclass
class Inputs:
    paths: list[Path]
    headers: list[list[str]]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(column for header in self.headers for column in header))


def open_inputs(mapping: Mapping, patterns: list[str]) -> Inputs:
    """Resolve the files and check the mapping's columns against each header."""
    paths = readers.resolve_inputs(patterns)
    headers = []
    for path in paths:
        header = readers.read_header(path, mapping.source)
        check_columns(mapping, str(path), header)
        headers.append(header)
    return Inputs(paths, headers)


@dataclass
class Prepared:
    """A chunk after the pure part of the work (Pipeline.prepare)."""

    chunk: Chunk
    checked: validate.Checked
    records: pa.Array  # JSON text of the valid records (empty when aggregating)
    totals: Totals  # control totals of those records, before dedupe
    keys: RecordKeys
    verdict: Verdict  # what the ledger says of each record (nothing without a ledger)
    rejected: JudgedRows  # the rows the row rules reject, their cells and rules made here
    where_values: dict[str, dict[str, int]] = field(default_factory=dict)  # filtered rows' where cells


@dataclass
class Pipeline:
    mapping: Mapping
    inputs: Inputs
    rejects: RejectSink | None
    limit: int | None = None
    chunk_rows: int = CHUNK_ROWS
    counts: Counts = field(default_factory=Counts)
    on_chunk: Callable[[Counts], None] | None = None  # after each chunk, for progress
    must_have: tuple[str, ...] = ()  # contract.customers_must_have: counted when missing
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # contract.allowed: other values rejected
    ledger: RunLedger | None = None  # what Track360 acknowledged before (upload; validate with a key)
    reject_orphans: bool = False  # contract.orphans: reject

    def __post_init__(self) -> None:
        self.kind = self.mapping.kind
        self.dedupe = Dedupe(self.kind)
        self.totals = Totals(self.mapping.decimal_fields() if self.kind == "activities" else [])
        self.buffer = RejectBuffer(self.counts, self.rejects)
        tracked = list(dict.fromkeys(["tracking_data", *self.must_have]))
        self.presence = Presence(tracked) if self.kind == "customers" else None
        if self.kind == "customers":
            self.counts.unattributed_customers = 0
        elif self.ledger is not None:  # checked, so 0 when there are none (null: not checked)
            self.counts.orphan_activities = 0
        self.generate = any(spec.generate for spec in self.mapping.fields)
        spec = self.mapping.aggregate
        self.aggregator = Aggregator(self.mapping, spec) if spec is not None else None
        self.where_counts: dict[str, Counter[str]] = {}
        self.customers_missing: dict[str, int] = {}  # per contract.customers_must_have field, once read
        self.orphan_names: list[str] = []  # the first few customerids of orphan activities
        self.records_without_id = 0  # activities the ledger cannot remember (no eventid)
        self._customer_keys: list[np.ndarray] = []  # ledger id hashes of valid customers (a job's orphans)

    def where_seen(self, most: int = 5) -> dict[str, list[tuple[str, int]]]:
        """Per `where:` column, the values seen most often in the rows it filtered out of chunks
        it emptied: all the "where: filtered every row" warning needs (a filter in the wrong
        case shows here: `approved` against `Approved`), at no cost to a run that keeps rows."""
        return {column: seen.most_common(most) for column, seen in self.where_counts.items()}

    def chunks(self) -> Iterator[Chunk]:
        left = self.limit
        for chunk in readers.read_chunks(self.inputs.paths, self.mapping.source, self.chunk_rows):
            if left is not None:
                chunk = _head(chunk, left)
                left -= chunk.table.num_rows + len(chunk.bad)
            yield chunk
            if left is not None and left <= 0:
                return

    def pieces(self) -> Iterator[Piece]:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="t360-prepare") as pool:
            pending: deque[Future[Prepared]] = deque()
            for chunk in self.chunks():
                pending.append(pool.submit(self.prepare, chunk))
                if len(pending) >= WORKERS:
                    yield from self._absorb_next(pending)
            while pending:
                yield from self._absorb_next(pending)
        if self.aggregator is not None:
            groups = self.aggregator.finish()
            if groups is not None:
                yield self._aggregated_piece(groups)
        if self.presence is not None:
            missing = self.presence.missing()
            self.counts.unattributed_customers = missing["tracking_data"]
            self.customers_missing = {name: missing[name] for name in self.must_have}
            if self.must_have:
                self.counts.customers_missing = dict(self.customers_missing)

    def _absorb_next(self, pending: deque[Future[Prepared]]) -> Iterator[Piece]:
        piece = self.absorb(pending.popleft().result())
        self.buffer.flush()
        if piece is not None and len(piece.records):
            yield piece
        if self.on_chunk is not None:
            self.on_chunk(self.counts)

    def prepare(self, chunk: Chunk) -> Prepared:
        """Map, check and encode one chunk. Pure: touches no run state."""
        empty = pa.array([], pa.string())
        if not chunk.table.num_rows:
            nothing = RecordKeys.of(None, empty)
            none = judged_rows(chunk, np.zeros(0, np.int64), [])
            return Prepared(
                chunk, validate.Checked.empty(), empty, Totals(self.totals.fields), nothing, Verdict.none(0), none
            )
        checked = events.expand(self.mapping, chunk) if self.mapping.events else validate.check(self.mapping, chunk)
        if self.allowed:
            checked = validate.agreed(checked, self.allowed)
        # only a chunk that `where` empties can matter to the "filtered every row" warning
        where_values = _where_values(self.mapping, chunk) if self.mapping.where and checked.filtered.all() else {}
        rejected = self._rejected(chunk, checked)
        if self.aggregator is not None or not len(checked.rows):
            checked = validate.refuse_nul(checked, None)
            rejected = self._rejected(chunk, checked)
            nothing = RecordKeys.of(None, empty)
            totals = Totals(self.totals.fields)
            return Prepared(chunk, checked, empty, totals, nothing, Verdict.none(0), rejected, where_values)
        records, keys = self._encoded(checked)
        cleared = validate.refuse_nul(checked, records)
        if cleared is not checked:  # rare: a NUL in a value rejected its row
            checked = cleared
            rejected = self._rejected(chunk, checked)
            records, keys = self._encoded(checked)
        totals = Totals(self.totals.fields)
        totals.add_columns(checked.values)
        verdict = self._verdict(checked.values, records)
        return Prepared(chunk, checked, records, totals, keys, verdict, rejected, where_values)

    @staticmethod
    def _rejected(chunk: Chunk, checked: validate.Checked) -> JudgedRows:
        bad_rows = np.flatnonzero(checked.bad)
        return judged_rows(chunk, bad_rows, checked.errors.take(pa.array(bad_rows)).to_pylist())

    def _encoded(self, checked: validate.Checked) -> tuple[pa.Array, RecordKeys]:
        """The records' JSON text and what dedupe needs of them; a generated id opens its record."""
        if self.generate:  # the id hashes the record's content
            values = {name: col for name, col in checked.values.items() if name != "eventid"}
            records, ids, hashes = encode.records_with_id(values, self.kind)
            checked.values = {"eventid": ids, **values}
            return records, RecordKeys.of_content_ids(hashes)
        records = encode.records(checked.values)
        id_field = "eventid" if self.kind == "activities" else contract.ID_FIELD["customers"]
        return records, RecordKeys.of(checked.values.get(id_field), records)

    def _verdict(self, values: dict[str, pa.Array], records: pa.Array) -> Verdict:
        if self.ledger is None:
            return Verdict.none(len(records))
        id_field = "eventid" if self.kind == "activities" else contract.ID_FIELD["customers"]
        return self.ledger.judge(values.get(id_field), records, values.get("customerid"))

    def absorb(self, prepared: Prepared) -> Piece | None:
        """Count, reject and deduplicate a prepared chunk, in file order."""
        chunk, checked, counts = prepared.chunk, prepared.checked, self.counts
        counts.rows_read += chunk.table.num_rows + len(chunk.bad)
        for bad in chunk.bad:
            self.buffer.add(chunk.source, bad.line, bad.reason, bad.cells)
        if not chunk.table.num_rows:
            return None
        counts.rows_filtered += int(checked.filtered.sum())
        for column, seen in prepared.where_values.items():
            self.where_counts.setdefault(column, Counter()).update(seen)
        self.buffer.add_judged(chunk, prepared.rejected)
        if self.aggregator is not None:
            self.aggregator.add(checked.values)
            counts.rows_valid += len(checked.rows)
            return None
        if not len(checked.rows):
            return None
        return self._deduplicated(prepared)

    def _deduplicated(self, prepared: Prepared) -> Piece | None:
        """The records to send: not a repeat within the run (dedupe), not unchanged since
        Track360 acknowledged them (the ledger); conflicts and refused orphans are rejects."""
        chunk, values, rows, records = prepared.chunk, prepared.checked.values, prepared.checked.rows, prepared.records
        verdict, counts, count = prepared.verdict, self.counts, chunk.table.num_rows
        status = classify(self.dedupe, prepared.keys)
        later = status == Dedupe.LATER  # a customer's later record: sent, or the earlier one would win
        fresh = (status == Dedupe.KEEP) | later
        refusals = {
            "run": status == Dedupe.CONFLICT,
            "ledger": fresh & verdict.conflict,
            "orphan": fresh & verdict.orphan & self.reject_orphans,
        }
        refused = _marked(count, rows, refusals["run"] | refusals["ledger"] | refusals["orphan"])  # per chunk row
        if refused.any():
            self.buffer.add_rows(chunk, *self._refusal_reasons(values, rows, refusals, verdict))
        unchanged = fresh & verdict.unchanged & ~later & ~refused[rows]
        keep = fresh & ~unchanged & ~refused[rows]
        kept = _marked(count, rows, keep)
        same = _marked(count, rows, unchanged) & ~kept
        dup = _marked(count, rows, status == Dedupe.DUPLICATE) & ~kept & ~refused & ~same
        counts.rows_valid += int(np.count_nonzero(kept))
        counts.rows_unchanged += int(np.count_nonzero(same))
        counts.rows_duplicate += int(np.count_nonzero(dup))
        counts.records_unchanged += int(np.count_nonzero(unchanged))
        self._note_orphans(values, (keep & verdict.orphan) | refusals["orphan"])
        if self.ledger is not None and self.ledger.in_job and self.kind == "customers":
            self._customer_keys.append(verdict.ids[keep | unchanged])
        self.totals.merge(prepared.totals)
        if not keep.all():
            self.totals.add_columns({name: col.filter(pa.array(~keep)) for name, col in values.items()}, -1)
            mask = pa.array(keep)
            if self.kind == "customers":  # _piece() reads their values; activities' only their records
                values = {name: col.filter(mask) for name, col in values.items()}
            records, rows = records.filter(mask), rows[keep]
        if not len(rows):
            return None
        acks = (verdict.ids[keep], verdict.hashes[keep]) if self.ledger is not None else None
        return self._piece(records, values, chunk.source.index, chunk.lines[rows], Origin(chunk, rows), acks)

    def _refusal_reasons(
        self, values: dict[str, pa.Array], rows: np.ndarray, refusals: dict[str, np.ndarray], verdict: Verdict
    ) -> tuple[np.ndarray, list[str]]:
        """One reason per refused row: a conflict within the run, else with the ledger, else an orphan."""
        by_row: dict[int, str] = {}
        if refusals["run"].any():
            by_row.update(zip(*validate.conflict_reasons(values["eventid"], rows, refusals["run"]), strict=True))
        for record in np.flatnonzero(refusals["ledger"]).tolist():
            when = verdict.when[record].as_py()
            by_row.setdefault(int(rows[record]), f"eventid: already sent with other values on {when} {RESTART_HINT}")
        for record in np.flatnonzero(refusals["orphan"]).tolist():
            by_row.setdefault(int(rows[record]), ORPHAN_REASON)
        ordered = sorted(by_row)
        return np.array(ordered, dtype=np.int64), [by_row[row] for row in ordered]

    def _note_orphans(self, values: dict[str, pa.Array], orphan: np.ndarray) -> None:
        if orphan.any():
            self.counts.orphan_activities = (self.counts.orphan_activities or 0) + int(np.count_nonzero(orphan))
            if len(self.orphan_names) < ORPHANS_NAMED:
                names = orphan_names(values["customerid"], orphan, ORPHANS_NAMED)
                self.orphan_names += [name for name in names if name not in self.orphan_names]
                del self.orphan_names[ORPHANS_NAMED:]

    def customer_keys(self) -> np.ndarray:
        """Sorted ledger id hashes of the valid customers read (a job checks its activities' against them)."""
        if not self._customer_keys:
            return np.empty(0, dtype=np.uint64)
        return np.unique(np.concatenate(self._customer_keys))

    def _piece(
        self,
        records: pa.Array,
        values: dict[str, pa.Array],
        file: int,
        lines: np.ndarray,
        origin: Origin | None,
        acks: tuple[np.ndarray, np.ndarray] | None,
    ) -> Piece:
        count = len(records)
        self.counts.records_valid += count
        ids = np.empty(0, dtype=np.uint64)
        if self.presence is not None:
            ids = hash_strings(values["customerId"])
            self.presence.add(ids, values)
        if self.kind == "activities" and "eventid" not in values:
            self.records_without_id += count
        piece = Piece(records, np.full(count, file, dtype=np.int32), lines, ids, origin)
        if acks is not None:
            piece.ledger_ids, piece.ledger_hashes = acks
        return piece

    def _aggregated_piece(self, groups: Groups) -> Piece:
        """Aggregated records have no single source row."""
        values = groups.values
        if self.generate:
            group_ids = pa.array([f"{self.kind}|{key}" for key in groups.keys])
            values = {"eventid": encode.hash_ids(group_ids), **values}
        records = encode.records(values)
        acks = None
        if self.ledger is not None:  # a group acknowledged before with the same totals is not sent again
            verdict = self._verdict(values, records)
            if verdict.unchanged.any():
                self.counts.records_unchanged += int(np.count_nonzero(verdict.unchanged))
                mask = pa.array(~verdict.unchanged)
                values = {name: col.filter(mask) for name, col in values.items()}
                records = records.filter(mask)
                verdict = Verdict.none(0) if not len(records) else verdict
            acks = (verdict.ids[~verdict.unchanged], verdict.hashes[~verdict.unchanged]) if len(records) else None
        self.totals.add_columns(values)
        count = len(records)
        return self._piece(records, values, -1, np.zeros(count, dtype=np.int64), None, acks)


RESTART_HINT = "(--restart sends it again)"
ORPHAN_REASON = "customerid: customer never sent; register it first"
ORPHANS_NAMED = 5
WHERE_VALUES_KEPT = 1_000  # per column and chunk: a where column is a status, not an id


def _where_values(mapping: Mapping, chunk: Chunk) -> dict[str, dict[str, int]]:
    """How often each value of a where column occurs in the rows `where` filters out."""
    filtered = pa.array(transform.where_mask(mapping, chunk))
    out: dict[str, dict[str, int]] = {}
    for column in mapping.where:
        counts = pc.value_counts(pc.fill_null(transform.cells(chunk, column), "").filter(filtered))
        pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        out[column] = dict(sorted(pairs, key=lambda pair: -pair[1])[:WHERE_VALUES_KEPT])
    return out


def _marked(count: int, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per chunk row (of count): whether any of its records is in mask (rows[i] is record i's row)."""
    out = np.zeros(count, dtype=bool)
    out[rows[mask]] = True
    return out


def _head(chunk: Chunk, left: int) -> Chunk:
    """The first `left` data rows of a chunk (bad rows count as rows, in line order)."""
    total = chunk.table.num_rows + len(chunk.bad)
    if total <= left:
        return chunk
    cut_line = np.sort(np.concatenate([chunk.lines, [bad.line for bad in chunk.bad]]))[max(left, 1) - 1]
    if left <= 0:
        cut_line = -1
    keep = chunk.lines <= cut_line
    return chunk.select(keep, [bad for bad in chunk.bad if bad.line <= cut_line])
