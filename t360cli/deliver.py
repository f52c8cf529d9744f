"""Send batches with bounded concurrency, record each in the progress log, resume.

Reading, mapping and encoding run in a producer thread (pyarrow releases the GIL), so
the event loop keeps requests in flight while the next chunk is prepared.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import orjson

from t360cli.batching import Batch
from t360cli.client import Halt, Sender, SendResult, Span
from t360cli.ledger_view import Acknowledged
from t360cli.progress_log import RunLog
from t360cli.tally import Counts, RejectSink, Totals

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LogEntry = dict[str, Any]  # one JSON line of the progress log (`entry()` writes it)
Handed = Batch | BaseException | None  # a batch, the producer's exception, or None at the end


class Producer:
    """Runs an iterator of batches in a thread, handing them over a bounded queue."""

    def __init__(self, batches: Iterable[Batch], depth: int) -> None:
        self.queue: queue.Queue[Handed] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.finished = False  # the iterator ran out (None was handed), as opposed to a thread that died
        self.thread = threading.Thread(target=self._run, args=(batches,), daemon=True)
        self.thread.start()

    def _run(self, batches: Iterable[Batch]) -> None:
        try:
            for batch in batches:
                _ = batch.sha256  # body joined and hashed here, off the event loop
                if not self._put(batch):
                    return
            self.finished = True
            self._put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(exc)

    def _put(self, item: Handed) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Handed:
        while True:  # bounded by the thread: it hands an item, or ends
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    if self.finished or self.stopping.is_set():
                        return None
                    return RuntimeError("the thread reading the input ended before the end of the input")

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class Delivery:
    """Sends the producer's batches, at most `concurrency` at once, and logs each one.

    A halt (`SendResult.halt`: a refused key, a broken endpoint) or `stop_after` batches
    failed in a row (SPEC 10) is noted in `halt` and stops the run; the caller decides what
    to raise once the report is written. `began` turns true with the first request.
    """

    sender: Sender
    log: RunLog
    counts: Counts
    concurrency: int
    on_refused: Callable[[Batch, int, int, str], None]
    on_batch: Callable[[Counts], None] = lambda counts: None
    unacked: Totals | None = None
    stop_after: int = 0  # failed batches in a row that stop the run (0: never)
    acknowledged: Acknowledged | None = None  # on their way to the ledger, after the log line
    stopping: bool = False
    halt: Halt | None = None
    began: bool = False
    failed_in_a_row: int = 0
    inflight: dict[asyncio.Task[None], Batch] = field(default_factory=dict)

    def stop(self) -> None:
        self.stopping = True
        self.sender.stop()

    def give_up(self, halt: Halt, reason: str) -> None:
        """Stop sending for good: no new request, in-flight ones finish."""
        self.halt = self.halt or halt
        self.stopping = True
        self.sender.halt(reason)

    def is_stopping(self) -> bool:
        return self.stopping

    async def run(self, producer: Producer, prior: dict[int, LogEntry]) -> None:
        try:
            await self._run(producer, prior)
        except Exception:  # a full disk, a dead thread: no new request, in-flight ones end, then raise
            self.stopping = True
            self.sender.halt("not sent: the run stopped on an error")
            producer.stop()
            await asyncio.gather(*self.inflight, return_exceptions=True)
            self.inflight.clear()
            raise

    async def _run(self, producer: Producer, prior: dict[int, LogEntry]) -> None:
        while not self.stopping:
            batch = await asyncio.to_thread(producer.get)
            if batch is None:
                break
            if isinstance(batch, BaseException):
                await self._drain()
                raise batch
            self.counts.batches_total += 1
            ranges = self._todo(batch, prior.get(batch.index))
            if not ranges:
                continue
            while len(self.inflight) >= self.concurrency or self._blocked(batch):
                await self._wait_one()
            if self.is_stopping():  # set by a signal or a halt while this one waited
                self._add_unacked(batch, ranges)  # never sent
                break
            self.began = True
            task = asyncio.create_task(self._send(batch, ranges))
            self.inflight[task] = batch
            if self.acknowledged is not None and self.acknowledged.due:
                await asyncio.to_thread(self.acknowledged.flush)
        producer.stop()
        await self._drain()

    def _todo(self, batch: Batch, entry: LogEntry | None) -> list[Span]:
        """Ranges of the batch still to send; replays refusals of acknowledged ones."""
        if entry is None or entry.get("sha256") != batch.sha256:
            return [(0, batch.n)]
        for record, status, message in entry.get("refused", []):
            self.on_refused(batch, record, status, message)
        pending = [] if entry.get("status") == "acked" else entry.get("pending", [[0, batch.n]])
        self._remember_logged(batch, pending, entry.get("refused", []))
        if not pending:
            self.counts.batches_skipped += 1
            return []
        return [(int(lo), int(hi)) for lo, hi in pending]

    def _remember_logged(self, batch: Batch, pending: list[list[int]], refused: list[list[Any]]) -> None:
        """What an earlier attempt got acknowledged (the log says so) goes to the ledger too: a
        kill between the log line and the ledger write is mended by the resume."""
        if self.acknowledged is None or not len(batch.ledger_ids):
            return
        sent = np.ones(batch.n, dtype=bool)
        for lo, hi in pending:
            sent[int(lo) : int(hi)] = False
        for refusal in refused:
            sent[int(refusal[0])] = False
        self.acknowledged.add(batch.ledger_ids[sent], batch.ledger_hashes[sent])

    def _blocked(self, batch: Batch) -> bool:
        return bool(batch.ids) and any(batch.ids & other.ids for other in self.inflight.values())

    async def _wait_one(self) -> None:
        done, _ = await asyncio.wait(list(self.inflight), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            self.inflight.pop(task)
            task.result()  # a bug in _send surfaces here

    async def _drain(self) -> None:
        while self.inflight:
            await self._wait_one()

    async def _send(self, batch: Batch, ranges: list[Span]) -> None:
        results = []
        for done, (lo, hi) in enumerate(ranges, start=1):
            result = await self.sender.send(hi - lo, partial(_part_at, batch, lo))
            results.append(shift(result, lo))
            if result.halt is not None:  # log what the batch got (its 401s, its 404), then stop
                results += [SendResult(failed=[span], error=result.error) for span in ranges[done:]]
                self.give_up(result.halt, result.error or "not sent")
                self._record(batch, merge(results))
                return
        merged = merge(results)
        if merged.requests == 0 and self.sender.halted:  # stopped before its first request: unsent
            self._add_unacked(batch, ranges)
        else:
            self._record(batch, merged)

    def _record(self, batch: Batch, result: SendResult) -> None:
        counts = self.counts
        counts.retries += result.requests - result.parts
        for label, seen in result.statuses.items():
            counts.http_status_counts[label] = counts.http_status_counts.get(label, 0) + seen
        counts.records_sent += sum(hi - lo for lo, hi in result.acked)
        for record, status, message in result.refused:
            self.on_refused(batch, record, status, message)
        if result.status == "acked":
            counts.batches_sent += 1
        else:
            counts.batches_failed += 1
            cause = result.cause or result.error or "no answer"
            counts.failed_causes[cause] = counts.failed_causes.get(cause, 0) + 1
            self._add_unacked(batch, result.failed)
        self.log.append(entry(batch, result))
        if self.acknowledged is not None and len(batch.ledger_ids):  # after the log line, never before
            for lo, hi in result.acked:
                self.acknowledged.add(batch.ledger_ids[lo:hi], batch.ledger_hashes[lo:hi])
        self._count_in_a_row(result)
        self.on_batch(counts)

    def _count_in_a_row(self, result: SendResult) -> None:
        """SPEC 10's dead endpoint: `stop_after` batches failed in the order they settle, none
        acknowledged in between, stop the run naming the last one's cause."""
        if result.status == "acked":
            self.failed_in_a_row = 0
            return
        self.failed_in_a_row += 1
        if self.stopping or not self.stop_after or self.failed_in_a_row < self.stop_after:
            return
        cause = result.cause or result.error or "the batches kept failing"
        message = (
            f"{cause}; {self.failed_in_a_row} batches failed in a row, nothing more was sent; "
            "rerun the same command to resume."
        )
        self.give_up(Halt(message, ""), f"not sent: {self.failed_in_a_row} batches failed in a row")

    def _add_unacked(self, batch: Batch, ranges: Iterable[Span]) -> None:
        if self.unacked is None:
            return
        for lo, hi in ranges:
            for record in orjson.loads(batch.part(lo, hi)):
                self.unacked.add_record(record)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call `stop` (no new request; in-flight ones finish, the log is flushed).

    A second one exits at once (KeyboardInterrupt, exit 130): requests still in flight count
    as not acknowledged and are sent again by the next run."""
    loop = asyncio.get_running_loop()
    signalled = False

    def on_signal() -> None:
        nonlocal signalled
        if signalled:
            raise KeyboardInterrupt
        signalled = True
        stop()

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            handler = previous[sig]
            if handler is not None:  # the caller's own handlers again (remove_signal_handler set the default)
                signal.signal(sig, handler)


@dataclass
class Refusals:
    """Records the server refused: written to the rejects file as they come, folded into
    the counts and the valid totals once the producer is done (SPEC 9)."""

    counts: Counts
    valid: Totals
    rejects: RejectSink
    rows: set[tuple[int, int]] = field(default_factory=set)
    records: int = 0
    totals: Totals | None = None

    def __call__(self, batch: Batch, record: int, status: int, message: str) -> None:
        refused = orjson.loads(batch.part(record, record + 1))[0]
        if self.totals is None:
            self.totals = Totals(self.valid.fields)
        self.totals.add_record(refused)
        self.records += 1
        reason = f"server refused (HTTP {status}): {message}"
        if batch.origins:
            chunk, pos = batch.origin_of(record)
            key = (chunk.source.index, int(batch.lines[record]))
            if key not in self.rows:
                self.rejects.write(chunk.source.name, key[1], reason, chunk.table.slice(pos, 1).to_pylist()[0])
        else:  # an aggregated record: no single source row
            key = (-1, -len(self.rows) - 1)
            self.rejects.write("(aggregate)", 0, reason, {})
        self.rows.add(key)

    def fold(self) -> None:
        """A refused row moves from valid to rejected."""
        self.counts.rows_valid -= len(self.rows)
        self.counts.rows_rejected += len(self.rows)
        self.counts.records_valid -= self.records
        if self.totals is not None:
            self.valid.merge(self.totals, -1)


def _part_at(batch: Batch, offset: int, lo: int, hi: int) -> bytes:
    """The body of records lo..hi-1 of the part that starts at `offset`."""
    return batch.part(offset + lo, offset + hi)


def shift(result: SendResult, offset: int) -> SendResult:
    """A part's result in the numbering of its whole batch."""
    return replace(
        result,
        acked=[(lo + offset, hi + offset) for lo, hi in result.acked],
        refused=[(record + offset, status, message) for record, status, message in result.refused],
        failed=[(lo + offset, hi + offset) for lo, hi in result.failed],
    )


