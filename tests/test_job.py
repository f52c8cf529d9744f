"""`t360 run JOB.yaml`, the nightly job (SPEC 13): customers first, every feed checked before
anything is sent, the failure policy, one lock, one report, a rerun resumes each feed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CUSTOMERS_MAPPING,
    DEPOSITS_MAPPING,
    T360,
    assert_no_key,
    cli,
    cli_env,
    deposit_rows,
    deposits_csv,
    write,
)

from t360cli.job import FeedResult, job_exit_code
from t360cli.sandbox import Faults, Sandbox

LOGINS = 36  # customers 5100000..5100035; deposits also name 5100036 (rows 36 and 73): orphans
JOB = """\
config: config.yaml
feeds:
  - {name: deposits,  files: "exports/deposits-*.csv",  mapping: mappings/deposits.yaml}
  - {name: customers, files: "exports/customers-*.csv", mapping: mappings/customers.yaml}
  - {name: daily,     files: "exports/daily-*.tsv",     mapping: mappings/deposits.yaml, optional: true}
on_customers_failure: POLICY
"""
SECTION_7 = (
    "kind dry_run files rows_read rows_valid rows_filtered rows_rejected rows_duplicate records_valid "
    "records_sent batches_total batches_sent batches_failed batches_skipped retries http_status_counts "
    "unattributed_customers rows_unchanged records_unchanged orphan_activities customers_missing log "
    "rejects duration_s exit_code totals"
).split()


def customers_csv(path: Path, logins: int = LOGINS) -> Path:
    rows = [f"{5100000 + i},01/07/2025 09:{i % 60:02d},DE,Ann,Lee {i},camp-{i}" for i in range(logins)]
    return write(path, "\n".join(["Login,Registered,Country,First Name,Last Name,Campaign", *rows]) + "\n")


def make_job(
    root: Path, sb: Sandbox, key: str, policy: str = "stop", deposits: int = 74, **config: Any
) -> tuple[Path, Path]:
    """A job folder under root: exports/, mappings/, config.yaml, nightly.yaml; (job, state_dir)."""
    for folder in ("exports", "mappings"):
        (root / folder).mkdir(exist_ok=True)
    customers_csv(root / "exports" / "customers-2025-07-01.csv")
    deposits_csv(root / "exports" / "deposits-2025-07-01.csv", deposit_rows(deposits))
    write(root / "mappings" / "customers.yaml", CUSTOMERS_MAPPING)
    write(root / "mappings" / "deposits.yaml", DEPOSITS_MAPPING)
    write(root / "api.key", key + "\n")
    settings = {"batch_size": 20, "concurrency": 2, "timeout_s": 10, **config}
    lines = [f"base_url: {sb.url}", f"api_key_file: {root / 'api.key'}", f"state_dir: {root / '.t360'}"]
    lines += [f"{name}: {value}" for name, value in settings.items()]
    lines += ["retry: {max_attempts: 2, backoff_initial_s: 0.001, backoff_max_s: 0.01, stop_after_failed_batches: 1}"]
    write(root / "config.yaml", "\n".join(lines) + "\n")
    return write(root / "nightly.yaml", JOB.replace("POLICY", policy)), root / ".t360"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def run_job(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`t360 run nightly.yaml ARGS --report report.json` in root: the process and the report."""
    report = root / "report.json"
    report.unlink(missing_ok=True)
    done = cli("run", "nightly.yaml", *args, "--report", str(report), cwd=root)
    return done, json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}


