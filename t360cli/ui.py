"""Everything the user sees: a progress bar and a summary table on a terminal, plain
lines off a terminal (cron). `Terminal` implements run.Observer; it also renders the
results of `status`, `mapping init` and `demo`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # pyarrow only once a command runs: cli.main() picks its allocator first
    from t360cli.demo import DemoResult, DemoUpload
    from t360cli.ledger_ops import Held, Seeded
    from t360cli.observer import RowEstimate
    from t360cli.replay import RunStatus
    from t360cli.report import Report
    from t360cli.runs import RunInfo
    from t360cli.starter import StarterMapping
    from t360cli.tally import Counts

PLAIN_EVERY_S = 10.0


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
        self.report: Report | None = None  # the last one finish() was given (`--report -` prints it)

    # -- Observer ---------------------------------------------------------------
    def start(self, title: str, dry_run: bool = False, estimate_rows: RowEstimate | None = None) -> None:
        self.started = self.last_plain = time.monotonic()
        self.dry_run = dry_run
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
        rows = estimate_rows() if estimate_rows is not None else None  # for the ETA: counted only here
        self.task = self.bar.add_task(escape(title[:40]), total=rows or None, stats="")
        self.bar.start()

    def progress(self, counts: Counts) -> None:
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

    def finish(self, report: Report) -> None:
        self.report = report
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.quiet:
            return
        if self.is_tty:
            self.out.print(summary_table(report))
            for line in why_lines(report):
                self.out.print(line, markup=False)
        else:
            for line in summary_lines(report):
                self.out.print(line, markup=False)

    # -- messages -----------------------------------------------------------------
    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False)

    def print(self, text: str = "") -> None:
        self.out.print(text, markup=False)

    def print_json(self, text: str) -> None:
        self.out_stream.write(text if text.endswith("\n") else text + "\n")

    # -- results ------------------------------------------------------------------
    def show_status(self, status: RunStatus, as_json: bool) -> None:
        if as_json:
            self.print_json(orjson.dumps(status.to_json(), option=orjson.OPT_INDENT_2).decode())
            return
        for line in status_lines(status):
            self.print(line)

    def show_runs(self, runs_dir: Path, runs: list[RunInfo], as_json: bool) -> int:
        """`t360 status` without LOG: a table on a terminal, aligned plain lines otherwise; then
        an error line per log that could not be read. The number of those."""
        self._list_runs(runs_dir, runs, as_json)
        unreadable = [run for run in runs if run.state == "unreadable"]
        for run in unreadable:  # the reason names the file, except for a symlink
            reason = run.reason or "cannot be read"
            self.error(reason if reason.startswith(str(run.path)) else f"{run.path}: {reason}")
        return len(unreadable)

    def _list_runs(self, runs_dir: Path, runs: list[RunInfo], as_json: bool) -> None:
        if as_json:
            self.print_json(orjson.dumps([run_json(run) for run in runs], option=orjson.OPT_INDENT_2).decode())
        elif not runs:
            self.print(f"no runs in {runs_dir} yet.")
        elif self.is_tty:
            table = Table(title=f"t360 runs in {runs_dir} (newest first)")
            for name in RUN_COLUMNS:
                table.add_column(name, justify="right" if name in ("rows", "records") else "left")
            for run in runs:
                table.add_row(*(Text(cell) for cell in run_cells(run)))
            self.out.print(table)
        else:
            for line in run_lines(runs):
                self.print(line)

    def show_fields(self, kind: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """`t360 fields`: the guide's fields of one kind, a table on a terminal."""
        head = ("field", "type", "required", "limits and notes")
        if self.is_tty:
            table = Table(title=f"Track360 fields of {kind} (the guide's section 09)")
            for name in head:
                table.add_column(name)
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))
            self.out.print(table)
            return
        width = max(len(row[0]) for row in rows)
        self.print(f"{kind}:")
        for name, kind_of, required, notes in rows:
            self.print(f"  {name:<{width}}  {kind_of:<8}  {required or '-':<8}  {notes}".rstrip())

    def show_starter(self, starter: StarterMapping) -> None:
        if starter.written_to:
            self.note(f"wrote {starter.written_to}")
        else:
            self.print_json(starter.text)
        if starter.unmapped:
            self.note(f"left unmapped: {', '.join(starter.unmapped)}")

    def show_ledger_stats(self, held: Held, as_json: bool) -> None:
        """`t360 ledger stats`: per target and kind, `*` marking this target; a table on a terminal."""
        if as_json:
            self.print_json(orjson.dumps(held.to_json(), option=orjson.OPT_INDENT_2).decode())
        elif self.is_tty:
            table = Table(title=held.title())
            for name in held.HEAD:
                table.add_column(name, justify="right" if name == "count" else "left")
            for row in held.rows():
                table.add_row(*(Text(cell) for cell in row))
            self.out.print(table)
        else:
            for line in held.lines():
                self.print(line)

    def show_seeded(self, seeded: Seeded) -> None:
        for note in seeded.notes:
            self.note(note)
        for line in seeded.lines():
            self.print(line)