def merge(results: list[SendResult]) -> SendResult:
    if len(results) == 1:
        return results[0]
    statuses: dict[str, int] = {}
    for result in results:
        for status, seen in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + seen
    return SendResult(
        acked=[span for result in results for span in result.acked],
        refused=[refusal for result in results for refusal in result.refused],
        failed=[span for result in results for span in result.failed],
        requests=sum(result.requests for result in results),
        parts=sum(result.parts for result in results),
        statuses=statuses,
        error=next((result.error for result in reversed(results) if result.error), None),
        cause=next((result.cause for result in reversed(results) if result.cause), None),
        halt=next((result.halt for result in results if result.halt), None),
    )


def entry(batch: Batch, result: SendResult) -> LogEntry:
    """One progress-log line: never the payload, never the key."""
    line: LogEntry = {
        "index": batch.index,
        "rows": batch.row_spans(),
        "records": batch.n,
        "sha256": batch.sha256,
        "status": result.status,
        "attempts": result.requests,
        "statuses": result.statuses,
        "error": result.error,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if result.refused:
        line["refused"] = [list(refusal) for refusal in result.refused]
    if result.failed:
        line["pending"] = [list(span) for span in result.failed]
    return line


def latest_entries(entries: Iterable[LogEntry]) -> dict[int, LogEntry]:
    """The last entry per batch, with the refusals of all its entries (a resumed batch
    keeps the records an earlier attempt had refused)."""
    out: dict[int, LogEntry] = {}
    for line in entries:
        index = int(line["index"])
        if index < 0:  # a run's summary line
            continue
        prev = out.get(index)
        if prev is not None and prev.get("sha256") == line.get("sha256") and prev.get("refused"):
            line = {**line, "refused": prev["refused"] + line.get("refused", [])}
        out[index] = line
    return out
