"""The ledger as one run sees it (SPEC 13): a verdict per chunk, acknowledgements recorded after the log.

- `RunLedger.judge` answers, for a chunk's valid records: their id and record hashes (to
  record once acknowledged), which are unchanged since Track360 acknowledged them (not
  sent: `rows_unchanged`), which activities reuse an acknowledged `eventid` with other
  values (a reject), and which activities' customer was never sent (orphans). Pure and
  read-only, so it runs in the pipeline's worker threads (SQLite releases the GIL).
- It reads the ledger as of the run's progress log's start: a resumed run decides as
  its first attempt did. `--restart` skips nothing (`skips=False`), orphans included
  in the check all the same.
- `Acknowledged` gathers what the log recorded as acknowledged and writes it to the
  ledger in one transaction per few thousand records, after the log line, off the
  event loop; never ahead of the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.config import Settings
from t360cli.ledger import FILE_NAME, Ledger, Target, id_hashes, record_hashes, when_text

U64 = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]
NO_ID = np.uint64(0)  # a record without an id (an activity without eventid) is not recorded
# Acknowledged records are written in one transaction per 262,144 (4 MiB; each page of the
# table written once, not once per batch) or every 2 s, whichever comes first, so a slow
# night keeps the ledger close behind the log (a resume mends what a crash left behind).
RECORD_EVERY = 262_144
RECORD_EVERY_S = 2.0


@dataclass(frozen=True)
class Verdict:
    """The ledger's word on a chunk's valid records, one entry per record."""

    ids: U64  # id hash, NO_ID where the record has no id
    hashes: U64  # record hash
    unchanged: Mask  # acknowledged before with this very record: not sent
    conflict: Mask  # activities: the eventid was acknowledged with other values
    when: pa.Array  # conflicts: when that was ("YYYY-MM-DD HH:MM UTC"), null elsewhere
    orphan: Mask  # activities: the customerid was never sent

    @classmethod
    def none(cls, count: int) -> Verdict:
        nothing = np.zeros(count, dtype=bool)
        zeros = np.zeros(count, dtype=np.uint64)
        return cls(zeros, zeros, nothing, nothing, pa.nulls(count, pa.string()), nothing)


@dataclass
class RunLedger:
    """What a run asks of the ledger."""

    ledger: Ledger
    kind: str
    as_of: datetime | None  # the progress log's start: entries acknowledged later are ignored
    skips: bool = True  # False with --restart: nothing is unchanged, nothing conflicts
    job_customers: U64 | None = None  # sorted id hashes of the valid customers of this job's customers feeds
    in_job: bool = False  # a customers feed of a job keeps its customers' ids for the activities feeds

    def __post_init__(self) -> None:
        # an empty view (a first backfill, a new target) is answered without a lookup
        self._holds = self.ledger.holds_any(self.kind, self.as_of)
        self._holds_customers = self.ledger.holds_any("customers", self.as_of) if self.kind == "activities" else False

    def judge(self, ids: pa.Array | None, records: pa.Array, customers: pa.Array | None) -> Verdict:
        count = len(records)
        verdict = Verdict.none(count)
        hashes = record_hashes(records)
        orphan = self._orphans(customers) if self.kind == "activities" and customers is not None else verdict.orphan
        if ids is None:
            return Verdict(verdict.ids, hashes, verdict.unchanged, verdict.conflict, verdict.when, orphan)
        has_id = ids.is_valid().to_numpy(zero_copy_only=False)
        keys = np.where(has_id, id_hashes(ids), NO_ID)
        if not self.skips or not self._holds:
            return Verdict(keys, hashes, verdict.unchanged, verdict.conflict, verdict.when, orphan)
        seen = self.ledger.lookup_hashed(self.kind, keys, hashes, self.as_of)
        known = seen.known & has_id
        unchanged = known & seen.same
        if self.kind == "customers":  # a changed customer is sent again
            return Verdict(keys, hashes, unchanged, verdict.conflict, verdict.when, orphan)
        conflict = known & ~seen.same
        when = when_text(seen.when) if conflict.any() else verdict.when
        return Verdict(keys, hashes, unchanged, conflict, when, orphan)

    def _orphans(self, customers: pa.Array) -> Mask:
        """Activities whose customerid is neither in the ledger nor a customer of this job."""
        has = customers.is_valid().to_numpy(zero_copy_only=False)
        keys = id_hashes(customers)
        if self._holds_customers:
            seen = self.ledger.lookup_hashed("customers", keys, keys, self.as_of).known
        else:
            seen = np.zeros(len(keys), dtype=bool)
        if self.job_customers is not None and len(self.job_customers):
            pos = np.minimum(np.searchsorted(self.job_customers, keys), len(self.job_customers) - 1)
            seen |= self.job_customers[pos] == keys
        orphan: Mask = has & ~seen
        return orphan


def orphan_names(customers: pa.Array, orphan: Mask, most: int) -> list[str]:
    """Up to `most` distinct customerids of orphan activities, in order of appearance."""
    if not orphan.any():
        return []
    names = pc.unique(customers.filter(pa.array(orphan))).to_pylist()
    return [str(name) for name in names[:most]]


class Acknowledged:
    """Acknowledged records on their way to the ledger: `add` after the progress log has
    recorded the batch (the event loop), `flush` in a worker thread or at the end."""

    def __init__(self, ledger: Ledger, kind: str) -> None:
        self.ledger = ledger
        self.kind = kind
        self._lock = threading.Lock()
        self._ids: list[U64] = []
        self._hashes: list[U64] = []
        self.pending = 0
        self._since = time.monotonic()

    def add(self, ids: U64, hashes: U64) -> None:
        keep = ids != NO_ID
        with self._lock:
            self._ids.append(ids[keep])
            self._hashes.append(hashes[keep])
            self.pending += int(np.count_nonzero(keep))

    @property
    def due(self) -> bool:
        waited = time.monotonic() - self._since
        return self.pending >= RECORD_EVERY or (self.pending > 0 and waited >= RECORD_EVERY_S)

    def flush(self) -> int:
        """Write what was gathered in one transaction; the number of records written."""
        with self._lock:
            ids, hashes = self._ids, self._hashes
            self._ids, self._hashes, self.pending = [], [], 0
            self._since = time.monotonic()
        if not ids:
            return 0
        return self.ledger.record_hashed(self.kind, np.concatenate(ids), np.concatenate(hashes))


@dataclass
class JobCustomers:
    """The valid customers a job's customers feeds read, for its activities' orphan check
    (SPEC 13: a customer of a customers feed of the same job is not an orphan's)."""

    keys: list[U64] = field(default_factory=list)

    def sorted(self) -> U64:
        return np.unique(np.concatenate(self.keys)) if self.keys else np.empty(0, dtype=np.uint64)


def started(header: dict[str, object]) -> datetime | None:
    """The moment a progress log began (its header's `started_ms`), as the ledger's view:
    what was acknowledged before it counts, what its own batches got after it does not."""
    moment = header.get("started_ms")
    if type(moment) is not int:  # a log written before the ledger: see it as of now
        return None
    return datetime.fromtimestamp(moment / 1000, UTC)


def ledger_notes(kind: str, records_without_id: int, orphans: int | None, orphan_names: list[str]) -> list[str]:
    """What a run with a ledger says once: activities it cannot remember, orphans."""
    notes = []
    if kind == "activities" and records_without_id:
        notes.append(
            f"warning: {records_without_id:,} activities have no eventid: the ledger cannot remember them, "
            "so an overlapping export sends them again; map an eventid (or eventid: {generate: hash})."
        )
    if orphans:
        named = ", ".join(orphan_names)
        notes.append(
            f"warning: {orphans:,} activities are for customers never sent (first: {named}); "
            "send those customers first (the nightly job runs customers feeds first)."
        )
    return notes


@contextmanager
def run_ledger(
    settings: Settings,
    key: str | None,
    kind: str,
    *,
    read_only: bool,
    as_of: datetime | None,
    restart: bool = False,
    job: JobCustomers | None = None,
) -> Iterator[RunLedger | None]:
    """The ledger of `settings`' target for one run, or None when no key or base URL says
    whose it would be (a dry run without them: it is then not consulted)."""
    if key is None or not settings.base_url:
        yield None
        return
    state_dir = Path(settings.state_dir)
    path = state_dir / FILE_NAME
    with Ledger.open(path, Target.of(settings.base_url, key), read_only=read_only, state_dir=state_dir) as ledger:
        job_customers = job.sorted() if job is not None and kind == "activities" else None
        moment = as_of or datetime.now(UTC)
        yield RunLedger(ledger, kind, moment, skips=not restart, job_customers=job_customers, in_job=job is not None)
