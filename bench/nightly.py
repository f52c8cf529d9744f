"""Benchmark the nightly full export against the ledger (SPEC 13), in one run.

    python bench/nightly.py            # 1M customers, 1% changed
    python bench/nightly.py --quick    # 100k customers

Writes a customers export of N rows and a second one where 1% of the customers changed
(a new tracking value), then, each as its own subprocess, timed (wall) and measured (peak
RSS, os.wait4), against a local sink (bench/sink.py):

1. `t360 upload` of the first export: every customer sent, the ledger learns them all;
2. `t360 validate` of the changed export, with the key and base URL, so it reads the
   ledger (what would be sent);
3. `t360 upload` of the changed export: sends exactly the changed customers.

Prints the times, the upload/validate ratio (SPEC 13: at most 1.5) and the peak RSS of
each (at most 300 MB), and checks the sink's and the reports' counts. Exit 0 when every
check passed, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from upload import API_KEY, T360, Sink  # noqa: E402
from validate import Run, bench_args, measure  # noqa: E402

CHANGED = 0.01
RATIO_TARGET = 1.5
RSS_TARGET_MIB = 300
MAPPING = """kind: customers
fields:
  customerId: {template: "fx_{Login}"}
  regtime: {column: Registered, type: datetime}
  country: {column: Country, type: country}
  firstName: First
  tracking_data: Campaign
"""


def export(path: Path, rows: int, changed: object) -> None:
    """A customers export; `changed` (row numbers) marks the rows whose campaign is new tonight.
    numpy and pyarrow only here, in the child that makes the files: the measuring parent
    stays small (a child's peak RSS counts what it was forked from)."""
    import numpy as np
    import pyarrow as pa
    from genlib import padded, write_csv

    index = np.arange(rows)
    campaign = np.char.add("cmp_", (index % 997).astype(str)).astype(object)
    if changed is not None:
        campaign[changed] = np.char.add("new_", (index[changed] % 991).astype(str))
    columns = {
        "Login": padded(index + 5_000_000, 8),
        "Registered": pa.array(np.full(rows, "2025-07-21 08:46:00")),
        "Country": pa.array(np.array(["ES", "DE", "GB", "FR"])[index % 4]),
        "First": pa.array(np.char.add("Name", (index % 5000).astype(str))),
        "Campaign": pa.array(campaign.astype(str)),
    }
    write_csv(path, {name: _flat(col) for name, col in columns.items()})


def _flat(col: object) -> object:
    return col.combine_chunks() if hasattr(col, "combine_chunks") else col


# A forked child's ru_maxrss starts from what it was forked from (the kernel keeps the old
# image's high-water mark at exec): this bench's own numpy and pyarrow would count in t360's
# peak. So t360 is started by a small interpreter (python -S, ~10 MiB), which reports its
# child's peak RSS on its last line of stderr.
LEAN = (
    "import os, sys\n"
    "pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nmaxrss_kib={usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def lean_measure(cmd: list[str], env: dict[str, str], timeout: float) -> Run:
    """`measure`, with the peak RSS of the command alone."""
    run = measure([sys.executable, "-S", "-c", LEAN, *cmd], env, timeout)
    last = run.stderr.rstrip().rsplit("\n", 1)[-1]
    rss = int(last.split("=", 1)[1]) if last.startswith("maxrss_kib=") else run.rss_kib
    return Run(run.wall, rss, run.code, run.stdout, run.stderr)


def make(out: Path, rows: int, seed: int) -> None:
    """The two nights' exports, and which rows changed (changed.npy)."""
    import numpy as np

    changed = np.random.default_rng(seed).choice(rows, size=int(rows * CHANGED), replace=False)
    export(out / "customers_night1.csv", rows, None)
    export(out / "customers_night2.csv", rows, changed)
    (out / "changed.json").write_text(json.dumps(len(changed)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["make"]:  # the child: python bench/nightly.py make OUT ROWS SEED
        make(Path(argv[1]), int(argv[2]), int(argv[3]))
        return 0
    args = bench_args(__doc__, "100k customers", argv)
    rows = 100_000 if args.quick else 1_000_000
    out = BENCH / "out" / "nightly"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    first, second = out / "customers_night1.csv", out / "customers_night2.csv"
    # made by a child: a child of this process would otherwise count its arrays in its peak RSS
    subprocess.run([sys.executable, __file__, "make", str(out), str(rows), str(args.seed)], check=True)
    changed = json.loads((out / "changed.json").read_text())
    (out / "customers.yaml").write_text(MAPPING, encoding="utf-8")
    print(f"bench: {rows:,} customers, {changed:,} changed the next night; {os.cpu_count()} CPUs", flush=True)
    sink = Sink(0)
    env = {**os.environ, "T360_API_KEY": API_KEY, "T360_STATE_DIR": str(out / "state"), "T360_BASE_URL": sink.url}
    problems: list[str] = []
    results = {}
    try:
        for label, verb, path in (
            ("night 1 upload", "upload", first),
            ("night 2 validate", "validate", second),
            ("night 2 upload", "upload", second),
        ):
            before = sink.stats()
            report = out / f"{label.replace(' ', '_')}.json"
            cmd = [str(T360), verb, str(path), "-m", str(out / "customers.yaml"), "--report", str(report), "-q"]
            run = lean_measure(cmd, env, args.timeout)
            sent = sink.stats()["records"] - before["records"]
            results[label] = (run, sent)
            if run.code != 0:
                problems.append(f"{label} exited {run.code}: {run.stderr[-500:]}")
                continue
            data = json.loads(report.read_text())
            want_sent = {"night 1 upload": rows, "night 2 validate": 0, "night 2 upload": changed}[label]
            if sent != want_sent:
                problems.append(f"{label}: the sink got {sent:,} records, not {want_sent:,}")
            if label != "night 1 upload" and data["rows_unchanged"] != rows - changed:
                problems.append(f"{label}: rows_unchanged {data['rows_unchanged']:,}, not {rows - changed:,}")
            print(f"  {label}: {run.wall:.2f} s, peak RSS {run.rss_kib / 1024:.0f} MiB, sent {sent:,}", flush=True)
    finally:
        sink.close()
    if len(results) == 3 and not problems:
        validate_s, upload_s = results["night 2 validate"][0].wall, results["night 2 upload"][0].wall
        ratio = upload_s / validate_s
        print(f"night 2: upload/validate = {ratio:.2f} (target at most {RATIO_TARGET})")
        if ratio > RATIO_TARGET:
            problems.append(f"upload took {ratio:.2f}x validate's time")
        for label, (run, _) in results.items():
            if run.rss_kib / 1024 > RSS_TARGET_MIB:
                problems.append(f"{label}: peak RSS {run.rss_kib / 1024:.0f} MiB over {RSS_TARGET_MIB}")
        ledger = out / "state" / "ledger.sqlite"
        print(f"ledger: {ledger.stat().st_size / 2**20:.0f} MiB on disk for {rows:,} customers")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
