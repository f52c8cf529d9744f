"""Send batches with bounded concurrency, record each in the progress log, resume.

Reading, mapping and encoding run in a producer thread (pyarrow releases the GIL), so
the event loop keeps requests in flight while the next chunk is prepared.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import orjson

from t360cli.batching import Batch
from t360cli.client import AuthRefusal, Sender, SendResult, Span
from t360cli.progress_log import RunLog
from t360cli.tally import Counts, Totals

LogEntry = dict[str, Any]  # one JSON line of the progress log (`entry()` writes it)
Handed = Batch | BaseException | None  # a batch, the producer's exception, or None at the end


class Producer:
    """Runs an iterator of batches in a thread, handing them over a bounded queue."""

    def __init__(self, batches: Iterable[Batch], depth: int) -> None:
        self.queue: queue.Queue[Handed] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(batches,), daemon=True)
        self.thread.start()

    def _run(self, batches: Iterable[Batch]) -> None:
        try:
            for batch in batches:
                _ = batch.sha256  # body joined and hashed here, off the event loop
                if not self._put(batch):
                    return
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
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    return None

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class Delivery:
    """Sends the producer's batches, at most `concurrency` at once, and logs each one.

    A refused key (`SendResult.auth_refused`) is noted in `refusal` and stops the run;
    the caller decides what to raise once the report is written.
    """

    sender: Sender
    log: RunLog
    counts: Counts
    concurrency: int
    on_refused: Callable[[Batch, int, int, str], None]
    on_batch: Callable[[Counts], None] = lambda counts: None
    unacked: Totals | None = None
    stopping: bool = False
    refusal: AuthRefusal | None = None
    inflight: dict[asyncio.Task[None], Batch] = field(default_factory=dict)

    def stop(self) -> None:
        self.stopping = True
        self.sender.stop()

    def is_stopping(self) -> bool:
        return self.stopping

    async def run(self, producer: Producer, prior: dict[int, LogEntry]) -> None:
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
            if self.is_stopping():  # set by a signal or a refused key while this one waited
                self._add_unacked(batch, ranges)  # never sent
                break
            task = asyncio.create_task(self._send(batch, ranges))
            self.inflight[task] = batch
        producer.stop()
        await self._drain()

    def _todo(self, batch: Batch, entry: LogEntry | None) -> list[Span]:
        """Ranges of the batch still to send; replays refusals of acknowledged ones."""
        if entry is None or entry.get("sha256") != batch.sha256:
            return [(0, batch.n)]
        for record, status, message in entry.get("refused", []):
            self.on_refused(batch, record, status, message)
        if entry.get("status") == "acked":
            self.counts.batches_skipped += 1
            return []
        return [(int(lo), int(hi)) for lo, hi in entry.get("pending", [[0, batch.n]])]

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
            if result.auth_refused is not None:  # log what the batch got (its 401s), then stop
                results += [SendResult(failed=[span], error=result.error) for span in ranges[done:]]
                self._record(batch, merge(results))
                self.refusal = self.refusal or result.auth_refused
                self.stop()
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
            self._add_unacked(batch, result.failed)
        self.log.append(entry(batch, result))
        self.on_batch(counts)

    def _add_unacked(self, batch: Batch, ranges: Iterable[Span]) -> None:
        if self.unacked is None:
            return
        for lo, hi in ranges:
            for record in orjson.loads(batch.part(lo, hi)):
                self.unacked.add_record(record)


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