def _count_rows(report: Report) -> list[tuple[str, int | None]]:
    """(label, count) in summary order; a dry run leaves out what only delivery counts."""
    counts = report.counts
    rows = [  # (label, count, counted by delivery only)
        ("rows read", counts.rows_read, False),
        ("valid", counts.rows_valid, False),
        ("rejected", counts.rows_rejected, False),
        ("filtered (where)", counts.rows_filtered, False),
        ("duplicates skipped", counts.rows_duplicate, False),
        ("unchanged since sent (ledger)", counts.rows_unchanged or None, False),  # shown when the ledger skipped some
        ("records valid", counts.records_valid, False),
        ("records sent", counts.records_sent, True),
        ("batches", counts.batches_total, False),
        ("batches acknowledged", counts.batches_sent, True),
        ("batches failed", counts.batches_failed, True),
        ("batches already sent (resumed)", counts.batches_skipped, True),
        ("retries", counts.retries, True),
        ("customers without tracking_data", counts.unattributed_customers, False),
        ("activities for customers never sent", counts.orphan_activities, False),
        *((f"customers without {name}", missing, False) for name, missing in (counts.customers_missing or {}).items()),
    ]
    return [(label, value) for label, value, delivery_only in rows if not (delivery_only and report.dry_run)]


def _visible(report: Report) -> list[tuple[str, str]]:
    rows = [(label, f"{value:,}") for label, value in _count_rows(report) if value is not None]
    statuses = report.counts.http_status_counts
    if statuses:
        rows.append(("HTTP statuses", ", ".join(f"{label}: {seen}" for label, seen in sorted(statuses.items()))))
    for label, path in (("rejects", report.rejects), ("log", report.log)):
        if path:
            rows.append((label, path))
    rows.append(("time", f"{report.duration_s:.2f} s"))
    return rows


def _what(report: Report) -> str:
    return "dry run" if report.dry_run else "upload"


def summary_table(report: Report) -> Table:
    title = f"t360 {_what(report)}: {report.kind} (exit {report.exit_code})"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in _visible(report):
        table.add_row(label, Text(value))  # file names are not markup
    return table


def summary_lines(report: Report) -> list[str]:
    head = f"t360: {_what(report)} of {report.kind} finished, exit {report.exit_code}"
    body = [f"t360: {label}: {value}" for label, value in _visible(report)]
    return [head, *body, *(f"t360: {line}" for line in why_lines(report))]


def cause_lines(causes: dict[str, int]) -> list[str]:
    """`3 x cannot connect to ... (connection refused)`, the most frequent first."""
    return [f"{seen:,} x {cause}" for cause, seen in sorted(causes.items(), key=lambda item: (-item[1], item[0]))]


def why_lines(report: Report) -> list[str]:
    """SPEC 10: the five most frequent reject reasons and the distinct errors of failed batches."""
    reasons = [f"reject reason: {reason.text()}" for reason in report.top_reject_reasons]
    return reasons + [f"failed batches: {line}" for line in cause_lines(report.failed_causes)]


def _count(value: object) -> str:
    return f"{value:,}" if type(value) is int else "-"


