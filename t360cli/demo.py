"""`t360 demo`: a sandbox on a free port, every sample file uploaded, what arrived shown.

Works from any directory and from an installed wheel: the samples travel in the package.
Its state (progress logs, rejects, the sandbox database) is left in <state_dir>/demo/ to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from t360cli import run
from t360cli.config import Settings, resolve
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


def run_demo(term: Any, state_dir: str | None = None) -> int:
    """Upload every sample; state (logs, rejects, the sandbox db) in <state_dir>/demo."""
    root = Path(state_dir or resolve(None, {}).state_dir) / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    key_file = root / "api-key"
    key_file.write_text(DEMO_KEY + "\n", encoding="utf-8")
    results = []
    with serve_in_thread(db=str(root / "sandbox.db"), api_key=DEMO_KEY) as sandbox:
        term.print(f"t360 demo: sandbox listening on {sandbox.url}; state in {root}/")
        for data, mapping in demo_files():
            settings = Settings(base_url=sandbox.url, api_key_file=str(key_file), state_dir=str(root))
            opts = run.RunOptions(files=[str(data)], mapping=str(mapping))
            report = run.upload(opts, settings, run.NullObserver())
            results.append((data.name, report))
            term.print(_line(data.name, mapping.name, report))
        _show_received(term, sandbox)
    bad = [
        name
        for name, r in results
        if r["exit_code"] not in (0, 1)
        or r["batches_failed"]
        or r["rows_read"] != r["rows_valid"] + r["rows_rejected"] + r["rows_filtered"] + r["rows_duplicate"]
    ]
    if bad:
        term.error(f"demo: {', '.join(bad)} did not upload cleanly.")
        return 1
    term.print(
        "\nEvery row is accounted for: sent, rejected (reasons in each rejects file above), "
        "filtered by where:, or a duplicate."
    )
    return 0


def _line(data: str, mapping: str, r: dict[str, Any]) -> str:
    head = f"  {data} -m {mapping}: read {r['rows_read']}, valid {r['rows_valid']}, rejected {r['rows_rejected']}, "
    head += f"filtered {r['rows_filtered']}, duplicate {r['rows_duplicate']} -> sent {r['records_sent']} records"
    return head + (f"\n      rejects: {r['rejects']}" if r["rejects"] else "")


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
