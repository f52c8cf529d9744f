"""Cut the stream of records into request bodies, by record count and by bytes.

Batches depend only on the sequence of records, never on how the input was chunked,
so a rerun or `replay` rebuilds exactly the same bodies (same SHA-256).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from t360cli.encode import buffer_of

if TYPE_CHECKING:
    from t360cli.readers import Chunk

Ints = npt.NDArray[np.integer]  # per record: file index, line, byte offset or row position


@dataclass
class Origin:
    """Where a batch's records came from, to write rejects the server causes."""

    chunk: Chunk
    pos: Ints  # row position in the chunk, per record


@dataclass
class Batch:
    """One request body. Its bytes are joined only when asked for: a dry run never does."""

    index: int
    parts: list[memoryview]  # runs of records, each record followed by ","
    n: int
    starts: Ints  # byte offset of each record in body, plus the end
    files: Ints  # source file index per record
    lines: Ints  # source line per record
    ids: frozenset[int] = frozenset()  # customers: hashed customerIds (delivery order)
    origins: list[tuple[int, Origin]] = field(default_factory=list)  # (first record, origin)
    ledger_ids: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))  # per record or empty
    ledger_hashes: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))

    @cached_property
    def body(self) -> bytes:
        """The JSON array: "[" + records + "]", the last record's comma dropped."""
        return b"".join([b"[", *self.parts[:-1], self.parts[-1][:-1], b"]"])

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def part(self, first: int, end: int) -> bytes:
        """The JSON array body of records first..end-1."""
        if first == 0 and end == self.n:
            return self.body
        return b"[" + self.body[self.starts[first] : self.starts[end] - 1] + b"]"

    def row_spans(self) -> list[list[int]]:
        """[[file, first line, last line], ...] for the progress log."""
        spans: list[list[int]] = []
        for file in np.unique(self.files):
            lines = self.lines[self.files == file]
            spans.append([int(file), int(lines.min()), int(lines.max())])
        return spans

    def origin_of(self, record: int) -> tuple[Chunk, int]:
        """(chunk, row position) of one record."""
        for first, origin in reversed(self.origins):
            if record >= first:
                return origin.chunk, int(origin.pos[record - first])
        raise IndexError(record)


@dataclass
class Piece:
    """A run of encoded records from one chunk, with their provenance."""

    records: pa.Array  # JSON text per record, each followed by ","
    files: Ints
    lines: Ints
    ids: npt.NDArray[np.uint64]  # per record (customers) or empty
    origin: Origin | None = None
    ledger_ids: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))  # per record or empty
    ledger_hashes: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))


class Batcher:
    """Accumulates pieces; yields full batches; `flush()` yields the last one."""

    def __init__(self, batch_size: int, max_bytes: int) -> None:
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.index = 0
        self._reset()

    def _reset(self) -> None:
        self.parts: list[memoryview] = []
        self.sizes: list[npt.NDArray[np.int64]] = []
        self.meta: list[tuple[Ints, Ints, npt.NDArray[np.uint64]]] = []
        self.acks: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]] = []
        self.origins: list[tuple[int, Origin]] = []
        self.n = 0
        self.nbytes = 2  # the brackets

    def add(self, piece: Piece) -> Iterator[Batch]:
        offs, data = buffer_of(piece.records)
        sizes = np.diff(offs).astype(np.int64)
        cum = np.concatenate([[0], np.cumsum(sizes)])
        pos, total = 0, len(sizes)
        while pos < total:
            room = self.max_bytes - self.nbytes + 1  # the last comma is dropped
            fit = int(np.searchsorted(cum, cum[pos] + room, side="right")) - 1 - pos
            k = min(self.batch_size - self.n, fit, total - pos)
            if k <= 0 and self.n == 0:
                k = 1  # a record larger than max_bytes travels alone
            if k <= 0:
                yield self._emit()
                continue
            self._take(piece, data, offs, sizes, pos, k)
            pos += k
            if self.n >= self.batch_size or (pos < total and self.nbytes + sizes[pos] - 1 > self.max_bytes):
                yield self._emit()

    def _take(
        self, piece: Piece, data: memoryview, offs: Ints, sizes: npt.NDArray[np.int64], pos: int, count: int
    ) -> None:
        """Add the piece's records pos..pos+count-1 to the batch being built."""
        end = pos + count
        self.parts.append(data[offs[pos] : offs[end]])  # a view: the chunk stays alive anyway
        self.sizes.append(sizes[pos:end])
        ids = piece.ids[pos:end] if len(piece.ids) else piece.ids
        self.meta.append((piece.files[pos:end], piece.lines[pos:end], ids))
        if len(piece.ledger_ids):
            self.acks.append((piece.ledger_ids[pos:end], piece.ledger_hashes[pos:end]))
        if piece.origin is not None:
            self.origins.append((self.n, Origin(piece.origin.chunk, piece.origin.pos[pos:end])))
        self.n += count
        self.nbytes += int(sizes[pos:end].sum())

    def _emit(self) -> Batch:
        starts = np.concatenate([[1], 1 + np.cumsum(np.concatenate(self.sizes))])
        files = np.concatenate([meta[0] for meta in self.meta])
        lines = np.concatenate([meta[1] for meta in self.meta])
        ids = np.concatenate([meta[2] for meta in self.meta])
        batch = Batch(
            self.index,
            self.parts,
            self.n,
            starts,
            files,
            lines,
            frozenset(ids.tolist()),
            self.origins,
        )
        if self.acks:  # every piece of a run carries them, or none does
            batch.ledger_ids = np.concatenate([ack[0] for ack in self.acks])
            batch.ledger_hashes = np.concatenate([ack[1] for ack in self.acks])
        self.index += 1
        self._reset()
        return batch

    def flush(self) -> Iterator[Batch]:
        if self.n:
            yield self._emit()
