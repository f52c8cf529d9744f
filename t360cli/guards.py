"""Guards checked before anything is sent (SPEC 10): `--max-rejects`, `--min-rows`, and the
warning for a run that reads no data row or whose `where:` filters every row."""

from __future__ import annotations

import math
from dataclasses import dataclass

from t360cli.errors import ExitCode, TooFewRows, TooManyRejects, UsageError
from t360cli.tally import Counts

WhereSeen = dict[str, list[tuple[str, int]]]  # per where column, the values it filtered most often


@dataclass(frozen=True)
class RejectLimit:
    """--max-rejects: a number of rows, or a percentage of the rows read."""

    text: str
    value: float
    percent: bool

    def exceeded(self, counts: Counts) -> bool:
        allowed = self.value * counts.rows_read / 100 if self.percent else self.value
        return counts.rows_rejected > allowed

    def refusal(self, counts: Counts, rejects: str | None, sent_nothing: bool) -> TooManyRejects:
        """The one sentence for a run stopped by --max-rejects (validate and upload)."""
        tail = "; nothing was sent." if sent_nothing else "."
        return TooManyRejects(
            f"{counts.rows_rejected} of {counts.rows_read} rows are invalid, more than --max-rejects {self.text}{tail}",
            _see(rejects),
        )


def parse_max_rejects(text: str | None) -> RejectLimit | None:
    """`N` (a whole number of rows) or `P%` (a percentage of the rows read), finite and >= 0."""
    if text is None:
        return None
    raw = text.strip()
    percent = raw.endswith("%")
    examples = "Examples: --max-rejects 100, --max-rejects 2%."
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise UsageError(f"--max-rejects '{text}' is not a number or a percentage.", examples)
    if value < 0 or math.isinf(value) or (not percent and value != int(value)):
        raise UsageError(f"--max-rejects '{text}' must be a whole number or a percentage >= 0.", examples)
    return RejectLimit(text, value, percent)


def too_few_rows(counts: Counts, min_rows: int) -> bool:
    """--min-rows N: fewer than N rows valid (to send)."""
    return min_rows > 0 and counts.rows_valid < min_rows


def min_rows_refusal(counts: Counts, min_rows: int, rejects: str | None, sent_nothing: bool) -> TooFewRows:
    tail = "; nothing was sent." if sent_nothing else "."
    return TooFewRows(
        f"{counts.rows_valid} of {counts.rows_read} rows are valid, fewer than --min-rows {min_rows}{tail}",
        _see(rejects),
    )


def _see(rejects: str | None) -> str | None:
    return f"See the rejects file {rejects}." if rejects else None


def empty_run_warning(counts: Counts, files: list[str], where_seen: WhereSeen) -> str | None:
    """A run that read no data row, or whose `where:` filtered every row, says so (SPEC 10)."""
    if counts.rows_read == 0:
        return f"warning: no data row was read from {', '.join(files)}."
    if counts.rows_filtered < counts.rows_read:
        return None
    seen = "; ".join(
        f"{column}: " + ", ".join(f"{value or '(empty)'} ({count})" for value, count in values)
        for column, values in where_seen.items()
        if values
    )
    tail = f"; values seen most often: {seen}" if seen else ""
    return f"warning: where: filtered all {counts.rows_read} rows{tail}."


def exit_code(counts: Counts, dry_run: bool) -> ExitCode:
    """SPEC 7: failed batches -> 4 (wins over 1); rejected rows with delivery complete -> 1."""
    if not dry_run and counts.batches_failed:
        return ExitCode.INCOMPLETE
    return ExitCode.PARTIAL if counts.rows_rejected else ExitCode.OK
