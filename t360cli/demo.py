"""`t360 demo`: a sandbox on a free port, every sample file uploaded, then the sample nightly
job (`sample_data/nightly.yaml`) run once, what arrived shown.

Works from any directory and from an installed wheel: the samples travel in the package.
Its state (progress logs, rejects, the sandbox database) is left in <state_dir>/demo/ to look at.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from t360cli import run
from t360cli.config import Settings, resolve
from t360cli.job import JobReport, load_job, run_job
from t360cli.plan import RunOptions
from t360cli.report import Report
from t360cli.sandbox import Sandbox, serve_in_thread

SAMPLES = Path(__file__).parent / "sample_data"
DEMO_KEY = "demo-key-not-secret"
DEMO_JOB = SAMPLES / "nightly.yaml"  # the same samples as feeds: run after the uploads, each feed resumes

# (export, mapping): customers first, so that activities refer to known customers.
DEMO_FILES = [
    ("customers.csv", "customers.yaml"),
    ("deposits.xlsx", "deposits.yaml"),
    ("withdrawals.csv", "withdrawals.yaml"),
    ("daily_trading.csv", "daily_stats.yaml"),
    ("ib_rebates.jsonl", "ib_rebates.yaml"),
    ("daily_trading.csv", "daily_events.yaml"),
    ("trades.csv", "trades_daily.yaml"),
    ("mt_deals.csv", "mt_deals.yaml"),
    ("deposits_report.xlsx", "deposits_report.yaml"),
]


def demo_files() -> list[tuple[Path, Path]]:
    pairs = [(SAMPLES / data, SAMPLES / mapping) for data, mapping in DEMO_FILES]
    return [(d, m) for d, m in pairs if d.exists() and m.exists()]


@dataclass(frozen=True)
class DemoUpload:
    data: str  # the sample's file name
    mapping: str
    report: Report

    @property
    def clean(self) -> bool:
        """Finished (exit 0 or 1), every batch acknowledged, every row in one bucket."""
        counts = self.report.counts
        accounted = counts.rows_valid + counts.rows_rejected + counts.rows_filtered + counts.rows_duplicate
        return self.report.exit_code in (0, 1) and not counts.batches_failed and counts.rows_read == accounted


@dataclass(frozen=True)
class Received:
    """What the sandbox stored: its counts, activities per eventname, a few records."""

    stats: dict[str, int]
    by_event: dict[str, int]
    examples: list[dict[str, object]]


@dataclass(frozen=True)
class DemoResult:
    state_dir: Path
    uploads: list[DemoUpload]
    received: Received
    job: JobReport | None = None

    @property
    def unclean(self) -> list[str]:
        unclean = [upload.data for upload in self.uploads if not upload.clean]
        if self.job is not None and self.job.exit_code not in (0, 1):
            unclean.append(f"{DEMO_JOB.name} (exit {self.job.exit_code})")
        return unclean


class DemoObserver(Protocol):
    """Told as the demo goes (ui.DemoView prints it), so the user is not left waiting."""

    def sandbox_started(self, url: str, state_dir: Path) -> None: ...
    def uploaded(self, upload: DemoUpload) -> None: ...
    def job_line(self, text: str) -> None: ...


def run_demo(observer: DemoObserver, state_dir: str | None = None) -> DemoResult:
    """Upload every sample; state (logs, rejects, the sandbox db) in <state_dir>/demo."""
    root = Path(state_dir or resolve(None, {}).state_dir) / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    key_file = root / "api-key"
    key_file.write_text(DEMO_KEY + "\n", encoding="utf-8")
    uploads = []
    with serve_in_thread(db=str(root / "sandbox.db"), api_key=DEMO_KEY) as sandbox:
        observer.sandbox_started(sandbox.url, root)
        settings = Settings(base_url=sandbox.url, api_key_file=str(key_file), state_dir=str(root))
        for data, mapping in demo_files():
            report = run.upload(RunOptions(files=[str(data)], mapping=str(mapping)), settings)
            uploads.append(DemoUpload(data.name, mapping.name, report))
            observer.uploaded(uploads[-1])
        job = _run_job(observer, settings)
        received = _received(sandbox)
    return DemoResult(root, uploads, received, job)


def _run_job(observer: DemoObserver, settings: Settings) -> JobReport | None:
    """The sample nightly job against the same sandbox, as the next night would run it: new
    progress logs (another batch size makes them new), the same ledger, so every record
    uploaded above counts as unchanged and nothing is sent twice; one line per feed."""
    if not DEMO_JOB.exists():
        return None
    observer.job_line(
        f"\n== t360 run {DEMO_JOB.name}: the same exports as next night's job, customers first; "
        "the ledger remembers what was acknowledged, so nothing is sent twice"
    )
    next_night = replace(settings, batch_size=settings.batch_size // 2)
    done = run_job(load_job(DEMO_JOB), next_night, on_feed=lambda feed: observer.job_line(f"  {feed.line()}"))
    observer.job_line(f"  job exit {done.exit_code}")
    return done


def _received(sandbox: Sandbox) -> Received:
    activities = sandbox.activities()
    by_event: dict[str, int] = {}
    for record in activities:
        by_event[record.get("eventname", "?")] = by_event.get(record.get("eventname", "?"), 0) + 1
    return Received(sandbox.stats(), dict(sorted(by_event.items())), sandbox.customers()[:2] + activities[:3])
