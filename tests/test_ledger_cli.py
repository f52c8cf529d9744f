"""The ledger through the command line (SPEC 13): nightly overlapping exports send only what is
new or changed, `t360 ledger stats|forget|seed`, and kill -9 never leaves the ledger ahead of
the server. Everything runs against the sandbox over real HTTP; most commands in-process
(CliRunner), the kills in a real `t360 upload` process."""

from __future__ import annotations

import csv
import io
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from conftest import API_KEY, CUSTOMERS_MAPPING, DEPOSITS_MAPPING, T360, assert_no_key, cli_env, counts_add_up, write
from typer.testing import CliRunner, Result

from t360cli import ledger_ops
from t360cli.cli import app
from t360cli.config import resolve
from t360cli.ledger import FILE_NAME, Ledger, LedgerError, Target
from t360cli.progress_log import read_log
from t360cli.sandbox import Faults, Sandbox, serve_in_thread
from t360cli.ui import Terminal

pytestmark = pytest.mark.usefixtures("clean_env")
LEDGER = Path(".t360") / FILE_NAME
DEADLINE_S = 30
CONFIG = """\
base_url: {url}
api_key_file: api.key
batch_size: {batch}
concurrency: {concurrency}
retry: {{max_attempts: 8, backoff_initial_s: 0.001, backoff_max_s: 0.01}}
"""
GENERATED_MAPPING = DEPOSITS_MAPPING.replace('eventid: "Txn ID"', "eventid: {generate: hash}")
CONFLICT = re.compile(
    r"eventid: already sent with other values on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC \(--restart sends it again\)"
)
ORPHAN = "customerid: customer never sent; register it first"


# -- the setting: a sandbox, a config.yaml in the working directory, exports ----------------------


def configure(sb: Sandbox, batch: int = 20, concurrency: int = 4, extra: str = "", key_file: bool = True) -> None:
    text = CONFIG.format(url=sb.url, batch=batch, concurrency=concurrency) + extra
    write(Path("config.yaml"), text if key_file else text.replace("api_key_file: api.key\n", ""))


@pytest.fixture
def sb(sandbox: Sandbox, key_file: Path) -> Sandbox:
    """The sandbox, with ./config.yaml (base_url, api_key_file) pointing at it."""
    configure(sandbox)
    write(Path("customers.yaml"), CUSTOMERS_MAPPING)
    write(Path("deposits.yaml"), DEPOSITS_MAPPING)
    return sandbox