def feeds(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {feed["name"]: feed for feed in report["feeds"]}


def test_customers_first_one_line_per_feed_and_the_report(root: Path, sandbox: Sandbox, key_file: Path) -> None:
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY)
    with open(root / "exports" / "deposits-2025-07-01.csv", "a", encoding="utf-8") as fh:
        fh.write("TX-BAD,5100001,2025-07-01 10:00:00,12.x,USD\n")  # one reject: the deposits feed exits 1
    done, report = run_job(root)
    assert done.returncode == 1, done.stderr
    assert list(report) == ["job", "exit_code", "feeds"] and report["exit_code"] == 1
    assert report["job"] == "nightly.yaml"
    assert [feed["name"] for feed in report["feeds"]] == ["customers", "deposits", "daily"]  # customers first
    by_name = feeds(report)
    assert by_name["daily"] == {"name": "daily", "skipped": "no file matches exports/daily-*.tsv"}
    for name, kind, code in (("customers", "customers", 0), ("deposits", "activities", 1)):
        assert list(by_name[name])[:1] == ["name"] and set(SECTION_7) <= set(by_name[name])
        assert (by_name[name]["kind"], by_name[name]["exit_code"], by_name[name]["dry_run"]) == (kind, code, False)
    assert by_name["deposits"]["orphan_activities"] == 2  # 5100036 is no customer; the others are the job's
    started = [
        json.loads(Path(by_name[name]["log"]).read_text().splitlines()[0])["started_ms"]
        for name in by_name
        if name != "daily"
    ]
    assert started == sorted(started)  # the customers feed's log began first
    assert sandbox.stats()["customers"] == LOGINS and sandbox.stats()["activities"] == 74
    lines = [line for line in done.stdout.splitlines() if line.startswith("t360 run:")]
    assert lines == [
        "t360 run: feed customers: read 36, sent 36, rejected 0, unchanged 0, exit 0",
        "t360 run: feed deposits: read 75, sent 74, rejected 1, unchanged 0, exit 1",
        "t360 run: feed daily: skipped (no file matches exports/daily-*.tsv)",
        "t360 run: job nightly.yaml finished, exit 1",
    ]
    assert "activities are for customers never sent (first: fx_5100036)" in done.stderr
    assert_no_key(root, done.stdout, done.stderr)


def test_stop_skips_activities_when_customers_fail(root: Path, sandbox: Sandbox) -> None:
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY, policy="stop")
    sandbox.set_faults(Faults(fail_endpoint="customers"))
    done, report = run_job(root)
    assert done.returncode == 4, done.stderr
    by_name = feeds(report)
    assert by_name["customers"]["exit_code"] == 4 and by_name["customers"]["batches_failed"] >= 1
    cause = (
        f"{sandbox.url}/tracking/events/customers answered HTTP 503; 1 batches failed in a row, nothing more was sent"
    )
    assert by_name["customers"]["error"] == f"{cause}; rerun the same command to resume."
    assert by_name["deposits"] == {
        "name": "deposits",
        "skipped": "customers feed 'customers' did not deliver completely",
    }
    assert sandbox.stats()["activities"] == 0
    assert done.stderr == f"error: feed customers: {cause}; rerun the same command to resume.\n"
    assert "t360 run: feed deposits: skipped (customers feed 'customers' did not deliver completely)" in done.stdout


def test_continue_sends_activities_anyway_and_a_rerun_resumes_each_feed(root: Path, sandbox: Sandbox) -> None:
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY, policy="continue")
    sandbox.set_faults(Faults(fail_endpoint="customers"))
    done, report = run_job(root)
    assert done.returncode == 4, done.stderr  # 4 (customers) wins over 0 (deposits)
    by_name = feeds(report)
    assert (by_name["customers"]["exit_code"], by_name["deposits"]["exit_code"]) == (4, 0)
    assert by_name["deposits"]["records_sent"] == 74 and sandbox.stats()["customers"] == 0
    sandbox.set_faults(Faults())
    again, report = run_job(root)
    assert again.returncode == 0, again.stderr
    by_name = feeds(report)
    assert by_name["customers"]["records_sent"] == LOGINS and sandbox.stats()["customers"] == LOGINS
    deposits = by_name["deposits"]
    assert deposits["batches_skipped"] == deposits["batches_total"] == 4 and deposits["records_sent"] == 0
    assert sandbox.stats()["activities"] == 74 and sandbox.stats()["duplicates_ignored"] == 0


