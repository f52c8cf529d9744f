"""Read -> map -> validate -> encode, chunk by chunk: the part every command shares.

`Pipeline.pieces()` yields the encoded valid records of each chunk while it counts
every row into exactly one bucket and writes the rejects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from t360cli import contract, encode, events, readers, transform
from t360cli.aggregate import Aggregator
from t360cli.batching import Origin, Piece
from t360cli.mapping import Mapping, check_columns
from t360cli.readers import Chunk, Source
from t360cli.report import RejectsWriter
from t360cli.tally import Counts, Totals
from t360cli.validate import Dedupe, HashIndex, KeyOrder, hash_strings

WORKERS = 2  # these machines have 2 cores; the floor leaves one idle
CHUNK_ROWS = 12_288  # peak memory grows with the chunk; speed barely does past ~16k rows


@dataclass
class Inputs:
    paths: list[Path]
    headers: list[list[str]]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for h in self.headers for c in h))


def open_inputs(m: Mapping, patterns: list[str]) -> Inputs:
    """Resolve the files and check the mapping's columns against each header."""
    paths = readers.resolve_inputs(patterns)
    headers = []
    for path in paths:
        header = readers.read_header(path, m.source)
        check_columns(m, str(path), header)
        headers.append(header)
    return Inputs(paths, headers)


def decimal_fields(m: Mapping) -> list[str]:
    specs = list(m.fields) + [s for ev in m.events or [] for s in ev]
    names = [s.target for s in specs if s.type == "decimal" or s.target == "Value"]
    if m.aggregate is not None:
        names += list(m.aggregate.sum)
    return list(dict.fromkeys(names))


@dataclass
class Prepared:
    """A chunk after the pure part of the work (see Pipeline.prepare)."""

    chunk: Chunk
    errors: pa.Array | None = None
    filtered: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    values: dict[str, pa.Array] = field(default_factory=dict)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recs: pa.Array | None = None
    totals: Totals | None = None  # control totals of all its valid records (before dedupe)
    keyed: np.ndarray | None = None  # records that carry a dedupe key
    key_hash: np.ndarray | None = None
    content_hash: np.ndarray | None = None
    key_order: KeyOrder | None = None


