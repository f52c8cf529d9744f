"""Benchmark `t360 validate` against the floor, in one run, on the same files.

    python bench/validate.py              # 200k and 1M rows, 3 interleaved rounds
    python bench/validate.py --rounds 5
    python bench/validate.py --quick      # 100k-row smoke run, one round
    python bench/validate.py --floor-only # the generator and the floor, without t360

Generates the files if missing (bench/gen.py), then runs every round: the floor
(bench/floor.py) on the big file, `t360 validate` on the big file, on the small file
and on the XLSX workbook, each as its own subprocess, timed (wall) and measured (peak
RSS, from os.wait4). Prints medians and checks each t360 report's counts against the
generator's `.expected.json`. Exit 0 when every run worked and every count matched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from gen import OUT, default_path  # noqa: E402

T360 = Path(sys.executable).parent / "t360"
COUNTS = ("rows_read", "rows_valid", "rows_rejected", "rows_filtered", "rows_duplicate")


@dataclass
class Run:
    wall: float  # seconds, process start to exit
    rss_kib: int  # peak resident set size (ru_maxrss, KiB on Linux)
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    label: str  # "floor" or "t360"
    path: Path
    rows: int
    mapping: Path | None = None


def measure(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> Run:
    """Run `cmd` to its end; its wall time and peak RSS. Killed after `timeout` seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            wall,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def ensure(kind: str, rows: int, seed: int) -> Path:
    """The generated file for (kind, rows), made now if it (or its expected counts) is missing."""
    path = default_path(kind, rows)
    if not (path.exists() and path.with_name(path.name + ".expected.json").exists()):
        subprocess.run(
            [sys.executable, str(BENCH / "gen.py"), kind, "--rows", str(rows), "--seed", str(seed), "-o", str(path)],
            check=True,
        )
    return path


def command(case: Case, report: Path) -> list[str]:
    if case.label == "floor":
        return [sys.executable, str(BENCH / "floor.py"), str(case.path)]
    return [str(T360), "validate", str(case.path), "-m", str(case.mapping), "--report", str(report)]


def check(case: Case, run: Run, report: Path) -> list[str]:
    """Problems with one run: a failed process, or t360 counts that differ from the expected."""
    if case.label == "floor":
        return [] if run.code == 0 else [f"floor exited {run.code}: {run.stderr[-800:]}"]
    if run.code not in (0, 1) or not report.exists():
        return [f"t360 validate {case.path.name} exited {run.code}: {run.stderr[-800:]}"]
    got = json.loads(report.read_text())
    want = json.loads(case.path.with_name(case.path.name + ".expected.json").read_text())
    keys = [k for k in (*COUNTS, "unattributed_customers") if k in want]
    return [f"{case.path.name}: {k} is {got.get(k)}, expected {want[k]}" for k in keys if got.get(k) != want[k]]


def run_rounds(
    cases: list, rounds: int, timeout: float, build=None, checker=None, prefix: str = "report-"
) -> tuple[dict, list[str]]:
    """Every case once per round, interleaved; the runs per case and the problems seen.
    `build(case, report)` gives the command and `checker(case, run, report)` the problems
    (default: this file's command and check; bench/mapping_power.py passes its own)."""
    build, checker = build or command, checker or check
    env = {**os.environ, "T360_STATE_DIR": str(OUT / "state")}
    runs: dict = {c: [] for c in cases}
    problems: list[str] = []
    width = max(len(c.label) for c in cases)
    for r in range(rounds):
        for case in cases:
            report = OUT / f"{prefix}{case.path.stem}.json"
            report.unlink(missing_ok=True)
            run = measure(build(case, report), env, timeout)
            print(
                f"  round {r + 1}: {case.label:{width}} {case.path.name:24} {run.wall:7.2f} s "
                f"{run.rss_kib / 1024:7.0f} MiB",
                flush=True,
            )
            runs[case].append(run)
            problems += [p for p in checker(case, run, report) if p not in problems]
    return runs, problems


def summarise(runs: dict[Case, list[Run]]) -> list[str]:
    """The closing table and the two ratios, as text lines."""
    lines = [f"{'':6}{'file':24}{'rows':>11}{'wall s':>9}{'rows/s':>11}{'peak RSS':>11}"]
    rate: dict[Case, float] = {}
    rss: dict[Case, float] = {}
    for case, rs in runs.items():
        wall = statistics.median(r.wall for r in rs)
        rate[case] = case.rows / wall
        rss[case] = statistics.median(r.rss_kib for r in rs) / 1024
        failed = any(r.code not in ((0,) if case.label == "floor" else (0, 1)) for r in rs)
        lines.append(
            f"{case.label:6}{case.path.name:24}{case.rows:>11,}{wall:>9.2f}"
            f"{rate[case]:>11,.0f}{rss[case]:>8.0f} MiB" + ("  FAILED" * failed)
        )
    floor = next((c for c in runs if c.label == "floor"), None)
    same = next((c for c in runs if c.label == "t360" and floor and c.path == floor.path), None)
    if floor and same:
        lines.append(
            f"throughput t360/floor on {floor.path.name}: {rate[same] / rate[floor]:.2f} (1.00 = as fast as the floor)"
        )
    csvs = sorted((c for c in runs if c.label == "t360" and c.path.suffix == ".csv"), key=lambda c: c.rows)
    if len(csvs) >= 2:
        lo, hi = csvs[0], csvs[-1]
        lines.append(
            f"t360 peak RSS {hi.rows:,} / {lo.rows:,} rows: {rss[hi]:.0f} / "
            f"{rss[lo]:.0f} MiB = {rss[hi] / rss[lo]:.2f} (1.00 = flat memory)"
        )
    return lines


def bench_args(
    doc: str, quick_help: str, argv: list[str] | None, extra: list[tuple[str, str]] = ()
) -> argparse.Namespace:
    """The options every bench script takes; `args.rounds` is resolved (3, or 1 with --quick)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    for flag, text in extra:
        ap.add_argument(flag, action="store_true", help=text)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = bench_args(__doc__, "100k rows, a 10k-row workbook", argv, [("--floor-only", "skip t360 (the floor alone)")])
    rounds = args.rounds
    if not args.floor_only and not T360.exists():
        print(f"{T360} not found: install the project (make venv) or use --floor-only.", file=sys.stderr)
        return 2
    sizes, xlsx_rows = ([100_000], 10_000) if args.quick else ([200_000, 1_000_000], 100_000)
    files = {n: ensure("activities", n, args.seed) for n in sizes}
    big = max(sizes)
    cases = [Case("floor", files[big], big)]
    if not args.floor_only:
        cases += [Case("t360", files[n], n, BENCH / "activities.yaml") for n in sorted(sizes, reverse=True)]
        cases.append(Case("t360", ensure("xlsx", xlsx_rows, args.seed), xlsx_rows, BENCH / "xlsx.yaml"))
    print(
        f"bench: {rounds} round(s), interleaved; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; medians of wall time, subprocess start to exit"
    )
    runs, problems = run_rounds(cases, rounds, args.timeout)
    print("\n".join(summarise(runs)))
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if not problems and not args.floor_only:
        print("counts: every t360 report matches the generator's expected counts")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