def test_a_refused_key_stops_the_whole_job(root: Path, sandbox: Sandbox) -> None:
    make_job(root, sandbox, "not-the-key")
    done, report = run_job(root)
    assert done.returncode == 3, done.stderr
    by_name = feeds(report)
    assert by_name["customers"]["exit_code"] == 3 and "error" in by_name["customers"]
    why = "the server refused the API key (feed 'customers')"
    assert by_name["deposits"] == {"name": "deposits", "skipped": why}
    assert by_name["daily"]["skipped"] == "no file matches exports/daily-*.tsv"
    assert sandbox.stats()["activities"] == 0


def test_every_feed_checked_before_anything_is_sent(root: Path, sandbox: Sandbox) -> None:
    """A missing non-optional export and a wrong mapping in the second feed: one message, exit 2, nothing sent."""
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY)
    (root / "exports" / "customers-2025-07-01.csv").unlink()
    write(root / "mappings" / "deposits.yaml", DEPOSITS_MAPPING.replace('eventid: "Txn ID"', 'eventid: "Txn No"'))
    done, report = run_job(root)
    assert done.returncode == 2 and report == {}
    lines = done.stderr.splitlines()
    assert lines[0] == "error: job nightly.yaml cannot run; nothing was sent:"
    assert lines[1].startswith("• feed 'deposits': ") and "Txn No" in lines[1]
    assert lines[-1] == f"• feed 'customers': no file matches exports/customers-*.csv (in {root / 'exports'})."
    assert sandbox.stats()["requests"] == 0


def test_mistakes_in_the_job_file_all_at_once(root: Path, sandbox: Sandbox) -> None:
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY)
    write(
        root / "nightly.yaml",
        "feds: x\nfeeds:\n  - {name: a, files: x.csv, mapping: m.yaml, optionel: true}\n"
        "  - {name: a, files: y.csv}\n  - {files: z.csv, mapping: m.yaml, optional: maybe}\n"
        "on_customers_failure: halt\n",
    )
    done, _ = run_job(root)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: invalid job file nightly.yaml:",
        "• line 1: unknown key 'feds'; did you mean feeds?",
        "• line 3: feed 'a': unknown key 'optionel'; did you mean optional?",
        "• line 4: feed 'a': mapping: give the mapping file (relative to the job file)",
        "• line 5: feed 3: name: missing; give the feed a name",
        "• line 5: feed 3: optional: must be true or false",
        "• line 6: on_customers_failure: must be stop or continue, not 'halt'",
    ]
    assert sandbox.stats()["requests"] == 0


def test_dry_run_sends_nothing_and_counts_orphans_against_the_jobs_customers(root: Path, sandbox: Sandbox) -> None:
    """With a key, a dry run consults the ledger: only the activity of a customer in no feed is an orphan."""
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY)
    done = cli("run", "nightly.yaml", "--dry-run", "--report", "-", cwd=root)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # --report -: the JSON on stdout, the human summary on stderr
    by_name = feeds(report)
    assert by_name["customers"]["dry_run"] is True and by_name["deposits"]["orphan_activities"] == 2
    assert "t360 run: feed deposits: read 74, sent 0 (dry run), rejected 0, unchanged 0, exit 0" in done.stderr
    alone = cli(
        "validate",
        "exports/deposits-2025-07-01.csv",
        "-m",
        "mappings/deposits.yaml",
        "-c",
        "config.yaml",
        "--report",
        "-",
        cwd=root,
    )
    assert json.loads(alone.stdout)["orphan_activities"] == 74  # without the job, every customer is unknown
    assert sandbox.stats()["requests"] == 0


