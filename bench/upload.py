"""Benchmark `t360 upload` against the upload floor, in one run, to the same local sink.

    python bench/upload.py               # 1M rows (and 200k for memory), 3 interleaved rounds
    python bench/upload.py --rounds 5
    python bench/upload.py --quick       # 100k rows (and 20k), one round

Generates the files if missing (bench/gen.py) and starts two sinks (bench/sink.py, each
its own process): one answering at once, one after 20 ms. Every round runs, each as its
own subprocess, timed (wall) and measured (peak RSS, os.wait4): the floor
(bench/upload_floor.py) and `t360 upload --concurrency 4` on the big file to each sink,
and t360 on the small file to the fast sink. Prints medians: rows/s, t360/floor at 0 and
20 ms, t360's peak RSS on both files and their ratio. Each run is checked against the
sink's counters and (t360) its report and the generator's expected counts.
Exit 0 when every run worked and every check passed, 1 otherwise, 2 if t360 is missing.
"""

from __future__ import annotations

import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from validate import COUNTS, Run, bench_args, ensure, measure  # noqa: E402

T360 = Path(sys.executable).parent / "t360"
ENDPOINT = "/tracking/events/activities"
API_KEY = "bench-key"
INFLIGHT = 4
LATENCIES = (0, 20)  # ms of sink latency
TARGETS = {0: 0.50, 20: 0.80}  # t360/floor rows/s the project aims for
RSS_TARGET_MIB = 300


@dataclass(frozen=True)
class Case:
    label: str  # "floor" or "t360"
    path: Path
    rows: int
    latency: int  # ms


