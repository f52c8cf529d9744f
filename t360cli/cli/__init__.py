"""The `t360` command line: one thin function per command (send.py, tools.py), the app and
the options they share in app.py; errors become one sentence and an exit code in one place."""

from __future__ import annotations

import os
import sys

from t360cli.cli import send, tools
from t360cli.cli.app import app

__all__ = ["app", "main", "send", "tools"]


def main() -> None:
    # Arrow's default allocator (mimalloc) keeps freed pages: ~60 MB more peak RSS on a
    # 1M-row file than jemalloc, which gives them back (bench/validate.py). Linux wheels
    # ship jemalloc; a user's own ARROW_DEFAULT_MEMORY_POOL wins.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    app(prog_name="t360")
