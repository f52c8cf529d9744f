"""`t360 sandbox`: a local Track360 receiver with SQLite storage and fault injection.

An asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) that honours the
Track360 contract. Imports only the standard library, orjson and t360cli.contract.

    faults.py   Faults (the options) and Dice (the seeded RNG that applies them)
    checks.py   what a batch body must hold (check_batch)
    store.py    Store: SQLite, customers upserted, activities deduplicated by eventid
    framing.py  HTTP/1.1 framing: request head, body length, writing an answer
    server.py   Server: connections, routing, the answer to each POST
    launch.py   serve (foreground), serve_in_thread -> Sandbox, main (`python -m t360cli.sandbox`)
"""

from t360cli.sandbox.checks import check_batch
from t360cli.sandbox.faults import Dice, Fault, Faults
from t360cli.sandbox.framing import BODY_LIMIT, HEADER_LIMIT, LINGER_S, REASONS, Request, Response
from t360cli.sandbox.launch import DEFAULT_API_KEY, DEFAULT_DB, Sandbox, main, serve, serve_in_thread
from t360cli.sandbox.server import KIND_BY_PATH, RECORDS_PATHS, Server
from t360cli.sandbox.store import Store

__all__ = [
    "BODY_LIMIT",
    "DEFAULT_API_KEY",
    "DEFAULT_DB",
    "HEADER_LIMIT",
    "KIND_BY_PATH",
    "LINGER_S",
    "REASONS",
    "RECORDS_PATHS",
    "Dice",
    "Fault",
    "Faults",
    "Request",
    "Response",
    "Sandbox",
    "Server",
    "Store",
    "check_batch",
    "main",
    "serve",
    "serve_in_thread",
]
