"""The progress log (SPEC section 6): JSON Lines, a header then one line per finished batch.

Each line is written, flushed and fsynced as its batch ends, so that after a crash at
most the batches in flight are lost; a torn last line is tolerated. `LogLock` keeps two
runs off the same log.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from t360cli.errors import LogError
from t360cli.files import PRIVATE, WriteFailed, refuse_symlink, write_user_file

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


_MAX_LINE = 64 * 1024 * 1024  # a batch line with every refusal of 100,000 records stays well below


@dataclass
class _Scan:
    """A log read line by line: header, entries, and where its last good line ends."""

    header: Record | None = None
    entries: list[Record] = field(default_factory=list)
    good_end: int = 0  # bytes up to the end of the last complete record (a torn tail lies beyond)
    needs_newline: bool = False  # the last record is whole but lost its newline


def _records(fh: BinaryIO, path: Path) -> Iterator[tuple[Record, int, bool]]:
    """(record, offset after it, ends with a newline) per line; stops quietly at a torn last line."""
    offset = 0
    for number in itertools.count(1):
        line = fh.readline(_MAX_LINE + 1)
        if not line:
            return
        if len(line) > _MAX_LINE:
            raise _damaged(path, number, f"a line longer than {_MAX_LINE} bytes")
        complete = line.endswith(b"\n")
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if not complete:
                return  # torn last line (a crash mid-write): ignored
            raise _damaged(path, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        problem = _header_problem(record) if number == 1 else _entry_problem(record)
        if problem:
            raise _damaged(path, number, problem)
        offset += len(line)
        yield record, offset, complete


def _header_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "the header is not a JSON object"
    files = record.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        return "the header's files is not a list of objects with a path"
    if not isinstance(record.get("kind", ""), str):
        return "the header's kind is not text"
    return None


def _entry_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or type(record.get("index")) is not int:
        return "not a batch entry (a JSON object with an integer index)"
    if "summary" in record and not isinstance(record["summary"], dict):
        return "a summary line whose summary is not a JSON object"
    if not isinstance(record.get("status", ""), str):
        return "a batch entry whose status is not text"
    return None


def _scan(fh: BinaryIO, path: Path) -> _Scan:
    scan = _Scan()
    for record, offset, complete in _records(fh, path):
        if scan.header is None:
            scan.header = record
        else:
            scan.entries.append(record)
        scan.good_end, scan.needs_newline = offset, not complete
    return scan


def _open_for_reading(path: Path) -> BinaryIO:
    """The log opened for reading; a LogError if it is missing, not a file, or unreadable."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise LogError(f"{path}: not a file, so not a progress log.", "Check the path.")
        return open(path, "rb")  # noqa: SIM115 (the caller closes it)
    except FileNotFoundError:
        raise LogError(f"{path}: no such progress log.", "Check the path.") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read the progress log ({exc.strerror or exc}).") from None


def iter_log(path: Path) -> Iterator[Record]:
    """The header, then each entry, read line by line (a log of any size in little memory).

    Raises LogError as `read_log` does (a file without a header line included)."""
    path = Path(path)
    with _open_for_reading(path) as fh:
        try:
            first = True
            for record, _, _ in _records(fh, path):
                first = False
                yield record
        except OSError as exc:
            raise LogError(f"{path}: cannot read the progress log ({exc.strerror or exc}).") from None
    if first:
        raise _damaged(path, 1, "no header line")


def read_log(path: Path) -> tuple[Record, list[Record]]:
    """Header and batch entries of a log; a torn last line is ignored.

    Anything else that is wrong (not JSON, random bytes, a header that is not an object, a
    line over 64 MiB) is one LogError naming the file and the line."""
    records = iter_log(path)
    header = next(records)
    return header, list(records)


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
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
        except OSError as exc:
            raise WriteFailed.from_os_error(path, exc) from exc

    @classmethod
    def open(
        cls,
        path: Path,
        header: Record,
        *,
        restart: bool = False,
        match_keys: Sequence[str] = (),
        state_dir: Path | None = None,
    ) -> RunLog:
        """Lock the log; resume it if it matches `header` on `match_keys`, else refuse.

        Give `state_dir` when t360 named the log itself (not `--log`): a symbolic link on
        the way to it, or as the log or its lock, is refused (`UnsafePath`, SPEC 11)."""
        path = Path(path)
        if state_dir is not None:
            refuse_symlink(path, "progress log", state_dir)
            refuse_symlink(LogLock(path).path, "lock file", state_dir)
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
        elif path.exists() and stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device is only written to
            with open(path, "rb") as fh:
                scan = _scan(fh, path)
            if scan.header is not None:
                _check_header(path, scan.header, header, match_keys)
                log = cls(path, scan.header, scan.entries, lock)
                log._repair(scan)
                return log
            if path.stat().st_size:  # bytes without a whole line: not ours to overwrite
                raise _damaged(path, 1, "no header line")
        write_user_file(path, orjson.dumps(header) + b"\n", PRIVATE)
        log = cls(path, header, [], lock)
        log.set_aside = aside
        return log

    def _repair(self, scan: _Scan) -> None:
        """Cut a torn last line off (in place), and end a whole last line that lost its newline."""
        try:
            if os.fstat(self._fileno()).st_size > scan.good_end:
                os.truncate(self.path, scan.good_end)
            if scan.needs_newline:
                self._write(b"\n")
        except OSError as exc:
            self.close()
            raise WriteFailed.from_os_error(self.path, exc) from exc

    def _fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: the progress log is closed")
        return self._fd

    def _write(self, data: bytes) -> None:
        fd = self._fileno()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)

    def append(self, entry: Record) -> None:
        """Write one batch line, flushed and fsynced; an OSError (a full disk) is `WriteFailed`.

        A line that could not be written whole is cut off again, so the log stays readable."""
        if type(entry.get("index")) is not int:
            raise ValueError("a progress log entry needs an integer 'index'")
        fd = self._fileno()
        start = os.fstat(fd).st_size
        try:
            self._write(orjson.dumps(entry) + b"\n")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise WriteFailed.from_os_error(self.path, exc) from exc
        self.entries.append(entry)

    def close(self) -> None:
        """Close the file and release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._lock.release()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
