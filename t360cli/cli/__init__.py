"""The `t360` command line: one thin function per command (send.py, tools.py), the app and
the options they share in app.py; errors become one sentence and an exit code in one place."""

from __future__ import annotations

import os
import sys

from t360cli.cli import job_cmd, ledger_cmd, send, tools
from t360cli.cli.app import app

__all__ = ["app", "job_cmd", "ledger_cmd", "main", "send", "tools"]


def main() -> None:
    # Arrow's default allocator (mimalloc) keeps freed pages: ~60 MB more peak RSS on a
    # 1M-row file than jemalloc, which gives them back (bench/validate.py). Linux wheels
    # ship jemalloc; a user's own ARROW_DEFAULT_MEMORY_POOL wins.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    try:
        app(prog_name="t360")
        code: object = 0
    except SystemExit as done:  # typer ends every command this way
        code = done.code
    # Leave without the interpreter's teardown: it resets the signal handlers, and a SIGTERM
    # in that last moment would kill the process (exit -15) after the run said 0 or 130.
    # Every file t360 writes is closed by now; only the standard streams need a flush.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    if isinstance(code, str):  # sys.exit("message"), as Python itself would show it
        os.write(2, code.encode() + b"\n")
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