def t360(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def report_of(result: Result, path: str = "r.json") -> dict[str, Any]:
    """The run's --report, checked for SPEC 9's count identity."""
    assert "Traceback" not in result.output + result.stderr
    report: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    assert counts_add_up(report), report
    Path(path).unlink()
    return report


def upload(name: str, mapping: str, *more: str) -> tuple[Result, dict[str, Any]]:
    result = t360("upload", name, "-m", mapping, "--report", "r.json", *more)
    return result, report_of(result)


def customer_rows(n: int) -> list[dict[str, str]]:
    return [
        {
            "Login": f"{7000 + i}",
            "Registered": f"{1 + i % 28:02d}/06/2025 10:{i % 60:02d}",
            "Country": ("DE", "FR", "GB")[i % 3],
            "First Name": f"Ann{i}",
            "Last Name": f"Lee{i}",
            "Campaign": f"cmp{i % 4}",
        }
        for i in range(n)
    ]


def deposits_of_days(days: range, per_day: int = 10) -> list[dict[str, str]]:
    """Deposits booked on July `days` (per_day each); a Txn ID belongs to one day for good."""
    return [
        {
            "Txn ID": f"TX-{day:02d}-{j:03d}",
            "Login": f"{7000 + j % 5}",
            "Date": f"2025-07-{day:02d} {j // 60:02d}:{j % 60:02d}:30",
            "Amount": f"{day * 100 + j}.50",
            "Ccy": "USD",
        }
        for day in days
        for j in range(per_day)
    ]


def save(path: str, rows: list[dict[str, str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    return path


def target_of(sb: Sandbox, key: str = API_KEY) -> Target:
    return Target.of(sb.url, key)


def ledger_ids(sb: Sandbox, kind: str, ids: list[str], key: str = API_KEY) -> set[str]:
    """The ids among `ids` that the ledger of this target holds (read-only: nothing is written)."""
    with Ledger.open(LEDGER, target_of(sb, key), read_only=True) as ledger:
        seen = ledger.lookup(kind, pa.array(ids, pa.string()), np.zeros(len(ids), np.uint64))
    return {i for i, known in zip(ids, seen.known.tolist(), strict=True) if known}


# -- nightly exports that overlap ---------------------------------------------------------------


def test_a_repeated_full_customers_export_sends_nothing(sb: Sandbox) -> None:
    rows = customer_rows(50)
    first, report = upload(save("customers-0701.csv", rows), "customers.yaml")
    assert first.exit_code == 0 and report["records_sent"] == 50 and report["rows_unchanged"] == 0
    requests = sb.stats()["requests"]

    again, report = upload(save("customers-0702.csv", rows), "customers.yaml")
    assert again.exit_code == 0, again.output
    assert report["rows_unchanged"] == report["records_unchanged"] == report["rows_read"] == 50
    assert report["rows_valid"] == report["records_sent"] == report["batches_total"] == 0
    assert sb.stats()["requests"] == requests  # not one request
    assert_no_key(Path.cwd(), again.output, again.stderr)


def test_only_the_changed_customer_is_sent(sb: Sandbox) -> None:
    rows = customer_rows(50)
    upload(save("customers-0701.csv", rows), "customers.yaml")
    requests = sb.stats()["requests"]
    rows[17]["Country"] = "CY"

    result, report = upload(save("customers-0702.csv", rows), "customers.yaml")
    assert result.exit_code == 0, result.output
    assert (report["records_sent"], report["rows_valid"], report["rows_unchanged"]) == (1, 1, 49)
    assert sb.stats()["requests"] == requests + 1
    stored = {c["customerId"]: c for c in sb.customers()}
    assert stored["fx_7017"]["country"] == "CY" and len(stored) == 50


def test_rolling_windows_of_deposits_send_only_the_new_day(sb: Sandbox) -> None:
    result, report = upload(save("deposits-01-03.csv", deposits_of_days(range(1, 4))), "deposits.yaml")
    assert result.exit_code == 0 and report["records_sent"] == 30

    result, report = upload(save("deposits-02-04.csv", deposits_of_days(range(2, 5))), "deposits.yaml")
    assert result.exit_code == 0, result.output
    assert (report["records_sent"], report["rows_unchanged"], report["rows_read"]) == (10, 20, 30)
    assert {a["eventid"][:5] for a in sb.activities()} == {"TX-01", "TX-02", "TX-03", "TX-04"}
    assert sb.stats()["activities"] == 40
    assert sb.stats()["duplicates_ignored"] == 0  # the overlap never reached the server


def test_an_eventid_sent_again_with_another_value_is_a_reject_naming_when(sb: Sandbox) -> None:
    rows = deposits_of_days(range(1, 3))
    upload(save("deposits-a.csv", rows), "deposits.yaml")
    requests = sb.stats()["requests"]
    rows[3]["Amount"] = "999.99"

    result, report = upload(save("deposits-b.csv", rows), "deposits.yaml")
    assert result.exit_code == 1, result.output
    assert (report["rows_rejected"], report["rows_unchanged"], report["records_sent"]) == (1, 19, 0)
    assert sb.stats()["requests"] == requests
    with open(report["rejects"], encoding="utf-8") as fh:
        (reject,) = list(csv.DictReader(fh))
    assert reject["Txn ID"] == "TX-01-003" and reject["source_line"] == "5"
    when = CONFLICT.fullmatch(reject["reason"])
    assert when is not None, reject["reason"]
    acknowledged = datetime.strptime(when.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert 0 <= (datetime.now(UTC) - acknowledged).total_seconds() < 120 + DEADLINE_S
    assert next(a for a in sb.activities() if a["eventid"] == "TX-01-003")["Value"] == "103.50"


def test_generated_eventids_are_remembered_across_runs(sb: Sandbox) -> None:
    write(Path("generated.yaml"), GENERATED_MAPPING)
    rows = deposits_of_days(range(1, 3))
    first, report = upload(save("gen-a.csv", rows), "generated.yaml")
    assert first.exit_code == 0 and report["records_sent"] == 20

    result, report = upload(save("gen-b.csv", rows + deposits_of_days(range(3, 4), 4)), "generated.yaml")
    assert result.exit_code == 0, result.output
    assert (report["records_sent"], report["rows_unchanged"]) == (4, 20)
    assert sb.stats()["activities"] == 24 and sb.stats()["duplicates_ignored"] == 0
    assert "no eventid" not in result.stderr  # a generated id is an id the ledger remembers


def test_restart_sends_everything_again_and_updates_the_ledger(sb: Sandbox) -> None:
    rows = deposits_of_days(range(1, 3))
    upload(save("deposits-a.csv", rows), "deposits.yaml")
    rows[3]["Amount"] = "999.99"
    requests = sb.stats()["requests"]

    result, report = upload(save("deposits-b.csv", rows), "deposits.yaml", "--restart")
    assert result.exit_code == 0, result.output
    assert (report["records_sent"], report["rows_unchanged"], report["rows_rejected"]) == (20, 0, 0)
    assert sb.stats()["requests"] == requests + 1  # one batch of 20
    # the ledger now holds the new value: the same rows in a new export are all unchanged
    result, report = upload(save("deposits-c.csv", rows), "deposits.yaml")
    assert result.exit_code == 0 and (report["records_sent"], report["rows_unchanged"]) == (0, 20)


def test_a_customer_twice_in_one_export_keeps_its_latest_record_on_the_next_night(sb: Sandbox) -> None:
    """A customerId twice in one export (an old and a new record) is sent twice, old then new
    (latest wins), and the ledger ends with the new one. The next night the same export sends
    the old record (changed against the ledger), so its later record must be sent too even
    though the ledger holds it (dedupe.LATER), or Track360 would end with the old values."""
    rows = customer_rows(3)
    rows.append({**rows[1], "Country": "CY"})  # fx_7001 again, moved to Cyprus
    upload(save("customers-0701.csv", rows), "customers.yaml")
    assert {c["customerId"]: c["country"] for c in sb.customers()}["fx_7001"] == "CY"

    result, report = upload(save("customers-0702.csv", rows), "customers.yaml")
    assert result.exit_code == 0, result.output
    assert {c["customerId"]: c["country"] for c in sb.customers()}["fx_7001"] == "CY"
    assert report["records_sent"] in (0, 2)  # nothing, or old then new again; never the old alone


# -- validate reads the ledger, never writes it -------------------------------------------------


def test_validate_reports_what_would_be_sent_and_never_writes_the_ledger(sb: Sandbox) -> None:
    upload(save("deposits-01-03.csv", deposits_of_days(range(1, 4))), "deposits.yaml")
    files = sorted(LEDGER.parent.glob(FILE_NAME + "*"))
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}
    requests = sb.stats()["requests"]

    result = t360("validate", save("deposits-02-04.csv", deposits_of_days(range(2, 5))), "-m", "deposits.yaml")
    assert result.exit_code == 0, result.output
    result = t360("validate", "deposits-02-04.csv", "-m", "deposits.yaml", "--report", "r.json")
    report = report_of(result)
    assert (report["rows_valid"], report["rows_unchanged"], report["batches_total"]) == (10, 20, 1)
    assert sorted(LEDGER.parent.glob(FILE_NAME + "*")) == files  # no -wal, no -journal beside it
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == before
    assert sb.stats()["requests"] == requests


def test_validate_without_a_key_says_in_one_line_that_the_ledger_is_not_consulted(sb: Sandbox) -> None:
    upload(save("deposits-a.csv", deposits_of_days(range(1, 2))), "deposits.yaml")
    configure(sb, key_file=False)
    result = t360("validate", "deposits-a.csv", "-m", "deposits.yaml", "--report", "r.json")
    assert result.exit_code == 0, result.output
    assert report_of(result)["rows_unchanged"] == 0
    said = [line for line in result.stderr.splitlines() if "ledger" in line]
    assert said == [f"the ledger {LEDGER} is not consulted (no API key or base_url says whose records to look up)."]


# -- t360 ledger forget | seed | stats ----------------------------------------------------------


def test_forget_then_upload_sends_those_again(sb: Sandbox) -> None:
    rows = customer_rows(30)
    upload(save("customers-0701.csv", rows), "customers.yaml")

    result = t360("ledger", "forget", "--kind", "customers", "--id", "fx_7003", "--id", "fx_7004", "--id", "fx_none")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"removed 2 entries of {target_of(sb)} from {LEDGER}.\n"
    result, report = upload(save("customers-0702.csv", rows), "customers.yaml")
    assert (report["records_sent"], report["rows_unchanged"]) == (2, 28)

    result = t360("ledger", "forget", "--kind", "customers")
    assert result.stdout == f"removed 30 entries of {target_of(sb)} from {LEDGER}.\n"
    result, report = upload(save("customers-0703.csv", rows), "customers.yaml")
    assert (report["records_sent"], report["rows_unchanged"]) == (30, 0)


def test_forget_before_a_day_and_all(sb: Sandbox) -> None:
    upload(save("deposits-a.csv", deposits_of_days(range(1, 3))), "deposits.yaml")
    upload(save("customers-0701.csv", customer_rows(5)), "customers.yaml")
    assert t360("ledger", "forget", "--before", "2000-01-01").stdout.startswith("removed 0 entries of ")
    tomorrow = datetime.fromtimestamp(time.time() + 86_400, UTC).strftime("%Y-%m-%d")
    result = t360("ledger", "forget", "--kind", "activities", "--before", tomorrow)
    assert result.exit_code == 0 and result.stdout.startswith("removed 20 entries of ")
    result = t360("ledger", "forget", "--all")
    assert result.exit_code == 0 and result.stdout == f"removed 5 entries of {target_of(sb)} from {LEDGER}.\n"
    assert t360("ledger", "forget", "--all").stdout.startswith("removed 0 entries of ")


@pytest.mark.parametrize(
    "args, sentence",
    [
        ([], "say what to forget: --kind K (with --id ID), --before YYYY-MM-DD, or --all."),
        (["--id", "fx_1"], "--id needs --kind (customers or activities)."),
        (
            ["--all", "--kind", "customers"],
            "--all removes everything of this target: leave out --kind, --id and --before.",
        ),
        (
            ["--all", "--before", "2025-07-01"],
            "--all removes everything of this target: leave out --kind, --id and --before.",
        ),
        (["--kind", "deposits"], "unknown ledger kind 'deposits': use customers or activities."),
        (["--before", "01/07/2025"], "--before takes a date YYYY-MM-DD (UTC), not '01/07/2025'."),
        (["--before", "2025-02-30"], "--before takes a date YYYY-MM-DD (UTC), not '2025-02-30'."),
    ],
)
def test_forget_refuses_bad_combinations_in_one_sentence(sb: Sandbox, args: list[str], sentence: str) -> None:
    result = t360("ledger", "forget", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {sentence}\n")
    assert not LEDGER.exists()  # nothing was created to say so


def test_seed_then_upload_sends_nothing(sb: Sandbox) -> None:
    rows = deposits_of_days(range(1, 4))
    rows[4]["Ccy"] = "XXQ"  # a reject is not recorded
    result = t360("ledger", "seed", save("deposits-history.csv", rows), "-m", "deposits.yaml")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"recorded 29 records of activities as acknowledged by {target_of(sb)} in {LEDGER}; nothing was sent."
    )
    assert lines[1] == "rows: 30 read, 29 valid, 1 rejected, 0 filtered, 0 duplicate"
    assert lines[2].startswith("rejects: ") and len(lines) == 3
    assert sb.stats()["requests"] == 0

    result, report = upload(save("deposits-02-04.csv", deposits_of_days(range(2, 5))), "deposits.yaml")
    assert result.exit_code == 0, result.output
    assert (report["records_sent"], report["rows_unchanged"]) == (10, 20)  # only day 4
    assert {a["eventid"][:5] for a in sb.activities()} == {"TX-04"}
    assert_no_key(Path.cwd(), result.output, result.stderr)


def test_seed_customers_then_a_full_export_sends_nothing(sb: Sandbox) -> None:
    rows = customer_rows(25)
    result = t360("ledger", "seed", save("customers-all.csv", rows), "-m", "customers.yaml")
    assert result.exit_code == 0 and "recorded 25 records of customers" in result.stdout
    result, report = upload(save("customers-0701.csv", rows), "customers.yaml")
    assert (result.exit_code, report["rows_unchanged"], sb.stats()["requests"]) == (0, 25, 0)


def test_seed_records_activities_whose_customers_it_never_saw_even_with_orphans_reject(sb: Sandbox) -> None:
    """Seeding adopts what already reached Track360 by other means: no orphan is refused."""
    configure(sb, extra="contract: {orphans: reject}\n")
    result = t360("ledger", "seed", save("deposits-a.csv", deposits_of_days(range(1, 2))), "-m", "deposits.yaml")
    assert result.exit_code == 0, result.output
    assert "recorded 10 records of activities" in result.stdout
    assert ledger_ids(sb, "activities", ["TX-01-000", "TX-01-009", "TX-09-000"]) == {"TX-01-000", "TX-01-009"}


def test_stats_shows_every_target_and_marks_this_one(sb: Sandbox) -> None:
    upload(save("deposits-a.csv", deposits_of_days(range(1, 3))), "deposits.yaml")
    with serve_in_thread(port=0, db=Path("other.db"), api_key=API_KEY) as other:
        configure(other)
        upload(save("customers-0701.csv", customer_rows(3)), "customers.yaml")
        result = t360("ledger", "stats", "--json")
    assert result.exit_code == 0, result.output
    held = orjson.loads(result.stdout)
    assert held["ledger"] == str(LEDGER) and held["target"] == str(target_of(other))
    seen = [(e["port"], e["kind"], e["count"], e["current"]) for e in held["entries"]]
    assert seen == [
        (target_of(other).port, "customers", 3, True),
        (target_of(other).port, "activities", 0, True),
        (target_of(sb).port, "activities", 20, False),
    ]
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    assert all(stamp.fullmatch(e["oldest"]) and stamp.fullmatch(e["newest"]) for e in held["entries"] if e["count"])

    plain = t360("ledger", "stats", "--base-url", sb.url).stdout.splitlines()
    assert plain[0] == f"the ledger {LEDGER} (* = this target: {target_of(sb)})"
    assert plain[1].split() == ["target", "kind", "count", "oldest", "newest"]
    row = re.compile(r"(\*?)\s+(\S+ \(key sha256:\w+\))\s+(\w+)\s+(\d+)\s+(-|\S+ \S+ UTC)\s+(-|\S+ \S+ UTC)")
    cells = [m.groups()[:4] for m in map(row.fullmatch, plain[2:]) if m]
    assert cells == [
        ("*", str(target_of(sb)), "customers", "0"),
        ("*", str(target_of(sb)), "activities", "20"),
        ("", str(target_of(other)), "customers", "3"),
    ]
    assert len(plain) == 5 and API_KEY not in result.stdout + "\n".join(plain)


def test_stats_on_a_missing_ledger_creates_nothing(sb: Sandbox) -> None:
    result = t360("ledger", "stats")
    assert result.exit_code == 0, result.output
    assert [line.split()[-4:] for line in result.stdout.splitlines()[2:]] == [
        ["customers", "0", "-", "-"],
        ["activities", "0", "-", "-"],
    ]
    assert not LEDGER.parent.exists()


@pytest.mark.parametrize("command", [["stats"], ["forget", "--all"], ["seed", "x.csv", "-m", "deposits.yaml"]])
def test_the_ledger_commands_need_a_key_and_a_base_url(sb: Sandbox, command: list[str]) -> None:
    configure(sb, key_file=False)
    result = t360("ledger", *command)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: no API key: $T360_API_KEY is not set. Export T360_API_KEY=... or set api_key_file in the config.\n"
    )
    Path("config.yaml").unlink()
    result = CliRunner().invoke(app, ["ledger", *command], env={"T360_API_KEY": API_KEY})
    assert (result.exit_code, result.stderr) == (
        2,
        "error: no base URL. Pass --base-url, set $T360_BASE_URL or base_url in the config.\n",
    )


# -- targets, orphans ---------------------------------------------------------------------------


def test_two_targets_in_one_state_dir_do_not_see_each_other(sb: Sandbox, tmp_path: Path) -> None:
    rows = customer_rows(20)
    upload(save("customers-0701.csv", rows), "customers.yaml")
    with serve_in_thread(port=0, db=tmp_path / "other.db", api_key=API_KEY) as other:
        configure(other)  # another base URL, the same key and state_dir
        result, report = upload(save("customers-0702.csv", rows), "customers.yaml")
        assert (report["records_sent"], report["rows_unchanged"]) == (20, 0)
        assert other.stats()["customers"] == 20
    configure(sb)
    write(Path("api.key"), "another-key\n")  # the same base URL, another key: validate does not send
    result = t360("validate", "customers-0701.csv", "-m", "customers.yaml", "--report", "r.json")
    assert (result.exit_code, report_of(result)["rows_unchanged"]) == (0, 0)
    write(Path("api.key"), API_KEY + "\n")
    result = t360("validate", "customers-0701.csv", "-m", "customers.yaml", "--report", "r.json")
    assert report_of(result)["rows_unchanged"] == 20


def test_orphan_activities_are_counted_and_warned_the_exit_code_unaffected(sb: Sandbox) -> None:
    upload(save("customers-0701.csv", customer_rows(3)), "customers.yaml")  # fx_7000 .. fx_7002
    rows = deposits_of_days(range(1, 2))  # Logins 7000 .. 7004: 4 rows for fx_7003 and fx_7004
    result, report = upload(save("deposits-a.csv", rows), "deposits.yaml")
    assert result.exit_code == 0, result.output
    assert (report["orphan_activities"], report["records_sent"]) == (4, 10)
    warned = [line for line in result.stderr.splitlines() if "never sent" in line]
    assert warned == [
        "warning: 4 activities are for customers never sent (first: fx_7003, fx_7004); "
        "send those customers first (the nightly job runs customers feeds first)."
    ]


def test_with_contract_orphans_reject_they_are_rejects(sb: Sandbox) -> None:
    configure(sb, extra="contract: {orphans: reject}\n")
    upload(save("customers-0701.csv", customer_rows(3)), "customers.yaml")
    result, report = upload(save("deposits-a.csv", deposits_of_days(range(1, 2))), "deposits.yaml")
    assert result.exit_code == 1, result.output
    assert (report["orphan_activities"], report["rows_rejected"], report["records_sent"]) == (4, 4, 6)
    with open(report["rejects"], encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    assert {(r["Login"], r["reason"]) for r in rejects} == {("7003", ORPHAN), ("7004", ORPHAN)}
    assert {a["customerid"] for a in sb.activities()} == {"fx_7000", "fx_7001", "fx_7002"}


# -- kill -9 never leaves the ledger ahead of the server -----------------------------------------


@pytest.fixture
def slow(sb: Sandbox) -> Iterator[Sandbox]:
    sb.set_faults(Faults(latency_ms=40))
    yield sb
    sb.set_faults(Faults())


def upload_args(name: str) -> list[str]:
    return [*T360, "upload", name, "-m", "deposits.yaml", "--report", "r.json", "-q"]


def start_upload(name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(upload_args(name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    """kill -9 once `ready()` holds (polled against a deadline); fail if the run ends first."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and not ready():
        try:
            proc.wait(timeout=0.01)  # the poll interval; an early exit fails below
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the upload ended (exit {proc.returncode}) before it could be killed")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL


def assert_ledger_behind_server(sb: Sandbox, rows: list[dict[str, str]]) -> set[str]:
    """Every id the ledger holds was stored by the sandbox; the ids it holds."""
    stored = {a["eventid"] for a in sb.activities()}
    held = ledger_ids(sb, "activities", [r["Txn ID"] for r in rows]) if LEDGER.exists() else set()
    assert held <= stored, f"the ledger holds {len(held - stored)} records the server never stored"
    return held


def assert_stored_once(sb: Sandbox, rows: list[dict[str, str]], in_flight: int) -> None:
    """Every row stored once; only records in flight at a kill (at most `in_flight`) reached it twice."""
    assert sorted(a["eventid"] for a in sb.activities()) == sorted(r["Txn ID"] for r in rows)
    assert sb.stats()["duplicates_ignored"] <= in_flight


def test_kill_9_mid_upload_then_the_rerun_sends_the_rest(slow: Sandbox) -> None:
    configure(slow, batch=10, concurrency=2)
    rows = deposits_of_days(range(1, 21), 20)  # 400 rows, 40 batches
    proc = start_upload(save("deposits.csv", rows))
    kill_when(proc, lambda: slow.stats()["activities"] >= 60)
    assert 60 <= slow.stats()["activities"] < 400
    assert_ledger_behind_server(slow, rows)
    slow.set_faults(Faults())
    requests = slow.stats()["requests"]

    result, report = upload("deposits.csv", "deposits.yaml")
    assert result.exit_code == 0, result.output
    assert report["batches_skipped"] >= 6 - 2 and report["batches_sent"] == slow.stats()["requests"] - requests
    assert report["batches_skipped"] + report["batches_sent"] == 40
    assert_stored_once(slow, rows, in_flight=2 * 10)
    assert_remembered_as_sent(slow, rows, at_least=report["records_sent"])


def assert_remembered_as_sent(sb: Sandbox, rows: list[dict[str, str]], at_least: int) -> None:
    """The ledger holds only stored records, with the very values sent (a new export of the
    same rows finds them unchanged), at least those the last run sent. SPEC 13: what the
    killed attempt acknowledged but never wrote to the ledger is sent once more by a later
    new run (the resume skips it by the log)."""
    held = assert_ledger_behind_server(sb, rows)
    assert len(held) >= at_least
    fresh = t360("validate", save("deposits-again.csv", rows), "-m", "deposits.yaml", "--report", "r.json")
    assert report_of(fresh)["rows_unchanged"] == len(held)


def test_kill_9_at_several_points_never_leaves_the_ledger_ahead(sb: Sandbox) -> None:
    """Slow enough (30,000 rows, 100 ms an answer) that the ledger is written during the run
    (every 2 s of acknowledgements), not only at its end; killed before and after a write."""
    configure(sb, batch=500, concurrency=2)
    rows = deposits_of_days(range(1, 31), 1000)
    name = save("deposits-big.csv", rows)
    sb.set_faults(Faults(latency_ms=100))
    log = Path(".t360/runs")
    points = [lambda: sb.stats()["activities"] >= 3000, lambda: len(ledger_or_nothing(sb, rows)) > 0]
    for ready in points:
        kill_when(start_upload(name), ready)
        held = assert_ledger_behind_server(sb, rows)
        (path,) = log.glob("*.jsonl")
        acked = sum(e["records"] for e in read_log(path)[1] if e["index"] >= 0 and e.get("status") == "acked")
        assert len(held) <= acked  # never more than the log holds as acknowledged
    assert 0 < len(held) < 30_000
    sb.set_faults(Faults())
    result = subprocess.run(upload_args(name), env=cli_env(), capture_output=True, timeout=DEADLINE_S)
    assert result.returncode == 0, result.stderr
    assert_stored_once(sb, rows, in_flight=len(points) * 2 * 500)
    assert_remembered_as_sent(sb, rows, at_least=len(held))


def ledger_or_nothing(sb: Sandbox, rows: list[dict[str, str]]) -> set[str]:
    """The ids the ledger holds, empty while its file does not exist or is being created."""
    if not LEDGER.exists():
        return set()
    try:
        return ledger_ids(sb, "activities", [r["Txn ID"] for r in rows[:: len(rows) // 50]])
    except LedgerError:  # the writer is setting the file up this very moment
        return set()


def test_the_key_is_in_no_file_the_ledger_commands_leave(sb: Sandbox) -> None:
    rows = customer_rows(5)
    outputs = [t360("ledger", "seed", save("c.csv", rows), "-m", "customers.yaml")]
    outputs += [t360("ledger", "stats"), t360("ledger", "stats", "--json"), t360("ledger", "forget", "--all")]
    assert all(r.exit_code == 0 for r in outputs)
    assert_no_key(Path.cwd(), *(r.stdout + r.stderr for r in outputs))


def test_stats_on_a_terminal_is_a_table(sb: Sandbox) -> None:
    upload(save("customers-0701.csv", customer_rows(4)), "customers.yaml")
    out = io.StringIO()
    Terminal(out=out, is_tty=True, width=160).show_ledger_stats(ledger_ops.stats(resolve(None, {})), as_json=False)
    shown = out.getvalue()
    assert f"the ledger {LEDGER} (* = this target: {target_of(sb)})" in shown
    assert re.search(r"\* .* customers .* 4 .* UTC .* UTC", shown) and re.search(r"activities .* 0 .* - .* -", shown)
