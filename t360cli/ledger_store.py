"""The ledger's SQLite file: connections, schema, and sqlite3 errors turned into LedgerError.

`ledger.py` holds what the ledger means; this module holds how it sits on disk.

Layout (`PRAGMA application_id` 0x74333630 "t360", `user_version` 1, `auto_vacuum`
full: the space `forget` frees goes back to the disk at its commit; nothing else frees pages):

    ledgers(n INTEGER PRIMARY KEY, host, port, key_id, kind, UNIQUE(host, port, key_id, kind))
    entries_<n>(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, at INTEGER NOT NULL)

One `entries_<n>` table per target and kind, a rowid table keyed by the id's 64-bit
XXH3 (as a signed integer): no text, no second index, ~33 bytes per entry on disk. `hash`
is the record's 64-bit XXH3, `at` the acknowledgement time in milliseconds since the
epoch (UTC).

The file is in WAL mode while a writer has it open (readers never block the writer), and
the writer turns it back to a rollback journal when it closes, if no one else has it
open: then a read-only open (`validate`) creates no `-wal`/`-shm` files beside it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from t360cli.errors import T360Error

APPLICATION_ID = 0x74333630  # "t360"
FORMAT = 1  # PRAGMA user_version
CACHE_KIB = 1_024  # page cache per connection: a 10M-entry table looks up as fast as with 4 MiB (bench/ledger.py)
PROBE = 500  # ids per SELECT ... IN (...): padded to this size, so one prepared statement serves all
BUSY_TIMEOUT_S = 10.0

_ENTRIES = "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, at INTEGER NOT NULL)"
_REGISTRY = """CREATE TABLE IF NOT EXISTS ledgers (
    n INTEGER PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, key_id TEXT NOT NULL, kind TEXT NOT NULL,
    UNIQUE (host, port, key_id, kind))"""
_UPSERT = (
    "INSERT INTO {t} (id, hash, at) VALUES (?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, at = excluded.at"
)
_SELECT = "SELECT id, hash, at FROM {t} WHERE id IN ({marks})"

_MOVE_ASIDE = "Move it aside (t360 then starts an empty ledger and sends every record once more), or restore a backup."
_WAIT = "Wait for the other t360 run to finish, then run the same command again."
_HINTS = {
    "SQLITE_NOTADB": ("it is not a SQLite database", _MOVE_ASIDE),
    "SQLITE_CORRUPT": ("it is damaged", _MOVE_ASIDE),
    "SQLITE_BUSY": ("another process holds it locked", _WAIT),
    "SQLITE_LOCKED": ("another process holds it locked", _WAIT),
    "SQLITE_READONLY": ("it cannot be written", "Check the permissions of the file and its folder."),
    "SQLITE_CANTOPEN": ("it cannot be opened", "Check that the path is a file and that its folder can be written."),
    "SQLITE_PERM": ("permission denied", "Check the permissions of the file and its folder."),
    "SQLITE_FULL": ("the disk is full", "Free some disk space, then run the same command again."),
    "SQLITE_IOERR": ("the disk failed to read or write it", "Check the disk, then run the same command again."),
}


class LedgerError(T360Error):
    """The ledger file cannot be used: one sentence naming the file, and what to do."""


def fail(path: Path, cause: str, hint: str | None = None) -> LedgerError:
    return LedgerError(f"cannot use the ledger {path}: {cause}.", hint)


@contextlib.contextmanager
def seam(path: Path) -> Iterator[None]:
    """Turn any sqlite3 or OS error inside into a LedgerError naming `path`."""
    try:
        yield
    except sqlite3.Error as exc:
        primary = "_".join(str(getattr(exc, "sqlite_errorname", "")).split("_")[:2])  # SQLITE_IOERR_READ -> ..IOERR
        cause, hint = _HINTS.get(primary, (str(exc) or type(exc).__name__, "Check the file, or move it aside."))
        raise fail(path, cause, hint) from exc
    except OSError as exc:
        raise fail(path, exc.strerror or str(exc), "Check the path and the permissions of its folder.") from exc


def connect(path: Path, read_only: bool, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), schema checked.

    Read-only: `mode=ro`, `query_only`; never creates the file. Read-write: the file is
    created 0o600, the schema set up on first use, WAL mode on. Raises LedgerError.
    """
    with seam(path):
        if read_only:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            con = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            con.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            if read_only:
                con.execute("PRAGMA query_only = ON")
                _check(path, con)
            else:
                _set_up(path, con)
        except BaseException:
            con.close()
            raise
    return con


