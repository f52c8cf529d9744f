"""`t360 demo`: a sandbox on a free port, every sample file uploaded, what arrived shown.

Works from any directory and from an installed wheel: the samples travel in the package.
Its state (progress logs, rejects, the sandbox database) lives in a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson

from t360cli import run
from t360cli.config import Settings
from t360cli.sandbox import serve_in_thread

SAMPLES = Path(__file__).parent / "sample_data"
DEMO_KEY = "demo-key-not-secret"

# (export, mapping): customers first, so that activities refer to known customers.
DEMO_FILES = [
    ("customers.csv", "customers.yaml"),
    ("deposits.xlsx", "deposits.yaml"),
    ("withdrawals.csv", "withdrawals.yaml"),
    ("daily_trading.csv", "daily_stats.yaml"),
    ("ib_rebates.jsonl", "ib_rebates.yaml"),
    ("daily_trading.csv", "daily_events.yaml"),
    ("trades.csv", "trades_daily.yaml"),
]


def demo_files() -> list[tuple[Path, Path]]:
    pairs = [(SAMPLES / data, SAMPLES / mapping) for data, mapping in DEMO_FILES]
    return [(d, m) for d, m in pairs if d.exists() and m.exists()]


def run_demo(term: Any) -> int:
    with tempfile.TemporaryDirectory(prefix="t360-demo-") as tmp:
        key_file = Path(tmp) / "api-key"
        key_file.write_text(DEMO_KEY + "\n", encoding="utf-8")
        with serve_in_thread(db=str(Path(tmp) / "sandbox.sqlite"), api_key=DEMO_KEY) as sandbox:
            term.print(f"t360 demo: sandbox listening on {sandbox.url}")
            results = []
            for data, mapping in demo_files():
                settings = Settings(base_url=sandbox.url, api_key_file=str(key_file),
                                    state_dir=str(Path(tmp) / "state"))
                opts = run.RunOptions(files=[str(data)], mapping=str(mapping))
                term.print(f"\n== t360 upload sample_data/{data.name} -m sample_data/{mapping.name}")
                report = run.upload(opts, settings, term)
                results.append((data.name, report))
            _show_received(term, sandbox)
    bad = [name for name, r in results if r["exit_code"] not in (0, 1) or r["batches_failed"]]
    if bad:
        term.error(f"demo: {', '.join(bad)} did not upload cleanly.")
        return 1
    term.print("\nEvery row is accounted for: sent, rejected (see each rejects file), filtered or duplicate.")
    return 0


def _show_received(term: Any, sandbox: Any) -> None:
    stats = sandbox.stats()
    term.print(f"\n== what the sandbox received: {orjson.dumps(stats).decode()}")
    activities = sandbox.activities()
    by_event: dict[str, int] = {}
    for record in activities:
        by_event[record.get("eventname", "?")] = by_event.get(record.get("eventname", "?"), 0) + 1
    term.print("activities by eventname: " + ", ".join(f"{k} {v}" for k, v in sorted(by_event.items())))
    for record in sandbox.customers()[:2] + activities[:3]:
        term.print("  " + orjson.dumps(record).decode())
