"""What Track360 acknowledged across runs (SPEC 13): looked up per chunk, written after the log.

Per target (`Target`: the base URL's host and port and a SHA-256 prefix of the API key,
never the key) and per kind, the ledger maps an id (`customerId` or `eventid`) to the
hash of the record as acknowledged and the moment of the acknowledgement (UTC):

- ids and records are kept as 64-bit XXH3 hashes (`id_hashes`, `record_hashes`), stable
  across processes and machines. 10M entries take ~320 MiB on disk (~33 bytes each) and
  in memory only SQLite's page cache (4 MiB per connection). Two different ids share a
  hash with probability ~3e-6 in a 10M-id ledger (an activity would then be refused as
  "already sent with other values"); a changed record goes unnoticed with odds 2^-64.
- `lookup` answers a whole chunk at once (batched `IN` queries over its unique ids, in
  id order), never one query per row: for each row, known, same record, and when. A pass
  over 1M ids takes ~2.3 s against 10M entries (bench/ledger.py), nearly all of it in
  SQLite's b-tree seeks, which release the GIL: worker threads overlap them.
- `record` writes in one transaction. A repeated id is overwritten (customers: the
  latest record wins; an activity reaches `record` again with another record only with
  `--restart`, and then the new one wins too). A transaction of 500 records into a 10M
  ledger takes ~10-15 ms (25 us a record), one of 50,000 ~13 us a record: a caller may
  gather several acknowledged batches and record them together (still after the log).

Contract, never ahead of the server: call `record` only after the progress log has
recorded (flushed and fsynced) the acknowledgement of the batch. A crash between the two
leaves the ledger behind the log (a later run sends those records once more), never
ahead; a power cut can lose the last commits (WAL with `synchronous=NORMAL`), which also
only leaves it behind.

A resumed run sees the ledger as it was when its progress log began: pass that moment
as `as_of`, and entries acknowledged after it are ignored (as if unknown). An entry the
same log's first attempt overwrote therefore reads as unknown, which gives the same
decision as before (it was sent); a time truncated to the second is safe (it hides only
entries acknowledged in that second, which are then sent again).

`validate` opens the ledger with `read_only=True`: nothing is ever written or created (a
missing file is an empty ledger). Every sqlite3 error becomes a `LedgerError` naming the
file. Lookups may run in worker threads (each thread gets its own read connection);
writes are serialised. Close the ledger after the threads are done with it.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli import ledger_store as store
from t360cli.errors import UsageError
from t360cli.files import refuse_symlink
from t360cli.ledger_store import BUSY_TIMEOUT_S, PROBE, LedgerError, seam, transaction
from t360cli.urls import mask_url

__all__ = [
    "FILE_NAME",
    "KINDS",
    "Ledger",
    "LedgerError",
    "LedgerStats",
    "Seen",
    "Target",
    "id_hashes",
    "record_hashes",
    "when_text",
]

KINDS = ("customers", "activities")
FILE_NAME = "ledger.sqlite"
WRITE_SLICE = 16_384  # rows handed to SQLite at once inside one transaction
KEY_ID_HEX = 16  # hex digits of SHA-256(api key) that name a target


@dataclass(frozen=True)
class Target:
    """Where records were acknowledged: host, port and the key's SHA-256 prefix."""

    host: str
    port: int
    key_id: str

    @classmethod
    def of(cls, base_url: str, api_key: str) -> Target:
        parts = urlsplit(base_url)
        try:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise UsageError(f"cannot tell the ledger's target from the base URL '{mask_url(base_url)}'.")
        return cls(parts.hostname.lower(), port, hashlib.sha256(api_key.encode()).hexdigest()[:KEY_ID_HEX])

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (key sha256:{self.key_id})"


class Seen(NamedTuple):
    """What the ledger says of each row of a chunk."""

    known: np.ndarray  # bool: the id was acknowledged (as of the view)
    same: np.ndarray  # bool: ... with the identical record
    when: np.ndarray  # datetime64[ms], UTC, of that acknowledgement; NaT where not known


@dataclass(frozen=True)
class LedgerStats:
    target: Target
    kind: str
    count: int
    oldest: datetime | None  # UTC
    newest: datetime | None


def id_hashes(ids: pa.Array) -> np.ndarray:
    """uint64 XXH3 of each id's UTF-8 text (a null hashes like "")."""
    import xxhash

    texts = ids.fill_null("").cast(pa.binary()).to_pylist()
    return np.fromiter(map(xxhash.xxh3_64_intdigest, texts), dtype=np.uint64, count=len(texts))