def status_lines(status: RunStatus) -> list[str]:
    """`t360 status LOG` in plain text; a run that is not complete ends with the command that finishes it."""
    files = ", ".join(f"{entry.path} ({entry.size:,} bytes)" for entry in status.files)
    lines = [
        f"log: {status.log_path}",
        f"kind: {status.kind}  started: {status.started_at}  host: {status.host or '-'}",
        f"files: {files}",
        f"state: {status.state}",
    ]
    last = status.last_summary
    if status.state == "interrupted":  # never "0 records pending", never replay --failed: a rerun resumes
        return [
            *lines,
            f"batches: {status.batches_acknowledged:,} acknowledged ({status.records_acknowledged:,} records)",
            f"interrupted after {status.records_acknowledged:,} records acknowledged; "
            "rerun the same command to resume:",
            f"  {status.command}",
        ]
    lines.append(
        f"batches: {status.batches_acknowledged:,} acknowledged, {status.batches_failed:,} failed "
        f"({status.records_pending:,} records pending)"
    )
    if last is not None:
        lines.append(
            f"last run: exit {last.get('exit_code')}, rows read {_count(last.get('rows_read'))}, "
            f"rejected {_count(last.get('rows_rejected'))}, records sent {_count(last.get('records_sent'))}"
        )
        lines += [f"reject reason: {_reason_text(reason)}" for reason in _reasons(last)]
    lines += [f"failed batches: {line}" for line in cause_lines(status.failed_causes)]
    if status.state == "incomplete":
        lines += ["to finish it (a rerun resumes):", f"  {status.command}"]
        if status.batches_failed:
            lines.append(f"to re-send the failed batches: t360 replay {status.log_path} --failed")
    elif status.state == "rejects" and last is not None and last.get("rejects"):
        lines.append(f"delivery is complete; the rejected rows are in {last.get('rejects')}")
    return lines


def _reasons(summary: dict[str, object]) -> list[dict[str, object]]:
    found = summary.get("top_reject_reasons")
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def _reason_text(item: dict[str, object]) -> str:
    first = f"{item.get('first_file')} line {item.get('first_line')}"
    return f"{_count(item.get('count'))} x {item.get('reason')} (first: {first})"


RUN_COLUMNS = ("name", "kind", "state", "when", "rows", "records")


def run_cells(run: RunInfo) -> list[str]:
    state = f"{run.state} ({run.reason})" if run.reason else run.state
    return [run.name, run.kind or "-", state, run.when, _count(run.rows_read), _count(run.records_acknowledged)]


def run_lines(runs: list[RunInfo]) -> list[str]:
    """The runs as aligned plain columns under a header line (cron, pipes)."""
    rows = [list(RUN_COLUMNS), *(run_cells(run) for run in runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUN_COLUMNS) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]) for row in rows]


def run_json(run: RunInfo) -> dict[str, object]:
    return {
        "name": run.name,
        "log": str(run.path),
        "kind": run.kind,
        "state": run.state,
        "when": run.when,
        "rows_read": run.rows_read,
        "records_acknowledged": run.records_acknowledged,
        "exit_code": run.exit_code,
        "reason": run.reason,
    }


class DemoView:
    """`t360 demo` on the terminal: implements demo.DemoObserver, then shows the result."""

    def __init__(self, term: Terminal) -> None:
        self.term = term

    def sandbox_started(self, url: str, state_dir: Path) -> None:
        self.term.print(f"t360 demo: sandbox listening on {url}; state in {state_dir}/")

    def uploaded(self, upload: DemoUpload) -> None:
        counts, report = upload.report.counts, upload.report
        line = (
            f"  {upload.data} -m {upload.mapping}: read {counts.rows_read}, valid {counts.rows_valid}, "
            f"rejected {counts.rows_rejected}, filtered {counts.rows_filtered}, duplicate {counts.rows_duplicate}"
            f" -> sent {counts.records_sent} records"
        )
        self.term.print(line + (f"\n      rejects: {report.rejects}" if report.rejects else ""))

    def job_line(self, text: str) -> None:  # the demo's nightly job: a line per feed
        self.term.print(text)

    def finish(self, result: DemoResult) -> int:
        """What the sandbox received, then whether every sample went through; the exit code."""
        received = result.received
        self.term.print(f"\n== what the sandbox received: {orjson.dumps(received.stats).decode()}")
        by_event = ", ".join(f"{name} {seen}" for name, seen in received.by_event.items())
        self.term.print("activities by eventname: " + by_event)
        for record in received.examples:
            self.term.print("  " + orjson.dumps(record).decode())
        if result.unclean:
            self.term.error(f"demo: {', '.join(result.unclean)} did not upload cleanly.")
            return 1
        self.term.print(
            "\nEvery row is accounted for: sent, rejected (reasons in each rejects file above), "
            "filtered by where:, or a duplicate."
        )
        return 0
