"""The sandbox's asyncio HTTP server: connections, routing, and the answer to each POST."""

from __future__ import annotations

import asyncio
import hmac
import signal
import sqlite3
from collections.abc import Callable

import orjson

from t360cli.contract import ENDPOINTS, SANDBOX_STATS_PATH
from t360cli.sandbox.checks import check_batch
from t360cli.sandbox.faults import Dice, Faults
from t360cli.sandbox.framing import (
    HEADER_LIMIT,
    BadRequest,
    Request,
    Response,
    body_length,
    error_response,
    parse_head,
    send,
)
from t360cli.sandbox.store import Store

KIND_BY_PATH = {path: kind for kind, path in ENDPOINTS.items()}
RECORDS_PATHS = {f"/sandbox/records/{kind}": kind for kind in ENDPOINTS}


class Server:
    """The sandbox server; all state lives on its event loop's thread."""

    def __init__(self, host: str, port: int, db: str, api_key: str, faults: Faults) -> None:
        self.host, self.port, self.db_path = host, port, db
        self._key = api_key.encode()
        self.set_faults(faults)
        self.requests = 0
        self.duplicates_ignored = 0
        self.store: Store | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults (and restart the RNG from their seed)."""
        self.faults, self._dice = faults, Dice(faults.seed)

    def _open_store(self) -> Store:
        """The store, which exists while run() runs."""
        assert self.store is not None, "the server is not running"
        return self.store

    def stats(self) -> dict[str, int]:
        customers, activities = self._open_store().counts()
        return {
            "customers": customers,
            "activities": activities,
            "requests": self.requests,
            "duplicates_ignored": self.duplicates_ignored,
        }

    def records(self, kind: str) -> bytes:
        """The stored records of one kind, as a JSON array."""
        return self._open_store().records(kind)

    async def run(self, on_listening: Callable[[int], None], signals: bool = False) -> None:
        """Listen until stop() (or SIGINT/SIGTERM when signals), then close everything."""
        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.store = Store(self.db_path)
        try:
            server = await asyncio.start_server(self._connection, self.host, self.port, limit=HEADER_LIMIT)
            self.port = server.sockets[0].getsockname()[1]
            if signals:
                for signal_number in (signal.SIGINT, signal.SIGTERM):
                    self.loop.add_signal_handler(signal_number, self._stop.set)
            on_listening(self.port)
            await self._stop.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
        finally:
            self.store.close()

    def stop(self) -> None:
        """Ask the server to stop (from any thread)."""
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile: already stopped
                pass

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection must close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            return await send(writer, error_response(431, "request headers are too large", close=True), reader)
        try:
            request = parse_head(head)
            if request.method == "POST" and request.path in KIND_BY_PATH:
                self.requests += 1
            length = body_length(request)
        except BadRequest as exc:
            return await send(writer, error_response(exc.status, str(exc), close=True), reader)
        if length and request.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        response = await self._route(request, body)
        if response is None:  # drop
            return False
        response.close = response.close or not request.keep_alive
        return await send(writer, response)

    async def _route(self, request: Request, body: bytes) -> Response | None:
        kind = KIND_BY_PATH.get(request.path)
        if kind is not None:
            if request.method != "POST":
                return error_response(405, f"{request.method} not allowed here: use POST", headers=[("Allow", "POST")])
            return await self._post(kind, request, body)
        if request.path == SANDBOX_STATS_PATH or request.path in RECORDS_PATHS:
            if request.method != "GET":
                return error_response(405, f"{request.method} not allowed here: use GET", headers=[("Allow", "GET")])
            if request.path == SANDBOX_STATS_PATH:
                return Response(200, orjson.dumps(self.stats()))
            return Response(200, self.records(RECORDS_PATHS[request.path]))
        return error_response(404, f"no such path: {request.path}")

    async def _post(self, kind: str, request: Request, body: bytes) -> Response | None:
        """Answer a POST to an endpoint: delay, fixed answers, key, faults, size, validation, store (None: drop)."""
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.answer_status is not None:
            return error_response(
                faults.answer_status, f"sandbox: every POST is answered {faults.answer_status} (answer_status)"
            )
        if faults.fail_endpoint == kind:
            return error_response(503, f"sandbox: the {kind} endpoint is down (fail_endpoint)")
        key = request.headers.get("x-api-key")
        if key is None:
            return error_response(401, "missing x-api-key header")
        if not hmac.compare_digest(key.encode("latin-1"), self._key):
            return error_response(401, "invalid API key")
        fault = self._dice.roll(faults)
        if fault == "drop":
            return None
        if fault == "fail":
            return error_response(503, "sandbox: injected failure (fail_rate)")
        if fault == "throttle":
            retry_after = [("Retry-After", f"{faults.retry_after:g}")]
            return error_response(429, "sandbox: injected throttling (throttle_rate)", headers=retry_after)
        if faults.max_body_bytes is not None and len(body) > faults.max_body_bytes:
            return error_response(413, f"body is {len(body)} bytes, at most {faults.max_body_bytes}")
        return self._accept(kind, body, faults.poison)

    def _accept(self, kind: str, body: bytes, poison: str | None) -> Response:
        """Validate the batch and store it whole, or refuse it whole."""
        try:
            records = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error_response(400, f"body is not valid JSON: {exc}")
        message = check_batch(kind, records, poison)
        if message is not None:
            return error_response(400, message)
        try:
            duplicates = self._open_store().add(kind, body, len(records))
        except sqlite3.Error as exc:
            return error_response(500, f"sandbox storage error: {exc}")
        self.duplicates_ignored += duplicates
        return Response(200, orjson.dumps({"accepted": len(records) - duplicates, "duplicates": duplicates}))
