"""The progress log (SPEC section 6): JSON Lines, a header then one line per finished batch.

Each line is written, flushed and fsynced as its batch ends, so that after a crash at
most the batches in flight are lost; a torn last line is tolerated. `LogLock` keeps two
runs off the same log.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from t360cli.errors import LogError
from t360cli.files import write_atomic

Record = dict[str, Any]  # a JSON object of the log: the header or a batch entry

_FRESH = "Use --restart to start over or --log for a new log."
_MISSING = object()
_STALE_GRACE_S = 10.0  # an empty lock file younger than this is being written by its owner


def _damaged(path: Path, line: int, what: str) -> LogError:
    return LogError(f"{path}, line {line}: {what}; the progress log is damaged.", _FRESH)


def _unusable(path: Path, exc: OSError) -> LogError:
    return LogError(
        f"{path}: cannot use the progress log ({exc.strerror or exc}).",
        "Check the path and its permissions, or choose another with --log.",
    )


def _parse(data: bytes, path: Path) -> tuple[Record | None, list[Record], bytes]:
    """Header (None if the file holds no complete line), entries, and the clean bytes."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail.strip():
        try:
            orjson.loads(tail)
        except orjson.JSONDecodeError:
            pass  # torn last line: ignored
        else:
            lines.append(tail)  # complete, only its newline was lost
    records: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise _damaged(path, number, f"not valid JSON ({exc})") from None
    if not records:
        return None, [], b""
    if not isinstance(records[0], dict):
        raise _damaged(path, 1, "the header is not a JSON object")
    for number, entry in enumerate(records[1:], start=2):
        if not isinstance(entry, dict) or type(entry.get("index")) is not int:
            raise _damaged(path, number, "not a batch entry (a JSON object with an integer index)")
    clean = b"".join(line + b"\n" for line in lines)
    return records[0], records[1:], clean


def read_log(path: Path) -> tuple[Record, list[Record]]:
    """Header and batch entries of a log; a torn last line is ignored."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LogError(f"{path}: no such progress log.", "Check the path.") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read the progress log ({exc.strerror}).") from None
    header, entries, _ = _parse(data, Path(path))
    if header is None:
        raise _damaged(Path(path), 1, "no header line")
    return header, entries


def _first_difference(stored: Any, wanted: Any, where: str) -> str | None:
    """Where two header values first differ, e.g. `files[0].sha256: log has 'ab', this run 'cd'`."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in [*stored, *(k for k in wanted if k not in stored)]:
            found = _first_difference(stored.get(key, _MISSING), wanted.get(key, _MISSING), f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(wanted, list) and len(stored) == len(wanted):
        for i, (a, b) in enumerate(zip(stored, wanted, strict=True)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    if stored == wanted:
        return None
    return f"{where}: the log has {_show(stored)}, this run has {_show(wanted)}"


def _show(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _check_header(path: Path, stored: Record, header: Record, keys: Sequence[str]) -> None:
    diffs = [d for k in keys if (d := _first_difference(stored.get(k, _MISSING), header.get(k, _MISSING), k))]
    if diffs:
        raise LogError(f"{path} was written by a different run ({'; '.join(diffs[:3])}).", _FRESH)


def _set_aside(path: Path) -> Path:
    """Rename an old log to <name>.<timestamp>.old (never overwriting one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"-{n}"
        target = path.with_name(f"{path.name}.{stamp}{suffix}.old")
        if not target.exists():
            os.replace(path, target)
            return target
    raise LogError(f"{path}: too many old logs named {path.name}.{stamp}*.old.")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


class LogLock:
    """`<log>.lock`, created with O_CREAT|O_EXCL, holding the owner's pid."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.path = self.log_path.with_name(self.log_path.name + ".lock")
        self.held = False

    def acquire(self) -> LogLock:
        for _ in range(5):  # a stale lock is broken, then creation retried
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_if_stale()
                continue
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return self
        raise LogError(
            f"{self.log_path}: could not take the lock {self.path}.",
            "Check that the folder is writable, or delete the lock file.",
        )

    def _owner(self, path: Path | None = None) -> int | None:
        try:
            text = (path or self.path).read_text("ascii", "replace").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _break_if_stale(self) -> None:
        pid = self._owner()
        if pid is not None and _pid_alive(pid):
            raise LogError(
                f"{self.log_path} is in use by process {pid} (another t360 run?).",
                f"Wait for it to finish; if no t360 run is active, delete {self.path}.",
            )
        if pid is None and self._young():
            raise LogError(
                f"{self.log_path} is in use by another process (another t360 run?).",
                f"Wait for it to finish; if no t360 run is active, delete {self.path}.",
            )
        # stale: move it aside atomically, and put it back if it turned out not to be stale
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if self._owner(aside) != pid:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        os.unlink(aside)

    def _young(self) -> bool:
        try:
            return time.time() - self.path.stat().st_mtime < _STALE_GRACE_S
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file, only if it is still ours."""
        if self.held and self._owner() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.held = False


class RunLog:
    """An open, locked progress log: `header`, `entries`, and `append()` per finished batch."""

    def __init__(self, path: Path, header: Record, entries: list[Record], lock: LogLock) -> None:
        self.path = path
        self.header = header
        self.entries = entries
        self.set_aside: Path | None = None  # where --restart moved the old log
        self._lock = lock
        self._fh = open(path, "ab")  # noqa: SIM115 (closed in close())

    @classmethod
    def open(cls, path: Path, header: Record, *, restart: bool = False, match_keys: Sequence[str] = ()) -> RunLog:
        """Lock the log; resume it if it matches `header` on `match_keys`, else refuse."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = LogLock(path).acquire()
        except OSError as exc:
            raise _unusable(path, exc) from None
        try:
            return cls._open_locked(path, header, restart, match_keys, lock)
        except OSError as exc:
            lock.release()
            raise _unusable(path, exc) from None
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls, path: Path, header: Record, restart: bool, match_keys: Sequence[str], lock: LogLock
    ) -> RunLog:
        aside = None
        if path.exists() and restart:
            aside = _set_aside(path)
        elif path.exists():
            data = path.read_bytes()
            stored, entries, clean = _parse(data, path)
            if stored is not None:
                _check_header(path, stored, header, match_keys)
                if clean != data:
                    write_atomic(path, clean)  # drop the torn last line
                return cls(path, stored, entries, lock)
        write_atomic(path, orjson.dumps(header) + b"\n")
        log = cls(path, header, [], lock)
        log.set_aside = aside
        return log

    def append(self, entry: Record) -> None:
        """Write one batch line, flushed and fsynced."""
        if type(entry.get("index")) is not int:
            raise ValueError("a progress log entry needs an integer 'index'")
        self._fh.write(orjson.dumps(entry) + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.entries.append(entry)

    def close(self) -> None:
        """Close the file and release the lock (idempotent)."""
        if not self._fh.closed:
            self._fh.close()
        self._lock.release()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
