"""Send batches with bounded concurrency, record each in the progress log, resume.

Reading, mapping and encoding run in a producer thread (pyarrow releases the GIL), so
the event loop keeps requests in flight while the next chunk is prepared.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from t360cli.batching import Batch
from t360cli.client import Sender, SendResult
from t360cli.errors import AuthRefused
from t360cli.progress_log import RunLog
from t360cli.tally import Counts, Totals

_END = object()


class Producer:
    """Runs an iterator of batches in a thread, handing them over a bounded queue."""

    def __init__(self, batches: Iterable[Batch], depth: int) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(batches,), daemon=True)
        self.thread.start()

    def _run(self, batches: Iterable[Batch]) -> None:
        try:
            for batch in batches:
                _ = batch.sha256  # body joined and hashed here, off the event loop
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.stopping.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        while True:
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self.q.empty():
                    return _END

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class Delivery:
    sender: Sender
    log: RunLog
    counts: Counts
    concurrency: int
    on_refused: Callable[[Batch, int, int, str], None]
    on_batch: Callable[[Counts], None] = lambda c: None
    unacked: Totals | None = None
    stopping: bool = False
    auth_error: AuthRefused | None = None
    inflight: dict[asyncio.Task[None], Batch] = field(default_factory=dict)

    def stop(self) -> None:
        self.stopping = True
        self.sender.stop()

    async def run(self, producer: Producer, prior: dict[int, dict[str, Any]]) -> None:
        while not self.stopping:
            batch = await asyncio.to_thread(producer.get)
            if batch is _END:
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
            if self.stopping:
                self._unsent(batch, ranges)
                break
            task = asyncio.create_task(self._send(batch, ranges))
            self.inflight[task] = batch
        producer.stop()
        await self._drain()
        if self.auth_error:
            raise self.auth_error

    def _todo(self, batch: Batch, entry: dict[str, Any] | None) -> list[tuple[int, int]]:
        """Ranges of the batch still to send; replays refusals of acknowledged ones."""
        if entry is None or entry.get("sha256") != batch.sha256:
            return [(0, batch.n)]
        for rec, status, message in entry.get("refused", []):
            self.on_refused(batch, rec, status, message)
        if entry.get("status") == "acked":
            self.counts.batches_skipped += 1
            return []
        return [tuple(r) for r in entry.get("pending", [[0, batch.n]])]  # type: ignore[misc]

    def _blocked(self, batch: Batch) -> bool:
        return bool(batch.ids) and any(batch.ids & other.ids for other in self.inflight.values())

    async def _wait_one(self) -> None:
        done, _ = await asyncio.wait(list(self.inflight), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            self.inflight.pop(task)
            exc = task.exception()
            if isinstance(exc, AuthRefused):
                self.auth_error = exc
                self.stop()
            elif exc is not None:
                raise exc

    async def _drain(self) -> None:
        while self.inflight:
            await self._wait_one()

    async def _send(self, batch: Batch, ranges: list[tuple[int, int]]) -> None:
        results = []
        for i, (lo, hi) in enumerate(ranges):
            try:
                res = await self.sender.send(hi - lo, lambda a, b, lo=lo: batch.part(lo + a, lo + b))
            except AuthRefused as exc:  # log what the batch got (its 401s), then stop
                got = getattr(exc, "result", None) or SendResult(failed=[(0, hi - lo)], error=exc.message)
                results.append(shift(got, lo))
                results += [SendResult(failed=[r], error=got.error) for r in ranges[i + 1 :]]
                self._record(batch, merge(results))
                raise
            results.append(shift(res, lo))
        res = merge(results)
        if res.requests == 0 and self.sender.halted:  # stopped before its first request: unsent
            self._unsent(batch, ranges)
        else:
            self._record(batch, res)
        if self.sender.auth_error is not None and self.auth_error is None:
            self.auth_error = self.sender.auth_error
            self.stopping = True

    def _record(self, batch: Batch, res: SendResult) -> None:
        c = self.counts
        c.retries += res.requests - res.parts
        for status, n in res.statuses.items():
            c.http_status_counts[status] = c.http_status_counts.get(status, 0) + n
        c.records_sent += sum(hi - lo for lo, hi in res.acked)
        for rec, status, message in res.refused:
            self.on_refused(batch, rec, status, message)
        if res.status == "acked":
            c.batches_sent += 1
        else:
            c.batches_failed += 1
            self._add_unacked(batch, res.failed)
        self.log.append(entry(batch, res))
        self.on_batch(c)

    def _unsent(self, batch: Batch, ranges: list[tuple[int, int]]) -> None:
        self._add_unacked(batch, ranges)

    def _add_unacked(self, batch: Batch, ranges: Iterable[tuple[int, int]]) -> None:
        if self.unacked is None:
            return
        for lo, hi in ranges:
            for record in orjson.loads(batch.part(lo, hi)):
                self.unacked.add_record(record)


def shift(res: SendResult, lo: int) -> SendResult:
    return SendResult(
        acked=[(a + lo, b + lo) for a, b in res.acked],
        refused=[(r + lo, s, m) for r, s, m in res.refused],
        failed=[(a + lo, b + lo) for a, b in res.failed],
        requests=res.requests,
        parts=res.parts,
        statuses=res.statuses,
        error=res.error,
    )


def merge(results: list[SendResult]) -> SendResult:
    if len(results) == 1:
        return results[0]
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return SendResult(
        acked=[x for r in results for x in r.acked],
        refused=[x for r in results for x in r.refused],
        failed=[x for r in results for x in r.failed],
        requests=sum(r.requests for r in results),
        parts=sum(r.parts for r in results),
        statuses=statuses,
        error=next((r.error for r in reversed(results) if r.error), None),
    )


def entry(batch: Batch, res: SendResult) -> dict[str, Any]:
    """One progress-log line: never the payload, never the key."""
    line: dict[str, Any] = {
        "index": batch.index,
        "rows": batch.row_spans(),
        "records": batch.n,
        "sha256": batch.sha256,
        "status": res.status,
        "attempts": res.requests,
        "statuses": res.statuses,
        "error": res.error,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if res.refused:
        line["refused"] = [list(r) for r in res.refused]
    if res.failed:
        line["pending"] = [list(r) for r in res.failed]
    return line


def latest_entries(entries: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The last entry per batch, with the refusals of all its entries (a resumed batch
    keeps the records an earlier attempt had refused)."""
    out: dict[int, dict[str, Any]] = {}
    for e in entries:
        index = int(e["index"])
        if index < 0:  # a run's summary line
            continue
        prev = out.get(index)
        if prev is not None and prev.get("sha256") == e.get("sha256") and prev.get("refused"):
            e = {**e, "refused": prev["refused"] + e.get("refused", [])}
        out[index] = e
    return out
