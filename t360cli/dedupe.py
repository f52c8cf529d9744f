"""The run's id index: duplicate and conflict detection across a run.

Duplicates (SPEC 5 and 9):
- activities: the same `eventid` again with an identical record is skipped as a
  duplicate; with a different record it is rejected as a conflict (the first wins).
- customers: the same `customerId` again with a record identical to the latest one
  is skipped as a duplicate; a different record is kept and delivered after the
  earlier one (later values win at Track360; run.py keeps the order).

Ids and record contents are remembered as 64-bit hashes in sorted numpy runs behind a
Bloom filter, so a million ids cost ~18 MB instead of ~100 MB for a Python dict (~10 MB
when the id is itself a hash of the content, as generated ids are).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

EMPTY_U64 = np.empty(0, dtype=np.uint64)
# Runs stop merging at this size: a merge's temporaries stay a few MB, and a lookup
# probes one more sorted run per quarter million ids.
MAX_RUN = 1 << 18


def hash_strings(values: pa.Array) -> np.ndarray:
    """64-bit hash of each string (nulls hash like "").

    Python's own string hash: 6x faster than pandas' SipHash here, and an index only
    lives as long as one run (one process), so its per-process salt does not matter.
    """
    texts = values.fill_null("").to_pylist()
    return np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts)).view(np.uint64)


class HashIndex:
    """uint64 key -> uint64 value, newest write wins; log-structured sorted runs."""

    def __init__(self, filter_bits: int = 1 << 24) -> None:
        assert filter_bits >= 64 and filter_bits & (filter_bits - 1) == 0, "a power of two"
        self.runs: list[tuple[np.ndarray, np.ndarray | None]] = []  # (keys, values or None: the keys)
        self._filter(filter_bits)  # 2 MB to start; grows to stay under 1/16 full
        self.count = 0

    def _filter(self, bits: int) -> None:
        """An empty blocked Bloom filter: each key sets 4 bits of one 64-bit word. At 16
        bits per key ~0.5% of absent keys get through (with one bit per key: 6%)."""
        self.filter_bits = bits
        self.words = np.zeros(bits // 64, dtype=np.uint64)
        self._shift = np.uint64(64 - (len(self.words).bit_length() - 1))

    def _slots(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(word, mask) of each key: the word from its top bits, so sorted keys give
        sorted words; the mask from four 6-bit fields of its low bits."""
        word = (keys >> self._shift).astype(np.int64) if self._shift < 64 else np.zeros(len(keys), np.int64)
        mask = np.zeros(len(keys), dtype=np.uint64)
        for j in range(4):
            mask |= np.uint64(1) << ((keys >> np.uint64(6 * j)) & np.uint64(63))
        return word, mask

    def _mark(self, sorted_keys: np.ndarray) -> None:
        """Set the filter bits of sorted keys (one OR per word, no ufunc.at)."""
        word, mask = self._slots(sorted_keys)
        first = np.flatnonzero(np.concatenate([[True], word[1:] != word[:-1]]))
        self.words[word[first]] |= np.bitwise_or.reduceat(mask, first)

    def _grow_filter(self) -> None:
        """4x the bits, refilled from the runs."""
        self._filter(self.filter_bits * 4)
        for run_keys, _ in self.runs:
            self._mark(run_keys)

    def maybe(self, keys: np.ndarray) -> np.ndarray:
        """False for keys certainly never put."""
        word, mask = self._slots(keys)
        hit: np.ndarray = (self.words[word] & mask) == mask
        return hit

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self.runs)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, values) for each key, newest run first."""
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros(len(keys), dtype=np.uint64)
        candidates = self.maybe(keys)
        for run_keys, run_vals in reversed(self.runs):
            todo = np.flatnonzero(candidates & ~found)
            if not len(todo):
                break
            pos = np.searchsorted(run_keys, keys[todo])
            pos[pos == len(run_keys)] = 0
            hit = run_keys[pos] == keys[todo]
            found[todo[hit]] = True
            out[todo[hit]] = (run_keys if run_vals is None else run_vals)[pos[hit]]
        return found, out

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Insert or overwrite (the last of repeated keys wins)."""
        self.put_sorted(*_last_per_key(keys, values))

    def put_sorted(self, keys: np.ndarray, values: np.ndarray) -> None:
        """put() of keys already sorted and unique. Keys that are their own values (ids
        hashed from content) are stored once."""
        if not len(keys):
            return
        self._mark(keys)
        self.runs.append((keys, None if values is keys else values))
        self.count += len(keys)
        if self.count * 16 > self.filter_bits:
            self._grow_filter()
        while (
            len(self.runs) > 1
            and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0])
            and len(self.runs[-2][0]) + len(self.runs[-1][0]) <= MAX_RUN
        ):
            (k1, v1), (k2, v2) = self.runs[-2], self.runs.pop()
            if v1 is None and v2 is None:
                k = np.sort(np.concatenate([k1, k2]), kind="stable")  # timsort: two sorted runs
                self.runs[-1] = (k[np.concatenate([[True], k[1:] != k[:-1]])], None)
            else:
                vals = [k if v is None else v for k, v in ((k1, v1), (k2, v2))]
                self.runs[-1] = _last_per_key(np.concatenate([k1, k2]), np.concatenate(vals))


