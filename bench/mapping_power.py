"""Benchmark `aggregate:` and `events:` mappings against the validate floor, in one run.

    python bench/mapping_power.py              # 1M rows (and 200k for memory), 3 interleaved rounds
    python bench/mapping_power.py --rounds 5
    python bench/mapping_power.py --quick      # 100k rows (and 20k), one round

Each round runs, as separate processes timed from start to exit (peak RSS from os.wait4):
the floor (bench/floor.py) on the 1M-row activities CSV, as bench/validate.py does;
`t360 validate` of 1M closed trades rolled up by bench/trades.yaml (`aggregate:`, at most
20,000 groups whatever the rows: `gen.py trades_fixed`) and of the same on 200k rows; and
`t360 validate` of 1M wide daily rows expanded by bench/events.yaml (`events:`, three
events a row: `gen.py wide`). Prints medians, each t360 run's throughput relative to the
floor (target >= 0.35), and the aggregate's peak RSS at 200k and 1M rows (flat: the groups
are fixed, so memory must not grow with rows). Checks every report's counts, records
included, against the generator's `.expected.json`. Exit 0 when every run worked and every
count matched (the throughput target is reported, not enforced: shared machines are noisy).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from validate import T360, Run, bench_args, ensure, run_rounds  # noqa: E402

TARGET = 0.35  # t360 rows/s over floor rows/s
FLAT = 1.25  # peak RSS at 1M rows over 200k rows, at most
COUNTS = ("rows_read", "rows_valid", "rows_rejected", "rows_filtered", "rows_duplicate", "records_valid")


@dataclass(frozen=True)
class Case:
    label: str  # floor, aggregate, events
    path: Path
    rows: int
    mapping: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.label} {self.path.name}"


def command(case: Case, report: Path) -> list[str]:
    if case.mapping is None:
        return [sys.executable, str(BENCH / "floor.py"), str(case.path)]
    return [str(T360), "validate", str(case.path), "-m", str(case.mapping), "--report", str(report)]


def problems_of(case: Case, run: Run, report: Path) -> list[str]:
    """A failed process, or report counts that differ from the generator's."""
    if case.mapping is None:
        return [] if run.code == 0 else [f"floor exited {run.code}: {run.stderr[-800:]}"]
    if run.code not in (0, 1) or not report.exists():
        return [f"{case.name} exited {run.code}: {run.stderr[-800:]}"]
    got = json.loads(report.read_text())
    want = json.loads(case.path.with_name(case.path.name + ".expected.json").read_text())
    return [
        f"{case.name}: {k} is {got.get(k)}, expected {want[k]}" for k in COUNTS if k in want and got.get(k) != want[k]
    ]


def summarise(runs: dict[Case, list[Run]]) -> list[str]:
    lines = [f"{'':10}{'file':26}{'rows':>11}{'wall s':>9}{'rows/s':>11}{'peak RSS':>12}"]
    rate, rss = {}, {}
    for case, rs in runs.items():
        wall = statistics.median(r.wall for r in rs)
        rate[case], rss[case] = case.rows / wall, statistics.median(r.rss_kib for r in rs) / 1024
        lines.append(
            f"{case.label:10}{case.path.name:26}{case.rows:>11,}{wall:>9.2f}{rate[case]:>11,.0f}{rss[case]:>8.0f} MiB"
        )
    floor = next(c for c in runs if c.label == "floor")
    big = max(c.rows for c in runs)
    for case in (c for c in runs if c.mapping is not None and c.rows == big):
        ratio = rate[case] / rate[floor]
        verdict = "meets" if ratio >= TARGET else "BELOW"
        lines.append(f"throughput {case.label} / floor: {ratio:.2f} ({verdict} the {TARGET} target)")
    aggs = sorted((c for c in runs if c.label == "aggregate"), key=lambda c: c.rows)
    if len(aggs) >= 2:
        lo, hi = aggs[0], aggs[-1]
        ratio = rss[hi] / rss[lo]
        lines.append(
            f"aggregate peak RSS {hi.rows:,} / {lo.rows:,} rows: {rss[hi]:.0f} / {rss[lo]:.0f} MiB"
            f" = {ratio:.2f} ({'flat' if ratio <= FLAT else 'GROWS'}; 1.00 = flat memory)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = bench_args(__doc__, "100k rows (and 20k)", argv)
    rounds = args.rounds
    if not T360.exists():
        print(f"{T360} not found: install the project (make venv).", file=sys.stderr)
        return 2
    big, small = (100_000, 20_000) if args.quick else (1_000_000, 200_000)
    cases = [
        Case("floor", ensure("activities", big, args.seed), big),
        Case("aggregate", ensure("trades_fixed", big, args.seed), big, BENCH / "trades.yaml"),
        Case("aggregate", ensure("trades_fixed", small, args.seed), small, BENCH / "trades.yaml"),
        Case("events", ensure("wide", big, args.seed), big, BENCH / "events.yaml"),
    ]
    print(
        f"bench: {rounds} round(s), interleaved; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; medians of wall time, subprocess start to exit"
    )
    runs, problems = run_rounds(cases, rounds, args.timeout, command, problems_of, prefix="report-power-")
    print("\n".join(summarise(runs)))
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if not problems:
        print("counts: every t360 report matches the generator's expected counts and records")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
