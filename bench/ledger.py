"""Benchmark the ledger core (t360cli.ledger, SPEC 13): a 10M-id ledger on disk, a lookup pass, memory.

    python bench/ledger.py            # 10M customer ids, lookup passes over 1M ids, 3 rounds
    python bench/ledger.py --quick    # 1M ids, one round
    python bench/ledger.py --rounds 5

Builds bench/out/ledger/ledger_<n>.sqlite afresh with `Ledger.record`, in batches of
250,000 ids (one transaction each), then measures:

- its size on disk (the file and any -wal beside it), in bytes per id;
- a lookup pass: 1M ids in chunks of 12,288 (98% in the ledger, 1% of those with a changed
  record, 2% new), each round in its own process (`validate.measure`), the lookups timed
  inside, peak RSS from the child's own VmHWM; the counts found are checked;
- hashing 1M ids and 1M customer records (`id_hashes`, `record_hashes`);
- recording 20 acknowledged batches of 500 new ids into the big ledger (ms per batch),
  and 3 of 50,000 (what gathering acknowledged batches before recording them buys);
- `stats()` over the whole ledger (one scan).

The upload/validate comparison of SPEC 13 ("1M customers, 1% changed, at most 1.5x
validate") needs the CLI integration and comes later.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from genlib import money, padded  # noqa: E402

from t360cli.ledger import Ledger, Target, id_hashes, record_hashes  # noqa: E402

TARGET = Target.of("https://api.track360.example", "bench-key")
BUILD_BATCH = 250_000
CHUNK = 12_288
PROBES = 1_000_000
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def peak_rss_kib() -> int:
    """This process's peak RSS since it started: VmHWM (ru_maxrss would include the RSS of a
    parent at fork time, which for the lookup child is the parent's whole build)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def names(lo: int, hi: int) -> pa.Array:
    """The customer ids lo..hi-1: `fx_000000042`."""
    return pc.binary_join_element_wise("fx_", padded(np.arange(lo, hi), 9), "")


def contents(idx: np.ndarray, seed: int) -> np.ndarray:
    """The record hash the ledger holds for each id index (a stand-in for record_hashes)."""
    return idx.astype(np.uint64) * GOLDEN ^ np.uint64(seed)


