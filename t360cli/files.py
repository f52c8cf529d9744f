"""Every whole file t360 writes, written one way (SPEC 11, STYLE habit 12).

- `write_atomic` puts the bytes in a temporary file beside the target, flushes and fsyncs
  it, sets its mode and renames it over the target (`os.replace`), so a reader sees the
  old file or the new one, never half of one.
- `write_user_file` is for a path the user names (`--report`, `--rejects`, `-o`): a
  symlink or something that is not a regular file (a FIFO, a terminal) is written
  through, in place, as a shell redirection would; a regular or absent file is replaced
  atomically.
- `refuse_symlink` guards the files t360 names itself under `state_dir`.

An OSError while writing becomes `WriteFailed`, naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from t360cli.errors import ExitCode, T360Error

ORDINARY = 0o666  # before the umask: what a shell redirection creates
PRIVATE = 0o600  # files that hold customer data (SPEC 11)

_HINTS = {
    errno.ENOSPC: "Free some disk space, then run the same command again.",
    errno.EDQUOT: "Free some disk space (the disk quota is full), then run the same command again.",
    errno.EACCES: "Check the permissions of the folder, or choose another path.",
    errno.EPERM: "Check the permissions of the folder, or choose another path.",
    errno.EROFS: "The file system is read-only: choose another path.",
}
_DEFAULT_HINT = "Check the path, or choose another one."
_LINK_HINT = "t360 never follows a symbolic link inside state_dir; remove the link, or set state_dir to a real folder."


class WriteFailed(T360Error):
    """A file could not be written: `path` and `cause` (the system's words, e.g. "No space left on device")."""

    def __init__(self, path: Path, cause: str, hint: str | None = None) -> None:
        super().__init__(f"cannot write {path}: {cause}.", hint)
        self.path = path
        self.cause = cause

    @classmethod
    def from_os_error(cls, path: Path, exc: OSError) -> WriteFailed:
        cause = exc.strerror or str(exc) or type(exc).__name__
        return cls(path, cause, _HINTS.get(exc.errno or 0, _DEFAULT_HINT))


class UnsafePath(T360Error):
    """A file t360 names itself under state_dir is, or lies under, a symbolic link."""

    exit_code = ExitCode.USAGE


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`; its parent folders are created.

    `mode=None` gives an ordinary file (0o666 less the umask); a number gives exactly
    that mode (`PRIVATE`, 0o600, for customer data). On any failure the target is left
    as it was, no temporary file remains, and an OSError is raised as `WriteFailed`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path, ORDINARY if mode is None else PRIVATE)
    except FileExistsError as exc:
        if path.parent.exists() and not path.parent.is_dir():  # what mkdir says of a file in the way
            hint = f"{path.parent} is a file, not a folder: choose another path."
            raise WriteFailed(path, "Not a directory", hint) from exc
        raise WriteFailed.from_os_error(path, exc) from exc
    except OSError as exc:
        raise WriteFailed.from_os_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # exactly `mode`, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WriteFailed.from_os_error(path, exc) from exc
        raise
    _fsync_dir(path.parent)


def write_user_file(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a path the user named, as `> path` in a shell would treat it.

    A symlink (dangling included: its target is created) or an existing non-regular file
    (a FIFO, a character device) is opened and written through in place, never replaced.
    A regular or absent file is replaced atomically with `write_atomic(path, data, mode)`.
    `mode` applies to a file this call creates; an existing file keeps its mode.
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise WriteFailed.from_os_error(path, exc) from exc
    if info is None or stat.S_ISREG(info.st_mode):
        write_atomic(path, data, mode)
    else:
        _write_through(path, data, ORDINARY if mode is None else mode)


def _write_through(path: Path, data: bytes, mode: int) -> None:
    """Open `path` (following a link) for writing, truncate it if it is a file, write it all."""
    created = not path.exists()  # a dangling link: its target is created
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY, mode)
    except OSError as exc:
        raise WriteFailed.from_os_error(path, exc) from exc
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(os.path.realpath(path))
        raise WriteFailed.from_os_error(path, exc) from exc
    finally:
        os.close(fd)


def refuse_symlink(path: Path, what: str, state_dir: Path | None = None) -> None:
    """Raise `UnsafePath` if `path`, or a folder between `state_dir` and it, is a symlink.

    For the files t360 names itself (progress logs, locks, rejects, the ledger): they are
    never followed through a link (SPEC 11). `state_dir` itself may be a link (the user
    chose it); without `state_dir`, or for a path outside it, only `path` is checked.
    Parts that do not exist yet are fine: t360 creates them.
    """
    path = Path(path)
    candidates = [path]
    if state_dir is not None:
        root = Path(state_dir)
        with contextlib.suppress(ValueError):
            below = path.relative_to(root).parts[:-1]
            candidates += [root.joinpath(*below[: n + 1]) for n in range(len(below))]
    for candidate in candidates:
        if candidate.is_symlink():
            where = "it is" if candidate == path else f"{candidate} is"
            raise UnsafePath(
                f"refusing the {what} {path}: {where} a symbolic link.",
                _LINK_HINT,
            )


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new, empty, hidden file beside `path` (O_EXCL: never one that exists); (fd, its path)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free name for a temporary file beside {path.name}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; best effort (some systems cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
