"""Everything the user sees: a progress bar and a summary table on a terminal, plain
lines off a terminal (cron). Implements run.Observer."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # pyarrow only once a command runs: cli.main() picks its allocator first
    from t360cli.tally import Counts

PLAIN_EVERY_S = 10.0

SUMMARY_ROWS = [
    ("rows_read", "rows read"),
    ("rows_valid", "valid"),
    ("rows_rejected", "rejected"),
    ("rows_filtered", "filtered (where)"),
    ("rows_duplicate", "duplicates skipped"),
    ("records_valid", "records valid"),
    ("records_sent", "records sent"),
    ("batches_total", "batches"),
    ("batches_sent", "batches acknowledged"),
    ("batches_failed", "batches failed"),
    ("batches_skipped", "batches already sent (resumed)"),
    ("retries", "retries"),
    ("unattributed_customers", "customers without tracking_data"),
]


class Terminal:
    """The terminal behind one object; tests pass their own streams and is_tty."""

    def __init__(
        self,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        is_tty: bool | None = None,
        quiet: bool = False,
        verbose: bool = False,
        width: int | None = None,
    ) -> None:
        self.out_stream = out or sys.stdout
        self.is_tty = self.out_stream.isatty() if is_tty is None else is_tty
        self.out = Console(
            file=self.out_stream, force_terminal=self.is_tty, width=width, highlight=False, soft_wrap=not self.is_tty
        )
        self.err = Console(file=err or sys.stderr, highlight=False, width=width, soft_wrap=True)
        self.quiet, self.verbose = quiet, verbose
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.retries = 0
        self.started = time.monotonic()
        self.last_plain = self.started
        self.dry_run = True

    # -- Observer ---------------------------------------------------------------
    def start(self, title: str, total_bytes: int) -> None:
        self.started = self.last_plain = time.monotonic()
        self.dry_run = title.startswith("validating")
        if self.quiet:
            return
        if not self.is_tty:
            self.out.print(f"t360: {title}", markup=False)
            return
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.out,
            transient=True,
        )
        self.task = self.bar.add_task(escape(title[:40]), total=None, stats="")
        self.bar.start()

    def expect_rows(self, rows: int | None) -> None:
        """An estimate of the rows to read, for the bar's ETA (terminal only)."""
        if self.bar is not None and self.task is not None and rows:
            self.bar.update(self.task, total=rows)

    def progress(self, counts: Counts, bytes_done: int | None = None) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        stats = f"rows {counts.rows_read:,}  rejected {counts.rows_rejected:,}"
        if not self.dry_run:
            stats += (
                f"  sent {counts.records_sent:,}  requests {counts.batches_sent + counts.batches_failed:,}"
                f"  retries {self.retries:,}  {counts.records_sent / elapsed:,.0f} rec/s"
            )
        else:
            stats += f"  {counts.rows_read / elapsed:,.0f} rows/s"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, stats=stats, completed=counts.rows_read)
        elif not self.quiet and not self.is_tty and time.monotonic() - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = time.monotonic()
            self.out.print(f"t360: {stats}", markup=False)

    def retry(self, label: str) -> None:
        self.retries += 1
        if self.verbose and not self.is_tty:
            self.out.print(f"t360: retrying after {label}", markup=False)

    def note(self, text: str) -> None:
        self.err.print(text, markup=False)

    def finish(self, report: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.quiet:
            return
        if self.is_tty:
            self.out.print(summary_table(report))
        else:
            for line in summary_lines(report):
                self.out.print(line, markup=False)

    # -- messages -----------------------------------------------------------------
    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False)

    def print(self, text: str = "", markup: bool = False) -> None:
        self.out.print(text, markup=markup)

    def print_json(self, text: str) -> None:
        self.out_stream.write(text if text.endswith("\n") else text + "\n")


def _visible(report: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = []
    for key, label in SUMMARY_ROWS:
        value = report.get(key)
        if value is None or (
            report.get("dry_run")
            and key in ("records_sent", "batches_sent", "batches_failed", "batches_skipped", "retries")
        ):
            continue
        rows.append((label, f"{value:,}"))
    if report.get("http_status_counts"):
        rows.append(("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(report["http_status_counts"].items()))))
    for key in ("rejects", "log"):
        if report.get(key):
            rows.append((key, report[key]))
    rows.append(("time", f"{report.get('duration_s', 0):.2f} s"))
    return rows


def _what(report: dict[str, Any]) -> str:
    return "dry run" if report.get("dry_run") else "upload"


def summary_table(report: dict[str, Any]) -> Table:
    title = f"t360 {_what(report)}: {report.get('kind')} (exit {report.get('exit_code')})"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in _visible(report):
        table.add_row(label, Text(str(value)))  # file names are not markup
    return table


def summary_lines(report: dict[str, Any]) -> list[str]:
    head = f"t360: {_what(report)} of {report.get('kind')} finished, exit {report.get('exit_code')}"
    return [head] + [f"t360: {label}: {value}" for label, value in _visible(report)]