@dataclass(frozen=True)
class KeyOrder:
    """Rows of equal keys brought together: what dedupe needs of a chunk's key hashes.
    Pure numpy on one chunk, so it is computed beside the mapping, off the main thread."""

    order: np.ndarray  # stable argsort of the keys: equal keys stay in file order
    starts: np.ndarray  # per sorted position: the first of its key

    @classmethod
    def of(cls, keys: np.ndarray) -> KeyOrder:
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        starts = np.ones(len(keys), dtype=bool)
        starts[1:] = ks[1:] != ks[:-1]
        return cls(order, starts)

    def first_positions(self) -> np.ndarray:
        """For each row, the row where its key first occurs."""
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = self.order[self.starts][np.cumsum(self.starts) - 1]
        return out


def _last_per_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    k, v = keys[order], values[order]
    last = np.ones(len(k), dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return k[last], v[last]


class Dedupe:
    """Classifies valid records: 0 keep, 1 duplicate (skip), 2 conflict (reject), 3 keep as a
    later record of a customer this run saw before (sent whatever the ledger says)."""

    KEEP, DUPLICATE, CONFLICT, LATER = 0, 1, 2, 3  # LATER: customers, a change after an earlier record

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.index = HashIndex()

    def classify_hashes(self, keys: np.ndarray, contents: np.ndarray, key_order: KeyOrder) -> np.ndarray:
        """Status per record, from its id hash, its content hash and the ids' KeyOrder."""
        if self.kind == "activities":
            return self._first_wins(keys, contents, key_order)
        return self._latest_wins(keys, contents, key_order)

    def _first_wins(self, keys: np.ndarray, contents: np.ndarray, key_order: KeyOrder) -> np.ndarray:
        found, prev = self.index.lookup(keys)
        # the reference content of a key: the index's, else its first occurrence here
        ref_pos = key_order.first_positions()
        first = ~found & (ref_pos == np.arange(len(keys)))
        later = ~found & ~first
        ref = np.where(found, prev, contents[ref_pos])
        out = np.where(found | later, np.where(ref == contents, self.DUPLICATE, self.CONFLICT), self.KEEP)
        new = key_order.order[key_order.starts]  # each key's first row, in key order
        new = new[~found[new]]
        new_keys = keys[new]
        self.index.put_sorted(new_keys, new_keys if contents is keys else contents[new])
        return out.astype(np.int8)

    def _latest_wins(self, keys: np.ndarray, contents: np.ndarray, key_order: KeyOrder) -> np.ndarray:
        found, prev = self.index.lookup(keys)
        order, starts = key_order.order, key_order.starts  # rows of one id together, in file order
        before = np.full(len(keys), -1, dtype=np.int64)  # the previous row with the same id
        before[order[~starts]] = order[np.flatnonzero(~starts) - 1]
        has_before = before >= 0
        ref = prev.copy()
        ref[has_before] = contents[before[has_before]]
        seen = has_before | found
        # a later record of a customer seen before in this run is kept as LATER: it must be
        # sent even if the ledger holds it, or Track360 would end with the earlier one
        out = np.where(seen, np.where(ref == contents, self.DUPLICATE, self.LATER), self.KEEP).astype(np.int8)
        last = order[np.append(starts[1:], True)]  # each id's last row, in key order
        self.index.put_sorted(keys[last], contents[last])
        return out


@dataclass(frozen=True)
class RecordKeys:
    """What dedupe needs of a chunk's valid records: which carry an id, the hashes of
    those ids and of their records, and the ids' KeyOrder. Pure numpy on one chunk."""

    keyed: np.ndarray  # per record: has an id
    key_hash: np.ndarray  # per keyed record
    content_hash: np.ndarray  # per keyed record
    order: KeyOrder

    @classmethod
    def of(cls, ids: pa.Array | None, records: pa.Array) -> RecordKeys:
        """From the id column (None: the mapping has none) and the records' JSON text."""
        if ids is None:
            empty = EMPTY_U64
            return cls(np.zeros(len(records), dtype=bool), empty, empty, KeyOrder.of(empty))
        keyed = ids.is_valid().to_numpy(zero_copy_only=False)
        take = pa.array(np.flatnonzero(keyed))
        key_hash = hash_strings(ids.take(take))
        return cls(keyed, key_hash, hash_strings(records.take(take)), KeyOrder.of(key_hash))

    @classmethod
    def of_content_ids(cls, hashes: np.ndarray) -> RecordKeys:
        """Ids generated from the records' content: the same id <=> the same content."""
        return cls(np.ones(len(hashes), dtype=bool), hashes, hashes, KeyOrder.of(hashes))


def classify(dedupe: Dedupe, keys: RecordKeys) -> np.ndarray:
    """Status of every record: KEEP for those without an id."""
    status = np.zeros(len(keys.keyed), dtype=np.int8)
    if len(keys.key_hash):
        status[keys.keyed] = dedupe.classify_hashes(keys.key_hash, keys.content_hash, keys.order)
    return status


class Presence:
    """Customers: which of some fields the latest record of each customerId holds
    (tracking_data for `unattributed_customers`, contract.customers_must_have for
    `customers_missing`), one bit per field, so a later record of a customer wins. The
    counts are kept as records come (a later record of a customer replaces its earlier
    one's), so the end of a run costs nothing (a pass over 1M ids would cost ~40 MB)."""

    def __init__(self, fields: list[str]) -> None:
        assert len(fields) <= 64, "one bit per field"
        self.fields = fields
        self.index = HashIndex()
        self.counts = dict.fromkeys(fields, 0)

    def add(self, id_hashes: np.ndarray, values: dict[str, pa.Array]) -> None:
        """id_hashes: hash_strings of the customerIds; values: the records' fields."""
        bits = np.zeros(len(id_hashes), dtype=np.uint64)
        for position, name in enumerate(self.fields):
            column = values.get(name)
            if column is not None:
                held = column.is_valid().to_numpy(zero_copy_only=False).astype(np.uint64)
                bits |= held << np.uint64(position)
        keys, latest = _last_per_key(id_hashes, bits)
        found, before = self.index.lookup(keys)
        for position, name in enumerate(self.fields):
            bit = np.uint64(1) << np.uint64(position)
            lacks_now = int(np.count_nonzero(latest & bit == 0))
            lacked = int(np.count_nonzero(found & (before & bit == 0)))
            self.counts[name] += lacks_now - lacked
        small = latest.astype(np.uint8) if len(self.fields) <= 8 else latest  # 1 byte a customer, not 8
        self.index.put_sorted(keys, small)

    def missing(self) -> dict[str, int]:
        """Per field: customers whose latest record lacks it."""
        return dict(self.counts)