@dataclass
class Pipeline:
    mapping: Mapping
    inputs: Inputs
    rejects: RejectsWriter | None
    limit: int | None = None
    chunk_rows: int = CHUNK_ROWS
    counts: Counts = field(default_factory=Counts)
    totals: Totals = field(init=False)
    on_chunk: object = None  # callable(counts) after each chunk, for progress

    def __post_init__(self) -> None:
        self.kind = self.mapping.kind
        self.dedupe = Dedupe(self.kind)
        self.totals = Totals(decimal_fields(self.mapping) if self.kind == "activities" else [])
        self.tracking = HashIndex() if self.kind == "customers" else None
        if self.kind == "customers":
            self.counts.unattributed_customers = 0
        self._held: list[tuple[int, int, str, str, dict[str, object]]] = []
        self.generate = any(s.generate for s in self.mapping.fields)
        self.aggregator = Aggregator(self.mapping) if self.mapping.aggregate is not None else None

    # -- rows -----------------------------------------------------------------
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
        """Chunks are prepared (mapped, validated, encoded: pure work, mostly Arrow kernels
        that release the GIL) two at a time, and absorbed (counted, deduplicated, rejected)
        one by one in file order."""
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="t360-prepare") as pool:
            pending: deque[Future[Prepared]] = deque()
            for chunk in self.chunks():
                pending.append(pool.submit(self.prepare, chunk))
                if len(pending) >= WORKERS:
                    yield from self._absorb_next(pending)
            while pending:
                yield from self._absorb_next(pending)
        if self.aggregator is not None:
            yield from self.aggregator.finish(self)
        self.finish_counts()

    def _absorb_next(self, pending: deque[Future[Prepared]]) -> Iterator[Piece]:
        piece = self.absorb(pending.popleft().result())
        self.flush_rejects()
        if piece is not None and len(piece.records):
            yield piece
        if callable(self.on_chunk):
            self.on_chunk(self.counts)

    def reject(self, source: Source, line: int, reason: str, cells: dict[str, object]) -> None:
        self.counts.rows_rejected += 1
        if self.rejects is not None:
            self._held.append((source.index, line, source.name, reason, cells))

    def flush_rejects(self) -> None:
        """Write the held rejects in file and line order."""
        if self.rejects is not None:
            for _, line, name, reason, cells in sorted(self._held, key=lambda r: (r[0], r[1])):
                self.rejects.write(name, line, reason, cells)
        self._held = []

    def reject_rows(self, chunk: Chunk, rows: np.ndarray, reasons: list[str]) -> None:
        if not len(rows):
            return
        cells = chunk.table.take(pa.array(rows)).to_pylist()
        for row, reason, cell in zip(rows, reasons, cells, strict=True):
            self.reject(chunk.source, int(chunk.lines[row]), reason, cell)

    def prepare(self, chunk: Chunk) -> Prepared:
        """Map, validate and encode one chunk. Pure: touches no run state."""
        p = Prepared(chunk)
        if not chunk.table.num_rows:
            return p
        if self.mapping.events:
            ex = events.expand(self.mapping, chunk)
            p.errors, p.filtered, values, rows = ex.errors, ex.filtered, ex.values, ex.rows
        else:
            mapped = transform.apply(self.mapping, chunk)
            p.errors, p.filtered = mapped.errors, mapped.filtered
        p.bad = p.errors.is_valid().to_numpy(zero_copy_only=False) & ~p.filtered
        if not self.mapping.events:
            rows = np.flatnonzero(~p.bad & ~p.filtered)
            values = {k: v.take(pa.array(rows)) for k, v in mapped.values.items()}
        p.values, p.rows = values, rows
        if self.aggregator is None and len(rows):
            self._encode(p)
            p.totals = Totals(self.totals.fields)
            p.totals.add_columns(p.values)
        return p

    def _encode(self, p: Prepared) -> None:
        """Record texts, and the hashes dedupe compares."""
        n = len(p.rows)
        if self.generate:  # the id hashes the record's content; it opens the record
            p.recs, ids, h = encode.records_with_id(p.values, self.kind)
            p.values = {"eventid": ids, **p.values}
            p.keyed, p.key_hash, p.content_hash = np.ones(n, dtype=bool), h, h  # same id <=> same content
            p.key_order = KeyOrder.of(h)
            return
        p.recs = encode.records(p.values)
        key = "eventid" if self.kind == "activities" else contract.ID_FIELD["customers"]
        if key in p.values:
            p.keyed = p.values[key].is_valid().to_numpy(zero_copy_only=False)
            take = pa.array(np.flatnonzero(p.keyed))
            p.key_hash = hash_strings(p.values[key].take(take))
            p.content_hash = hash_strings(p.recs.take(take))
            p.key_order = KeyOrder.of(p.key_hash)

    def absorb(self, p: Prepared) -> Piece | None:
        """Count, reject and deduplicate a prepared chunk, in file order."""
        chunk, c = p.chunk, self.counts
        c.rows_read += chunk.table.num_rows + len(chunk.bad)
        for bad in chunk.bad:
            self.reject(chunk.source, bad.line, bad.reason, bad.cells)
        if not chunk.table.num_rows:
            return None
        c.rows_filtered += int(p.filtered.sum())
        bad_rows = np.flatnonzero(p.bad)
        self.reject_rows(chunk, bad_rows, p.errors.take(pa.array(bad_rows)).to_pylist())
        if self.aggregator is not None:
            self.aggregator.add(p.values)
            c.rows_valid += len(p.rows)
            return None
        return self.encode_records(chunk, p)

    def encode_records(self, chunk: Chunk, p: Prepared) -> Piece | None:
        """Dedupe encoded records; rows[i] is the chunk row of record i."""
        values, rows, recs = p.values, p.rows, p.recs
        if not len(rows) or recs is None:
            return None
        status = np.zeros(len(rows), dtype=np.int8)
        if p.keyed is not None:
            status[p.keyed] = self.dedupe.classify_hashes(p.key_hash, p.content_hash, p.key_order)
        n = chunk.table.num_rows
        conflict = _marked(n, rows, status == Dedupe.CONFLICT)  # per chunk row, like kept and dup
        conflict_rows = np.flatnonzero(conflict)
        if len(conflict_rows):
            ids = values["eventid"].filter(pa.array(status == Dedupe.CONFLICT)).to_pylist()
            first: dict[int, str] = {}
            for r, i in zip(rows[status == Dedupe.CONFLICT].tolist(), ids, strict=True):
                first.setdefault(r, i)
            reasons = [
                f"eventid: '{first[r]}' was already sent with different values (conflict)" for r in conflict_rows
            ]
            self.reject_rows(chunk, conflict_rows, reasons)
        keep = (status == Dedupe.KEEP) & ~conflict[rows]
        kept = _marked(n, rows, keep)
        self.counts.rows_valid += int(np.count_nonzero(kept))
        dup = _marked(n, rows, status == Dedupe.DUPLICATE)
        self.counts.rows_duplicate += int(np.count_nonzero(dup & ~kept & ~conflict))
        if p.totals is not None:
            self.totals.merge(p.totals)
        if not keep.all():
            self.totals.add_columns({k: v.filter(pa.array(~keep)) for k, v in values.items()}, -1)
            mask = pa.array(keep)
            if self.kind == "customers":  # piece() reads their values; activities' only their records
                values = {k: v.filter(mask) for k, v in values.items()}
            recs, rows = recs.filter(mask), rows[keep]
        return self.piece(chunk, rows, values, recs, totals=False) if len(rows) else None

    def piece(
        self, chunk: Chunk | None, rows: np.ndarray, values: dict[str, pa.Array], recs: pa.Array, totals: bool = True
    ) -> Piece:
        n = len(recs)
        self.counts.records_valid += n
        if totals:
            self.totals.add_columns(values)
        ids = np.empty(0, dtype=np.uint64)
        if self.kind == "customers":
            ids = hash_strings(values["customerId"])
            tracked = values.get("tracking_data", pa.nulls(n, pa.string())).is_valid()
            self.tracking.put(ids, tracked.to_numpy(zero_copy_only=False).astype(np.uint64))
        if chunk is None:  # aggregated records have no single source row
            return Piece(recs, np.full(n, -1, dtype=np.int32), np.zeros(n, dtype=np.int64), ids)
        files = np.full(n, chunk.source.index, dtype=np.int32)
        return Piece(recs, files, chunk.lines[rows], ids, Origin(chunk, rows))

    def aggregated_piece(self, values: dict[str, pa.Array], group_keys: list[str]) -> Piece:
        if self.generate:
            values = {"eventid": encode.hash_ids(pa.array([f"{self.kind}|{k}" for k in group_keys])), **values}
        return self.piece(None, np.zeros(0, dtype=np.int64), values, encode.records(values))

    def finish_counts(self) -> None:
        if self.tracking is not None:
            self.tracking.put(np.empty(0, np.uint64), np.empty(0, np.uint64))
            merged = [v for _, v in self.tracking.runs]
            keys = np.concatenate([k for k, _ in self.tracking.runs]) if merged else np.empty(0, np.uint64)
            found, latest = self.tracking.lookup(np.unique(keys))
            self.counts.unattributed_customers = int((latest[found] == 0).sum())


def _marked(n: int, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per chunk row (of n): whether any of its records is in mask (rows[i] is record i's row)."""
    out = np.zeros(n, dtype=bool)
    out[rows[mask]] = True
    return out


def _head(chunk: Chunk, left: int) -> Chunk:
    """The first `left` data rows of a chunk (bad rows count as rows, in line order)."""
    total = chunk.table.num_rows + len(chunk.bad)
    if total <= left:
        return chunk
    cut_line = np.sort(np.concatenate([chunk.lines, [b.line for b in chunk.bad]]))[max(left, 1) - 1]
    if left <= 0:
        cut_line = -1
    keep = chunk.lines <= cut_line
    idx = pa.array(np.flatnonzero(keep))
    return Chunk(
        chunk.source,
        chunk.columns,
        chunk.table.take(idx),
        chunk.lines[keep],
        {k: v[keep] for k, v in chunk.numeric.items()},
        [b for b in chunk.bad if b.line <= cut_line],
    )
