"""What a run tells its watcher: the Observer protocol (ui.Terminal implements it; tests
may keep a list) and the row estimate a progress bar asks for."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from t360cli.report import Report
    from t360cli.tally import Counts

RowEstimate = Callable[[], int | None]  # rows to read, counted only if the observer asks


class Observer(Protocol):
    """What a run tells its watcher (ui.Terminal on the command line; tests may keep a list)."""

    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None: ...
    def progress(self, counts: Counts) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: Report) -> None: ...


class NullObserver:
    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None: ...
    def progress(self, counts: Counts) -> None: ...
    def retry(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: Report) -> None: ...


def estimate_rows(paths: list[Path]) -> int | None:
    """Line count of plain text inputs (a few ms per 100 MB); None if any is not text."""
    total = 0
    for path in paths:
        if path.suffix.lower() not in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson"):
            return None
        with open(path, "rb") as fh:
            total += sum(block.count(b"\n") for block in iter(partial(fh.read, 1 << 20), b""))
    return total
