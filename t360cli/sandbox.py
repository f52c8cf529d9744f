"""`t360 sandbox`: a local Track360 receiver with SQLite storage and fault injection.

An asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) that honours the
Track360 contract. Imports only the standard library, orjson and t360cli.contract.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import random
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from t360cli.contract import ENDPOINTS, REQUIRED, SANDBOX_STATS_PATH, TRACKING_DATA_MAX

DEFAULT_DB = str(Path(".t360") / "sandbox.db")
DEFAULT_API_KEY = "sandbox-key"
HEADER_LIMIT = 64 * 1024  # request line + headers
BODY_LIMIT = 64 * 1024 * 1024  # above this: 413 and the connection is closed unread
LINGER_S = 2.0  # lingering close after an answer that ends the connection
KIND_BY_PATH = {path: kind for kind, path in ENDPOINTS.items()}
RECORDS_PATHS = {f"/sandbox/records/{kind}": kind for kind in ENDPOINTS}
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (customerId TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities (id INTEGER PRIMARY KEY, eventid TEXT UNIQUE NULL,
                                       data TEXT NOT NULL);
"""
# json_each splits the (already validated) body in C: no per-record Python work to store.
_INSERT = {
    "customers": "INSERT INTO customers (customerId, data) "
    "SELECT json_extract(value, '$.customerId'), value FROM json_each(?) WHERE true "
    "ON CONFLICT (customerId) DO UPDATE SET data = excluded.data",
    "activities": "INSERT OR IGNORE INTO activities (eventid, data) "
    "SELECT NULLIF(json_extract(value, '$.eventid'), ''), value FROM json_each(?)",
}