def _check(path: Path, con: sqlite3.Connection) -> bool:
    """Whether the file holds t360's schema (False: new and empty); LedgerError if it is not ours."""
    app = con.execute("PRAGMA application_id").fetchone()[0]
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if app == APPLICATION_ID:
        if version > FORMAT:
            raise fail(path, f"it was written by a newer t360 (ledger format {version})", "Upgrade t360.")
        return True
    if app == 0 and not con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return False
    raise fail(path, "it is a SQLite database of another program", "Choose another state_dir, or move the file aside.")


def _set_up(path: Path, con: sqlite3.Connection) -> None:
    """WAL mode, NORMAL sync (WAL commits survive a crash; a power cut may lose the last few,
    which leaves the ledger behind the server, never ahead); the schema if the file is new."""
    new = not _check(path, con)
    if new:
        con.execute("PRAGMA auto_vacuum = FULL")  # takes effect only before the first table, and WAL
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA journal_size_limit = 67108864")
    if not new:
        return
    with transaction(con):
        if not _check(path, con):  # another process may have set it up meanwhile
            con.execute(_REGISTRY)
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {FORMAT}")


def close_writer(con: sqlite3.Connection) -> None:
    """Close; back to a rollback journal first when no one else has the file open (so a later
    read-only open creates nothing beside it). Best effort: the ledger is already committed."""
    with contextlib.suppress(sqlite3.Error):
        con.execute("PRAGMA busy_timeout = 0")
        con.execute("PRAGMA journal_mode = DELETE")
    con.close()


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock at once, waiting up to the busy timeout) ... COMMIT."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def table_of(con: sqlite3.Connection, host: str, port: int, key_id: str, kind: str) -> str | None:
    """The entries table of one target and kind, or None if it holds nothing yet."""
    if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledgers'").fetchone():
        return None
    row = con.execute(
        "SELECT n FROM ledgers WHERE host = ? AND port = ? AND key_id = ? AND kind = ?", (host, port, key_id, kind)
    ).fetchone()
    return None if row is None else f"entries_{row[0]}"


def create_table(con: sqlite3.Connection, host: str, port: int, key_id: str, kind: str) -> str:
    """The entries table of one target and kind, made now if missing (inside a transaction)."""
    con.execute(
        "INSERT INTO ledgers (host, port, key_id, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (host, port, key_id, kind),
    )
    table = table_of(con, host, port, key_id, kind)
    assert table is not None
    con.execute(_ENTRIES.format(t=table))
    return table


def select(con: sqlite3.Connection, table: str, keys: np.ndarray) -> np.ndarray:
    """(m, 3) int64 rows (id, hash, at) of the sorted unique `keys` present in `table`.
    One prepared statement of PROBE ids at a time, the last padded with a repeated id."""
    sql = _SELECT.format(t=table, marks=",".join("?" * PROBE))
    padded = np.concatenate([keys, np.full(-len(keys) % PROBE, keys[-1] if len(keys) else 0, dtype=np.int64)])
    rows: list[tuple[int, int, int]] = []
    for lo in range(0, len(padded), PROBE):
        rows += con.execute(sql, padded[lo : lo + PROBE].tolist()).fetchall()
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def upsert(con: sqlite3.Connection, table: str, rows: Iterable[tuple[int, int, int]]) -> None:
    """Insert or overwrite (id, hash, at) rows, in order: of a repeated id the last wins."""
    con.executemany(_UPSERT.format(t=table), rows)


def tables(con: sqlite3.Connection) -> list[tuple[str, str, int, str, str]]:
    """(table, host, port, key_id, kind) of every target and kind the file holds."""
    if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledgers'").fetchone():
        return []
    rows = con.execute("SELECT n, host, port, key_id, kind FROM ledgers ORDER BY host, port, key_id, kind")
    return [(f"entries_{n}", host, port, key_id, kind) for n, host, port, key_id, kind in rows]


def summary(con: sqlite3.Connection, table: str) -> tuple[int, int | None, int | None]:
    """(count, oldest, newest acknowledgement in ms) of an entries table: one scan."""
    count, oldest, newest = con.execute(f"SELECT count(*), min(at), max(at) FROM {table}").fetchone()
    return count, oldest, newest


def drop(con: sqlite3.Connection, table: str) -> int:
    """Remove a whole entries table and its registry row; how many entries it held."""
    count: int = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM ledgers WHERE n = ?", (int(table.removeprefix("entries_")),))
    return count