def build(path: Path, n: int, seed: int) -> float:
    """A fresh ledger of n ids; seconds taken."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Ledger.open(path, TARGET) as ledger:
        for lo in range(0, n, BUILD_BATCH):
            hi = min(n, lo + BUILD_BATCH)
            ledger.record("customers", names(lo, hi), contents(np.arange(lo, hi), seed))
    return time.perf_counter() - t0


def probes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(id indexes, record hashes, expected known, expected same) of a 1M-id nightly export."""
    rng = np.random.default_rng(seed)
    known = rng.integers(0, n, size=PROBES - PROBES // 50)
    idx = rng.permutation(np.concatenate([known, np.arange(n, n + PROBES // 50)]))
    hashes = contents(idx, seed)
    changed = (rng.random(len(idx)) < 0.01) & (idx < n)
    hashes[changed] += np.uint64(1)
    return idx, hashes, len(known), len(known) - int(changed.sum())


def lookup_pass(path: Path, n: int, seed: int) -> dict[str, float]:
    """One pass over the probes, chunk by chunk, as the pipeline would (run in a child process).
    Only the lookups are timed; each chunk's id texts are made just before (untimed)."""
    idx, hashes, want_known, want_same = probes(n, seed)
    rss_before = peak_rss_kib()
    known = same = 0
    took = 0.0
    with Ledger.open(path, TARGET, read_only=True) as ledger:
        for lo in range(0, len(idx), CHUNK):
            ids = pc.binary_join_element_wise("fx_", padded(idx[lo : lo + CHUNK], 9), "")
            t0 = time.perf_counter()
            seen = ledger.lookup("customers", ids, hashes[lo : lo + CHUNK])
            took += time.perf_counter() - t0
            known += int(seen.known.sum())
            same += int(seen.same.sum())
    ok = known == want_known and same == want_same
    return {
        "pass_s": took,
        "rss_before_kib": rss_before,
        "rss_kib": peak_rss_kib(),
        "ok": ok,
        "known": known,
        "same": same,
    }


def hashing(seed: int) -> tuple[float, float]:
    """Seconds to hash 1M ids and 1M ~150-byte customer records."""
    ids = names(0, PROBES)
    rng = np.random.default_rng(seed)
    records = pc.binary_join_element_wise(
        '{"customerId":"',
        ids,
        '","regtime":"2025-07-01 11:03","country":"CY","tracking_data":"aff_',
        money(rng.integers(0, 10**7, PROBES)),
        '","email":"someone@example.com","sales_status":"New"},',
        "",
    )
    t0 = time.perf_counter()
    id_hashes(ids)
    t1 = time.perf_counter()
    record_hashes(records)
    return t1 - t0, time.perf_counter() - t1


def record_batches(path: Path, n: int, seed: int, size: int, batches: int) -> float:
    """Median ms to record one acknowledged batch of `size` new ids into the big ledger."""
    took = []
    with Ledger.open(path, TARGET) as ledger:
        for b in range(batches):
            lo = n + PROBES + 1_000_000 * (size > 500) + b * size
            ids, hashes = names(lo, lo + size), contents(np.arange(lo, lo + size), seed)
            t0 = time.perf_counter()
            ledger.record("customers", ids, hashes, datetime.now(UTC))
            took.append(time.perf_counter() - t0)
    return statistics.median(took) * 1000


def stats_time(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with Ledger.open(path, TARGET, read_only=True) as ledger:
        count = ledger.stats()[0].count
    return time.perf_counter() - t0, count


def disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lookup"]:  # the child: python bench/ledger.py lookup PATH N SEED
        print(json.dumps(lookup_pass(Path(argv[1]), int(argv[2]), int(argv[3]))))
        return 0
    from gen import OUT  # here, not above: the lookup child stays lean (its RSS is measured)
    from validate import bench_args, measure

    args = bench_args(__doc__, "1M ids instead of 10M, one round", argv)
    n = 1_000_000 if args.quick else 10_000_000
    path = OUT / "ledger" / f"ledger_{n // 1_000_000}m.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"bench: ledger of {n:,} customer ids, {args.rounds} lookup round(s) of {PROBES:,} ids; {os.cpu_count()} CPUs"
    )
    build_s = build(path, n, args.seed)
    size = disk(path)
    build_rss = peak_rss_kib()
    passes, problems = [], []
    for r in range(args.rounds):
        env = {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc", **os.environ}  # as `t360` sets it (cli.main)
        run = measure([sys.executable, __file__, "lookup", str(path), str(n), str(args.seed)], env, 600)
        if run.code != 0:
            problems.append(f"lookup round {r + 1} exited {run.code}: {run.stderr[-800:]}")
            continue
        got = json.loads(run.stdout)
        if not got["ok"]:
            problems.append(f"lookup round {r + 1} found known={got['known']} same={got['same']}: not as expected")
        passes.append((got["pass_s"], got["rss_kib"], got["rss_before_kib"], run.wall))
        print(
            f"  round {r + 1}: lookup pass {got['pass_s']:.2f} s, peak RSS {got['rss_kib'] / 1024:.0f} MiB", flush=True
        )
    ids_s, records_s = hashing(args.seed)
    batch_ms = record_batches(path, n, args.seed, 500, 20)
    big_ms = record_batches(path, n, args.seed, 50_000, 3)
    scan_s, count = stats_time(path)
    rows = [
        ("ledger ids", f"{n:,}"),
        ("build (batches of 250k)", f"{build_s:.1f} s ({n / build_s:,.0f} ids/s); peak RSS {build_rss / 1024:.0f} MiB"),
        ("size on disk", f"{size / 2**20:,.0f} MiB ({size / n:.1f} bytes per id)"),
    ]
    if passes:
        med = [statistics.median(p[i] for p in passes) for i in range(4)]
        rows += [
            ("lookup pass, 1M ids", f"{med[0]:.2f} s ({PROBES / med[0]:,.0f} ids/s), chunks of {CHUNK:,}"),
            ("  process peak RSS", f"{med[1] / 1024:.0f} MiB ({med[2] / 1024:.0f} MiB before the pass)"),
            ("  process wall", f"{med[3]:.2f} s (start-up and id texts included)"),
        ]
    rows += [
        ("hash 1M ids / records", f"{ids_s:.2f} s / {records_s:.2f} s"),
        ("record a batch of 500", f"{batch_ms:.1f} ms (median of 20, into the full ledger)"),
        ("record 50,000 at once", f"{big_ms:.0f} ms ({big_ms * 1000 / 50_000:.1f} us per id, median of 3)"),
        ("stats() scan", f"{scan_s:.2f} s ({count:,} entries)"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:{width}}  {v}" for k, v in rows))
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
