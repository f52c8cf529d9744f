"""Every whole file t360 writes, written one way: atomically, with a chosen mode.

`write_atomic` puts the bytes in a temporary file beside the target, flushes and fsyncs
it, sets its mode and renames it over the target (`os.replace`), so a reader sees the old
file or the new one, never half of one (STYLE habit 12). SPEC 11's write-through for a
path that is a symlink or not a regular file (a FIFO, `/dev/stdout`) belongs here too,
as a branch taken before the temporary file is made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

ORDINARY = 0o666  # before the umask: what a shell redirection creates
PRIVATE = 0o600  # files that hold customer data (SPEC 11)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`; its parent folders are created.

    `mode=None` gives an ordinary file (0o666 less the umask); a number gives exactly
    that mode (`PRIVATE`, 0o600, for customer data). On any failure the target is left
    as it was and no temporary file remains.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path, ORDINARY if mode is None else PRIVATE)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # exactly `mode`, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new, empty, hidden file beside `path` (O_EXCL: never one that exists); (fd, its path)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free name for a temporary file beside {path.name}")


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
