"""Starting the sandbox: in the foreground (`t360 sandbox`, `python -m t360cli.sandbox`) or on a thread."""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from t360cli.sandbox.faults import Faults
from t360cli.sandbox.server import Server

DEFAULT_DB = str(Path(".t360") / "sandbox.db")
DEFAULT_API_KEY = "sandbox-key"
DESCRIPTION = """`t360 sandbox`: a local Track360 receiver with SQLite storage and fault injection.

An asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) that honours the
Track360 contract. Imports only the standard library, orjson and t360cli.contract.
"""
Result = TypeVar("Result")


def url_of(host: str, port: int) -> str:
    """The base URL of a server listening on host:port (IPv6 hosts in brackets)."""
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
        print(f"t360 sandbox listening on {url_of(host, bound)} (db: {shown})", flush=True)
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
        self.url = url_of(server.host, server.port)

    def _call(self, action: Callable[[], Result]) -> Result:
        """Run action on the server's loop thread (the only thread that touches its state)."""

        async def call() -> Result:
            return action()

        assert self._server.loop is not None
        return asyncio.run_coroutine_threadsafe(call(), self._server.loop).result(timeout=60)

    def stats(self) -> dict[str, int]:
        return self._call(self._server.stats)

    def _records(self, kind: str) -> list[dict[str, Any]]:
        """The stored records of one kind, parsed (JSON values, hence Any)."""
        records: list[dict[str, Any]] = orjson.loads(self._call(lambda: self._server.records(kind)))
        return records

    def customers(self) -> list[dict[str, Any]]:
        return self._records("customers")

    def activities(self) -> list[dict[str, Any]]:
        return self._records("activities")

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
    parser = argparse.ArgumentParser(prog="python -m t360cli.sandbox", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8360)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    for name in ("fail-rate", "throttle-rate", "drop-rate", "latency-ms", "retry-after"):
        parser.add_argument(f"--{name}", type=float, default=1.0 if name == "retry-after" else 0.0)
    parser.add_argument("--max-body-bytes", type=int)
    parser.add_argument("--poison")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--fail-endpoint", help="customers or activities: every POST to it is answered 503")
    parser.add_argument("--answer-status", type=int, help="answer every POST to the endpoints with this status")
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            fail_rate=args.fail_rate,
            throttle_rate=args.throttle_rate,
            drop_rate=args.drop_rate,
            latency_ms=args.latency_ms,
            retry_after=args.retry_after,
            max_body_bytes=args.max_body_bytes,
            poison=args.poison,
            seed=args.seed,
            fail_endpoint=args.fail_endpoint,
            answer_status=args.answer_status,
        )
    except ValueError as exc:
        parser.error(str(exc))
    serve(args.host, args.port, args.db, args.api_key, faults)