def wait_for(what: Any, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_one_lock_per_job_and_a_killed_job_resumes(root: Path, sandbox: Sandbox) -> None:
    from conftest import API_KEY

    make_job(root, sandbox, API_KEY, batch_size=2, concurrency=1)
    sandbox.set_faults(Faults(latency_ms=100))
    lock = root / ".t360" / "jobs" / "nightly.lock"
    first = subprocess.Popen(
        [*T360, "run", "nightly.yaml"], cwd=root, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: sandbox.stats()["customers"] >= 2)
        second = cli("run", "nightly.yaml", cwd=root)
        assert second.returncode == 2
        assert second.stderr == (
            f"error: job nightly.yaml is already running: process {first.pid} holds the lock {lock}. "
            f"Wait for it to finish; if no t360 run is active, delete {lock}.\n"
        )
        wait_for(lambda: sandbox.stats()["activities"] >= 10)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert lock.exists()  # left by the dead process: it does not block
    sent = sandbox.stats()["activities"]
    assert sent < 74
    sandbox.set_faults(Faults())
    done, report = run_job(root)
    assert done.returncode == 0, done.stderr
    deposits = feeds(report)["deposits"]
    assert deposits["batches_skipped"] >= sent // 2 - 1 and deposits["records_sent"] <= 74 - sent + 2
    assert feeds(report)["customers"]["batches_skipped"] == LOGINS // 2
    assert sandbox.stats()["activities"] == 74 and not lock.exists()


def result(code: int) -> FeedResult:
    return FeedResult("f", "activities", code)


@pytest.mark.parametrize(
    "codes, dry_run, expected",
    [
        ([0, 1], False, 1),
        ([1, 4, 3], False, 4),
        ([3, 1], False, 3),
        ([4, 130], False, 130),
        ([2], False, 2),  # nothing sent
        ([0, 2], False, 4),  # a feed failed to start after another had sent: rerun to resume
        ([0, 2], True, 2),
        ([], False, 0),
    ],
)
def test_the_jobs_exit_code_is_its_feeds_worst(codes: list[int], dry_run: bool, expected: int) -> None:
    assert job_exit_code([result(code) for code in codes], dry_run) == expected


def test_the_sample_job_dry_runs(tmp_path: Path) -> None:
    """t360cli/sample_data/nightly.yaml: customers first, the optional feed without files skipped."""
    from conftest import REPO

    done = cli(
        "run", str(REPO / "t360cli" / "sample_data" / "nightly.yaml"), "--dry-run", "--report", "-", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr  # the samples have rejects
    report = json.loads(done.stdout)
    assert [feed["name"] for feed in report["feeds"]] == [
        "customers",
        "deposits",
        "withdrawals",
        "daily",
        "rebates",
        "bonuses",
    ]
    assert report["feeds"][-1] == {"name": "bonuses", "skipped": "no file matches bonuses-*.csv"}
    assert [feed["exit_code"] for feed in report["feeds"][:-1]] == [1] * 5


def test_the_demo_job_is_next_night_and_sends_nothing_twice(tmp_path: Path) -> None:
    """`t360 demo` ends with the sample job as the next night would run it: new progress logs,
    the same ledger, so the activities it uploaded count as unchanged and are not sent again."""
    from t360cli.demo import run_demo

    class Quiet:
        lines: list[str] = []

        def sandbox_started(self, url: str, root: Path) -> None: ...

        def uploaded(self, upload: object) -> None: ...

        def job_line(self, text: str) -> None:
            self.lines.append(text)

    result = run_demo(Quiet(), str(tmp_path))
    assert result.job is not None and result.job.exit_code == 1 and not result.unclean
    feeds = {feed.name: feed.report for feed in result.job.feeds if feed.report is not None}
    for name in ("deposits", "withdrawals", "daily", "rebates"):
        report = feeds[name]
        assert report is not None
        assert report.counts.records_sent == 0 and report.counts.rows_unchanged == report.counts.rows_read - (
            report.counts.rows_rejected + report.counts.rows_filtered + report.counts.rows_duplicate
        )
    assert result.received.stats["duplicates_ignored"] == 0
