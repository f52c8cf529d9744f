"""The sandbox's SQLite store: customers upserted by customerId, activities deduplicated by eventid."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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

    def add(self, kind: str, body: bytes, count: int) -> int:
        """Store a validated batch of `count` records atomically; return how many were duplicates."""
        con = self.con
        con.execute("BEGIN")
        try:
            changed: int = con.execute(_INSERT[kind], (body.decode(),)).rowcount
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return 0 if kind == "customers" else count - changed

    def counts(self) -> tuple[int, int]:
        """(customers, activities) held."""
        (customers,) = self.con.execute("SELECT count(*) FROM customers").fetchone()
        (activities,) = self.con.execute("SELECT count(*) FROM activities").fetchone()
        return customers, activities

    def records(self, kind: str) -> bytes:
        """The stored records as a JSON array (customers in first-insert order)."""
        rows = self.con.execute(f"SELECT data FROM {kind} ORDER BY rowid").fetchall()
        return ("[" + ",".join(row[0] for row in rows) + "]").encode()

    def close(self) -> None:
        self.con.close()