def record_hashes(records: pa.Array) -> np.ndarray:
    """uint64 XXH3 of each record's JSON text as `encode.records` writes it, without the
    trailing comma (so a record hashes the same with or without it). ~10M/s here."""
    return id_hashes(pc.utf8_rtrim(records.cast(pa.string()), ","))


def when_text(when: np.ndarray) -> pa.Array:
    """`YYYY-MM-DD HH:MM UTC` of each moment (null for NaT), for reject reasons."""
    text = pa.array(np.datetime_as_string(when.astype("datetime64[m]"), unit="m"), pa.string())
    out = pc.binary_join_element_wise(pc.replace_substring(text, "T", " "), " UTC", "")
    return pc.if_else(pa.array(np.isnat(when)), pa.scalar(None, pa.string()), out)


def _ms(moment: datetime | date) -> int:
    """Milliseconds since the epoch; a date is its midnight, a naive time is UTC."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(0))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _utc(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown ledger kind {kind!r}: use customers or activities.")
    return kind


class Ledger:
    """The ledger file of one target. `Ledger.open(state_dir / FILE_NAME, target)`."""

    def __init__(self, path: Path, target: Target, read_only: bool, busy_timeout_s: float) -> None:
        self.path, self.target, self.read_only, self.busy_timeout_s = Path(path), target, read_only, busy_timeout_s
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        self._empty = read_only and not self.path.exists()

    @classmethod
    def open(
        cls,
        path: Path,
        target: Target,
        *,
        read_only: bool = False,
        state_dir: Path | None = None,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> Ledger:
        """Open (read-write: create) the ledger at `path`; a symlink there is refused."""
        refuse_symlink(Path(path), "ledger", state_dir)
        ledger = cls(path, target, read_only, busy_timeout_s)
        if read_only:
            ledger._reader()  # a file that is not a ledger fails here, not at the first chunk
        else:
            ledger._writer = store.connect(ledger.path, False, busy_timeout_s)
        return ledger

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for con in self._readers:
                con.close()
            self._readers.clear()
            if self._writer is not None:
                store.close_writer(self._writer)
                self._writer = None

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection (None: a missing file opened read-only)."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None and not self._empty:
            con = store.connect(self.path, True, self.busy_timeout_s)
            self._local.con = con
            with self._lock:
                self._readers.append(con)
        return con

    def _writable(self) -> sqlite3.Connection:
        if self._writer is None:
            raise LedgerError(f"the ledger {self.path} is open read-only (or closed): nothing can be recorded.")
        return self._writer

    def _table(self, con: sqlite3.Connection, kind: str) -> str | None:
        return store.table_of(con, self.target.host, self.target.port, self.target.key_id, _kind(kind))

    def holds_any(self, kind: str, as_of: datetime | None = None) -> bool:
        """Whether any entry of this target and kind was acknowledged by `as_of`: a run whose
        view is empty (a first backfill) need not look anything up."""
        con = self._reader()
        if con is None:
            return False
        with seam(self.path):
            table = self._table(con, kind)
            if table is None:
                return False
            bound = _ms(as_of) if as_of is not None else None
            sql = f"SELECT 1 FROM {table}" + (" WHERE at <= ?" if bound is not None else "") + " LIMIT 1"
            return con.execute(sql, () if bound is None else (bound,)).fetchone() is not None

    def lookup(self, kind: str, ids: pa.Array, hashes: np.ndarray, as_of: datetime | None = None) -> Seen:
        """Known / same record / when, for each row: `ids` as text, `hashes` from record_hashes."""
        return self.lookup_hashed(kind, id_hashes(ids), hashes, as_of)

    def lookup_hashed(self, kind: str, ids: np.ndarray, hashes: np.ndarray, as_of: datetime | None = None) -> Seen:
        """`lookup` with the ids already hashed (id_hashes); entries acknowledged after `as_of` are ignored."""
        n = len(ids)
        seen = Seen(np.zeros(n, bool), np.zeros(n, bool), np.full(n, np.datetime64("NaT"), "datetime64[ms]"))
        con = self._reader()
        if con is None or not n:
            return seen
        keys = np.asarray(ids, dtype=np.uint64).view(np.int64)
        with seam(self.path):
            table = self._table(con, kind)
            if table is None:
                return seen
            rows = store.select(con, table, np.unique(keys))
        if as_of is not None:
            rows = rows[rows[:, 2] <= _ms(as_of)]
        if not len(rows):
            return seen
        rows = rows[np.argsort(rows[:, 0])]
        pos = np.minimum(np.searchsorted(rows[:, 0], keys), len(rows) - 1)
        hit = rows[pos, 0] == keys
        seen.known[:] = hit
        seen.same[:] = hit & (rows[pos, 1] == np.asarray(hashes, dtype=np.uint64).view(np.int64))
        seen.when[hit] = rows[pos[hit], 2].astype("datetime64[ms]")
        return seen

    def record(self, kind: str, ids: pa.Array, hashes: np.ndarray, when: datetime | None = None) -> int:
        """Write one acknowledged batch (`when`: its acknowledgement, default now) in one
        transaction; of a repeated id the last row wins. Returns the rows written."""
        return self.record_hashed(kind, id_hashes(ids), hashes, when)

    def record_hashed(self, kind: str, ids: np.ndarray, hashes: np.ndarray, when: datetime | None = None) -> int:
        """`record` with the ids already hashed (id_hashes)."""
        writer, kind = self._writable(), _kind(kind)
        if len(ids) != len(hashes):
            raise ValueError(f"{len(ids)} ids but {len(hashes)} record hashes")
        if not len(ids):
            return 0
        keys = np.asarray(ids, dtype=np.uint64).view(np.int64)
        order = np.argsort(keys, kind="stable")  # b-tree order; a repeated id keeps its order
        values = np.asarray(hashes, dtype=np.uint64).view(np.int64)[order]
        at = _ms(when or datetime.now(UTC))
        keys = keys[order]
        with self._lock, seam(self.path), transaction(writer):  # one transaction: each page written once
            table = store.create_table(writer, self.target.host, self.target.port, self.target.key_id, kind)
            for lo in range(0, len(keys), WRITE_SLICE):  # Python's rows made a slice at a time
                hi = lo + WRITE_SLICE
                store.upsert(writer, table, zip(keys[lo:hi].tolist(), values[lo:hi].tolist(), itertools.repeat(at)))
        return len(keys)

    def stats(self, all_targets: bool = False) -> list[LedgerStats]:
        """Count, oldest and newest per kind: this target's two kinds (0 when empty), or
        with `all_targets` every target and kind the file holds."""
        con = self._reader()
        held = []
        if con is not None:
            with seam(self.path):
                for table, host, port, key_id, kind in store.tables(con):
                    target = Target(host, port, key_id)
                    if all_targets or target == self.target:
                        count, oldest, newest = store.summary(con, table)
                        held.append(LedgerStats(target, kind, count, _utc(oldest), _utc(newest)))
        if not all_targets:
            kinds = {s.kind for s in held}
            held += [LedgerStats(self.target, k, 0, None, None) for k in KINDS if k not in kinds]
            held.sort(key=lambda s: KINDS.index(s.kind))
        return held

    def forget(
        self,
        kind: str | None = None,
        ids: Sequence[str] | pa.Array | None = None,
        before: date | datetime | None = None,
        all: bool = False,
    ) -> int:
        """Remove this target's entries; how many were removed. `kind` alone: all of that
        kind; with `ids`: those ids; `before` (a date: its midnight UTC): those acknowledged
        earlier (combined with the others); `all`: everything of this target."""
        writer = self._writable()
        if ids is not None and kind is None:
            raise UsageError("--id needs --kind (customers or activities).")
        if all and (ids is not None or before is not None):
            raise UsageError("--all removes everything: leave out --id and --before.")
        if not (all or kind or before is not None):
            raise UsageError("say what to forget: --kind K (with --id ID), --before YYYY-MM-DD, or --all.")
        if ids is not None and not isinstance(ids, pa.Array):
            ids = pa.array(list(ids), pa.string())
        keys = None if ids is None else id_hashes(ids)
        removed = 0
        with self._lock, seam(self.path), transaction(writer):  # auto_vacuum: the file shrinks at commit
            for k in [_kind(kind)] if kind else KINDS:
                table = self._table(writer, k)
                if table is not None:
                    removed += self._delete(writer, table, keys, before)
        return removed

    @staticmethod
    def _delete(con: sqlite3.Connection, table: str, keys: np.ndarray | None, before: date | datetime | None) -> int:
        if keys is None and before is None:
            return store.drop(con, table)
        if keys is None:
            assert before is not None
            return con.execute(f"DELETE FROM {table} WHERE at < ?", (_ms(before),)).rowcount
        unique = np.unique(keys.view(np.int64)).tolist()
        cond, limit = ("", []) if before is None else (" AND at < ?", [_ms(before)])
        removed = 0
        for lo in range(0, len(unique), PROBE):
            part = unique[lo : lo + PROBE]
            sql = f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(part))}){cond}"
            removed += con.execute(sql, part + limit).rowcount
        return removed