class Sink:
    """A bench/sink.py process; its URL and counters."""

    def __init__(self, latency_ms: int, timeout: float = 30.0) -> None:
        self.latency = latency_ms
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "sink.py"), "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"sink (latency {latency_ms} ms) did not start: {line!r}")
        self.url = f"http://127.0.0.1:{line}"

    def stats(self, reset: bool = False) -> dict[str, int]:
        """The sink's totals; `reset` restarts its max_pending figure."""
        url = self.url + "/stats" + ("?reset" if reset else "")
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def command(case: Case, url: str, report: Path) -> list[str]:
    if case.label == "floor":
        return [
            sys.executable,
            str(BENCH / "upload_floor.py"),
            str(case.path),
            "--url",
            url + ENDPOINT,
            "--inflight",
            str(INFLIGHT),
            "--api-key",
            API_KEY,
        ]
    return [
        str(T360),
        "upload",
        str(case.path),
        "-m",
        str(BENCH / "activities.yaml"),
        "--base-url",
        url,
        "--concurrency",
        str(INFLIGHT),
        "--report",
        str(report),
    ]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What the sink received during one run (max_pending: the most at once)."""
    got = {k: after[k] - before[k] for k in ("requests", "bytes", "records")}
    return {**got, "max_pending": after["max_pending"]}


def check_floor(case: Case, run: Run, sunk: dict[str, int]) -> list[str]:
    """Problems of a floor run: its exit, its own tally against the file and the sink."""
    if run.code != 0:
        return [f"floor {case.path.name} @{case.latency} ms exited {run.code}: {run.stderr[-800:]}"]
    tally = json.loads(run.stdout.strip().splitlines()[-1])
    want = {"rows": case.rows, "requests": sunk["requests"], "bytes": sunk["bytes"]}
    problems = [
        f"floor {case.path.name} @{case.latency} ms: {k} is {tally[k]}, expected {v}"
        for k, v in want.items()
        if tally[k] != v
    ]
    if sunk["records"] != case.rows:
        problems.append(f"floor {case.path.name}: the sink counted {sunk['records']} records, expected {case.rows}")
    return problems


def check_t360(case: Case, run: Run, report: Path, sunk: dict[str, int]) -> list[str]:
    """Problems of a t360 run: exit, report counts (expected, balanced, all sent) vs the sink."""
    name = f"t360 {case.path.name} @{case.latency} ms"
    if run.code not in (0, 1) or not report.exists():
        return [f"{name} exited {run.code}: {run.stderr[-800:]}"]
    got = json.loads(report.read_text())
    want = json.loads(case.path.with_name(case.path.name + ".expected.json").read_text())
    problems = [
        f"{name}: {k} is {got.get(k)}, expected {want[k]}" for k in COUNTS if k in want and got.get(k) != want[k]
    ]
    if got["rows_read"] != sum(got[k] for k in COUNTS[1:]):
        problems.append(f"{name}: the report's row counts do not add up to rows_read")
    checks = {
        "records_sent (vs records_valid)": (got["records_sent"], got["records_valid"]),
        "batches_failed": (got["batches_failed"], 0),
        "records the sink counted (vs records_sent)": (sunk["records"], got["records_sent"]),
        "POSTs the sink got (vs the report's HTTP statuses)": (
            sunk["requests"],
            sum(got["http_status_counts"].values()),
        ),
    }
    problems += [f"{name}: {k} is {a}, expected {b}" for k, (a, b) in checks.items() if a != b]
    return problems


def run_case(case: Case, sink: Sink, timeout: float) -> tuple[Run, dict[str, int], list[str]]:
    """One measured run in a fresh state dir; its run, what the sink got, and problems."""
    tmp = Path(tempfile.mkdtemp(prefix="t360-bench-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("T360_")}
        env.update(T360_API_KEY=API_KEY, T360_STATE_DIR=str(tmp / "state"))
        report = tmp / "report.json"
        before = sink.stats(reset=True)
        run = measure(command(case, sink.url, report), env, timeout, cwd=tmp)
        sunk = delta(before, sink.stats())
        problems = check_floor(case, run, sunk) if case.label == "floor" else check_t360(case, run, report, sunk)
        return run, sunk, problems
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_rounds(
    cases: list[Case], sinks: dict[int, Sink], rounds: int, timeout: float
) -> tuple[dict[Case, list[Run]], list[str]]:
    """Every case once per round, interleaved; the runs per case and the problems seen."""
    runs: dict[Case, list[Run]] = {c: [] for c in cases}
    problems: list[str] = []
    for r in range(rounds):
        for case in cases:
            run, sunk, found = run_case(case, sinks[case.latency], timeout)
            print(
                f"  round {r + 1}: {case.label:5} {case.path.name:22} @{case.latency:>2} ms "
                f"{run.wall:7.2f} s {case.rows / run.wall:>9,.0f} rows/s "
                f"{run.rss_kib / 1024:5.0f} MiB  {sunk['requests']:>5} POSTs "
                f"{sunk['bytes'] / 2**20:5.0f} MiB sent, max {sunk['max_pending']} pending",
                flush=True,
            )
            runs[case].append(run)
            problems += found
    return runs, problems


def summarise(runs: dict[Case, list[Run]]) -> list[str]:
    """The closing table, the ratios t360/floor and the memory ratio, as text lines."""
    lines = [f"{'':6}{'file':24}{'latency':>8}{'rows':>11}{'wall s':>9}{'rows/s':>11}{'peak RSS':>11}"]
    rate: dict[Case, float] = {}
    rss: dict[Case, float] = {}
    for case, rs in runs.items():
        wall = statistics.median(r.wall for r in rs)
        rate[case], rss[case] = case.rows / wall, statistics.median(r.rss_kib for r in rs) / 1024
        lines.append(
            f"{case.label:6}{case.path.name:24}{case.latency:>5} ms{case.rows:>11,}"
            f"{wall:>9.2f}{rate[case]:>11,.0f}{rss[case]:>8.0f} MiB"
        )
    for ms in LATENCIES:
        floor = next((c for c in runs if c.label == "floor" and c.latency == ms), None)
        t360 = next((c for c in runs if c.label == "t360" and c.latency == ms and floor and c.path == floor.path), None)
        if floor and t360:
            ratio = rate[t360] / rate[floor]
            lines.append(
                f"throughput t360/floor at {ms:>2} ms sink latency: {ratio:.2f} "
                f"(target >= {TARGETS[ms]:.2f}: {'met' if ratio >= TARGETS[ms] else 'MISSED'})"
            )
    fast = sorted((c for c in runs if c.label == "t360" and c.latency == 0), key=lambda c: c.rows)
    if len(fast) >= 2:
        lo, hi = fast[0], fast[-1]
        peak = max(rss[lo], rss[hi])
        lines.append(
            f"t360 peak RSS {hi.rows:,} / {lo.rows:,} rows: {rss[hi]:.0f} / {rss[lo]:.0f}"
            f" MiB = {rss[hi] / rss[lo]:.2f} (1.00 = flat; target under "
            f"{RSS_TARGET_MIB} MB: {'met' if peak * 1.048576 < RSS_TARGET_MIB else 'MISSED'})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = bench_args(__doc__, "100k rows (and 20k), one round", argv)
    rounds = args.rounds
    if not T360.exists():
        print(f"{T360} not found: install the project (make venv).", file=sys.stderr)
        return 2
    big, small = (100_000, 20_000) if args.quick else (1_000_000, 200_000)
    files = {n: ensure("activities", n, args.seed) for n in (big, small)}
    cases = [Case(label, files[big], big, ms) for ms in LATENCIES for label in ("floor", "t360")]
    cases.append(Case("t360", files[small], small, 0))
    print(
        f"bench: {rounds} round(s), interleaved; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {INFLIGHT} in flight; medians of wall time, subprocess "
        f"start to exit"
    )
    sinks: dict[int, Sink] = {}
    try:
        for ms in LATENCIES:
            sinks[ms] = Sink(ms)
        runs, problems = run_rounds(cases, sinks, rounds, args.timeout)
    finally:
        for sink in sinks.values():
            sink.close()
    print("\n".join(summarise(runs)))
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if not problems:
        print(
            "checks: every run exited as expected; the sink got what each run says it sent; "
            "every t360 report matches the generator's expected counts"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