@dataclass
class Faults:
    """Fault injection: rates are probabilities 0..1, decided per POST with a seeded RNG."""

    fail_rate: float = 0.0  # 503
    throttle_rate: float = 0.0  # 429 with Retry-After: retry_after
    drop_rate: float = 0.0  # close the connection without answering
    latency_ms: float = 0  # delay before answering any POST
    retry_after: float = 1.0  # seconds, sent in Retry-After
    max_body_bytes: int | None = None  # 413 above this
    poison: str | None = None  # 400 for a batch holding a field with exactly this value
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("latency_ms", "retry_after", "max_body_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


def _jtype(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _record_error(kind: str, rec: Any, poison: str | None) -> str | None:
    """Why one record is refused, or None."""
    if type(rec) is not dict:
        return f"must be a JSON object, got {_jtype(rec)}"
    for name in REQUIRED[kind]:
        value = rec.get(name)
        if type(value) is str and value:
            continue
        if value is None or value == "":
            other = next((k for k in rec if k.lower() == name.lower() and k != name), None)
            hint = f" (found {other!r}: this endpoint spells it {name!r})" if other else ""
            return f"{name} is required{hint}"
        return f"{name} must be a string, got {_jtype(value)}"
    td = rec.get("tracking_data")
    if td is not None:
        if type(td) is not str:
            return f"tracking_data must be a string, got {_jtype(td)}"
        if len(td) > TRACKING_DATA_MAX:
            return f"tracking_data: {len(td)} characters, at most {TRACKING_DATA_MAX}"
    if poison is not None and poison in rec.values():
        key = next(k for k, v in rec.items() if v == poison)
        return f"refused value {poison!r} in {key}"
    return None


def check_batch(kind: str, records: Any, poison: str | None = None) -> str | None:
    """The 400 message for a parsed body, or None if every record is acceptable.

    Records are numbered from 1 (their position in the JSON array); the first bad one is named.
    """
    if type(records) is not list:
        return f"body must be a JSON array of records, got {_jtype(records)}"
    for i, rec in enumerate(records, 1):
        error = _record_error(kind, rec, poison)
        if error is not None:
            return f"record {i}: {error}"
    return None


class Store:
    """The SQLite store: one connection, used only by the server's event loop thread.

    Writes run inline on the loop (one writer, batches stored in arrival order): a separate
    database thread measured slower here, the GIL hand-offs cost more than the overlap.
    """

    def __init__(self, db: str) -> None:
        if db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=OFF")
        self.con.executescript(_SCHEMA)

    def add(self, kind: str, body: bytes, n: int) -> int:
        """Store a validated batch of n records atomically; return how many were duplicates."""
        con = self.con
        con.execute("BEGIN")
        try:
            changed = con.execute(_INSERT[kind], (body.decode(),)).rowcount
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return 0 if kind == "customers" else n - changed

    def counts(self) -> tuple[int, int]:
        """(customers, activities) held."""
        (c,) = self.con.execute("SELECT count(*) FROM customers").fetchone()
        (a,) = self.con.execute("SELECT count(*) FROM activities").fetchone()
        return c, a

    def records(self, kind: str) -> bytes:
        """The stored records as a JSON array (customers in first-insert order)."""
        rows = self.con.execute(f"SELECT data FROM {kind} ORDER BY rowid").fetchall()
        return ("[" + ",".join(r[0] for r in rows) + "]").encode()

    def close(self) -> None:
        self.con.close()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


class _BadRequest(Exception):
    """A request that cannot be framed: answer and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, **kw: Any) -> Response:
    return Response(status, orjson.dumps({"error": message}), **kw)


def _parse_head(head: bytes) -> Request:
    """Parse the request line and headers (the block ends with a blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
    conn = headers.get("connection", "").lower()
    keep = conn != "close" if parts[2] == "HTTP/1.1" else conn == "keep-alive"
    return Request(parts[0], parts[1].split("?", 1)[0], headers, keep)


def _body_length(req: Request) -> int:
    """The Content-Length of the request body (0 when there is none)."""
    if "transfer-encoding" in req.headers:
        raise _BadRequest(411, "chunked bodies are not supported: send Content-Length")
    raw = req.headers.get("content-length")
    if raw is None:
        if req.method in ("POST", "PUT", "PATCH"):
            raise _BadRequest(411, "Content-Length is required")
        return 0
    if not raw.isdigit():
        raise _BadRequest(400, "invalid Content-Length")
    if int(raw) > BODY_LIMIT:
        raise _BadRequest(413, f"body is {raw} bytes, at most {BODY_LIMIT}")
    return int(raw)


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
        self._tasks: set[asyncio.Task[Any]] = set()

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults (and restart the RNG from their seed)."""
        self.faults, self._rng = faults, random.Random(faults.seed)

    def stats(self) -> dict[str, int]:
        assert self.store is not None
        customers, activities = self.store.counts()
        return {
            "customers": customers,
            "activities": activities,
            "requests": self.requests,
            "duplicates_ignored": self.duplicates_ignored,
        }

    async def run(self, on_listening: Callable[[int], None], signals: bool = False) -> None:
        """Listen until stop() (or SIGINT/SIGTERM when signals), then close everything."""
        self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.store = Store(self.db_path)
        try:
            server = await asyncio.start_server(self._connection, self.host, self.port, limit=HEADER_LIMIT)
            self.port = server.sockets[0].getsockname()[1]
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.loop.add_signal_handler(sig, self._stop.set)
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
            return await _send(writer, _error(431, "request headers are too large", close=True), reader)
        try:
            req = _parse_head(head)
            if req.method == "POST" and req.path in KIND_BY_PATH:
                self.requests += 1
            length = _body_length(req)
        except _BadRequest as exc:
            return await _send(writer, _error(exc.status, str(exc), close=True), reader)
        if length and req.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        resp = await self._route(req, body)
        if resp is None:  # drop
            return False
        resp.close = resp.close or not req.keep_alive
        return await _send(writer, resp)

    async def _route(self, req: Request, body: bytes) -> Response | None:
        kind = KIND_BY_PATH.get(req.path)
        if kind is not None:
            if req.method != "POST":
                return _error(405, f"{req.method} not allowed here: use POST", headers=[("Allow", "POST")])
            return await self._post(kind, req, body)
        if req.path == SANDBOX_STATS_PATH or req.path in RECORDS_PATHS:
            if req.method != "GET":
                return _error(405, f"{req.method} not allowed here: use GET", headers=[("Allow", "GET")])
            if req.path == SANDBOX_STATS_PATH:
                return Response(200, orjson.dumps(self.stats()))
            assert self.store is not None
            return Response(200, self.store.records(RECORDS_PATHS[req.path]))
        return _error(404, f"no such path: {req.path}")

    def _draw(self, f: Faults) -> str | None:
        """Decide this request's random fault (drop, fail, throttle, in that order)."""
        for name, rate in (("drop", f.drop_rate), ("fail", f.fail_rate), ("throttle", f.throttle_rate)):
            if rate > 0 and self._rng.random() < rate:
                return name
        return None

    async def _post(self, kind: str, req: Request, body: bytes) -> Response | None:
        """Answer a POST to an endpoint: delay, key, faults, size, validation, store."""
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        key = req.headers.get("x-api-key")
        if key is None:
            return _error(401, "missing x-api-key header")
        if not hmac.compare_digest(key.encode("latin-1"), self._key):
            return _error(401, "invalid API key")
        fault = self._draw(f)
        if fault == "drop":
            return None
        if fault == "fail":
            return _error(503, "sandbox: injected failure (fail_rate)")
        if fault == "throttle":
            return _error(
                429, "sandbox: injected throttling (throttle_rate)", headers=[("Retry-After", f"{f.retry_after:g}")]
            )
        if f.max_body_bytes is not None and len(body) > f.max_body_bytes:
            return _error(413, f"body is {len(body)} bytes, at most {f.max_body_bytes}")
        return self._store(kind, body, f.poison)

    def _store(self, kind: str, body: bytes, poison: str | None) -> Response:
        """Validate the batch and store it whole, or refuse it whole."""
        try:
            records = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        message = check_batch(kind, records, poison)
        if message is not None:
            return _error(400, message)
        assert self.store is not None
        try:
            dups = self.store.add(kind, body, len(records))
        except sqlite3.Error as exc:
            return _error(500, f"sandbox storage error: {exc}")
        self.duplicates_ignored += dups
        return Response(200, orjson.dumps({"accepted": len(records) - dups, "duplicates": dups}))


async def _send(writer: asyncio.StreamWriter, resp: Response, reader: asyncio.StreamReader | None = None) -> bool:
    """Write one response; return whether the connection stays open.

    With `reader`, a closing answer is followed by a lingering close: unread request bytes
    are drained (for at most LINGER_S) so that the client's TCP stack does not reset the
    connection before the client has read the answer.
    """
    lines = [
        f"HTTP/1.1 {resp.status} {REASONS[resp.status]}",
        "Content-Type: application/json",
        f"Content-Length: {len(resp.body)}",
    ]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    if resp.close:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body)
    await writer.drain()
    if resp.close and reader is not None and writer.can_write_eof():
        writer.write_eof()
        try:
            async with asyncio.timeout(LINGER_S):
                while await reader.read(65536):
                    pass
        except (TimeoutError, ConnectionError):
            pass
    return not resp.close


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    host: str = "127.0.0.1",
    port: int = 8360,
    db: str | Path = DEFAULT_DB,
    api_key: str = DEFAULT_API_KEY,
    faults: Faults | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM."""
    db = str(db)
    shown = db if db == ":memory:" else str(Path(db).resolve())
    server = Server(host, port, db, api_key, faults or Faults())

    def listening(bound: int) -> None:
        print(f"t360 sandbox listening on {_url(host, bound)} (db: {shown})", flush=True)
        if ready is not None:
            ready(bound)

    try:
        asyncio.run(server.run(listening, signals=threading.current_thread() is threading.main_thread()))
    except KeyboardInterrupt:
        pass


class Sandbox:
    """A sandbox running on a background thread (a context manager)."""

    def __init__(self, server: Server, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.host, self.port = server.host, server.port
        self.url = _url(server.host, server.port)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop thread (the only thread that touches its state)."""

        async def call() -> Any:
            return fn()

        assert self._server.loop is not None
        return asyncio.run_coroutine_threadsafe(call(), self._server.loop).result(timeout=60)

    def stats(self) -> dict[str, int]:
        return self._call(self._server.stats)

    def customers(self) -> list[dict[str, Any]]:
        return orjson.loads(self._call(lambda: self._server.store.records("customers")))

    def activities(self) -> list[dict[str, Any]]:
        return orjson.loads(self._call(lambda: self._server.store.records("activities")))

    def set_faults(self, faults: Faults) -> None:
        """Change the faults while running (the RNG restarts from faults.seed)."""
        self._call(lambda: self._server.set_faults(faults))

    def close(self) -> None:
        self._server.stop()
        self._thread.join(timeout=60)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    db: str | Path = ":memory:",
    api_key: str = DEFAULT_API_KEY,
    faults: Faults | None = None,
) -> Sandbox:
    """Start a sandbox on a daemon thread; return once its port accepts connections."""
    server = Server(host, port, str(db), api_key, faults or Faults())
    started = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(server.run(lambda _port: started.set()))
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=main, name=f"t360-sandbox-{port}", daemon=True)
    thread.start()
    if not started.wait(timeout=60):
        server.stop()
        raise RuntimeError("the sandbox did not start within 60 s")
    if failure:
        thread.join(timeout=60)
        raise failure[0]
    return Sandbox(server, thread)


def main(argv: list[str] | None = None) -> None:
    """`python -m t360cli.sandbox`: the same server without the t360 CLI."""
    p = argparse.ArgumentParser(prog="python -m t360cli.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8360)
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    for name in ("fail-rate", "throttle-rate", "drop-rate", "latency-ms", "retry-after"):
        p.add_argument(f"--{name}", type=float, default=1.0 if name == "retry-after" else 0.0)
    p.add_argument("--max-body-bytes", type=int)
    p.add_argument("--poison")
    p.add_argument("--seed", type=int)
    a = p.parse_args(argv)
    try:
        faults = Faults(
            a.fail_rate, a.throttle_rate, a.drop_rate, a.latency_ms, a.retry_after, a.max_body_bytes, a.poison, a.seed
        )
    except ValueError as exc:
        p.error(str(exc))
    serve(a.host, a.port, a.db, a.api_key, faults)


if __name__ == "__main__":
    main()
