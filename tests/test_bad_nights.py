"""SPEC 10, unattended runs: every failure ends the run quickly, says what happened in one
sentence and leaves the exit code a cron job acts on. Real sockets on 127.0.0.1 throughout:
the sandbox, a closed port, a TLS server with a certificate made here, a `.invalid` host."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import (
    API_KEY,
    DEPOSITS_MAPPING,
    assert_no_key,
    cli,
    counts_add_up,
    deposit_rows,
    deposits_csv,
    mapping,
    settings_for,
    write,
)
from helpers import serving

from t360cli import run as run_module
from t360cli.errors import DeliveryIncomplete, ExitCode, TooFewRows
from t360cli.plan import command_line
from t360cli.progress_log import LogLock, read_log
from t360cli.report import Report
from t360cli.run import RunOptions, upload, validate
from t360cli.sandbox import Faults
from t360cli.tally import Counts

pytestmark = pytest.mark.usefixtures("clean_env")
KEY_ENV = {"T360_API_KEY": API_KEY}
EP = "/tracking/events/activities"
FAST_RETRY = "retry: {max_attempts: 2, backoff_initial_s: 0.001, backoff_max_s: 0.01}\n"


class Notes:
    """An observer that keeps what the run says."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.report: Report | None = None

    def start(self, title: str, dry_run: bool = False, estimate_rows: Any = None) -> None: ...
    def progress(self, counts: Counts) -> None: ...
    def retry(self, label: str) -> None: ...

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self, report: Report) -> None:
        self.report = report


def closed_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def inputs(tmp: Path, rows: int) -> tuple[Path, Path]:
    return deposits_csv(tmp / "d.csv", deposit_rows(rows)), mapping(tmp, DEPOSITS_MAPPING)


def upload_cli(tmp: Path, base_url: str, *extra: str, config: str = FAST_RETRY, timeout: float = 60) -> Any:
    write(tmp / "config.yaml", config)
    args = ["upload", "d.csv", "-m", "mapping.yaml", "-c", "config.yaml", "--base-url", base_url]
    return cli(*args, "--batch-size", "10", "--report", "r.json", *extra, cwd=tmp, env=KEY_ENV, timeout=timeout)


def the_log(tmp: Path) -> Path:
    (log,) = sorted((tmp / ".t360" / "runs").glob("*.jsonl"))
    return log


def batch_entries(log: Path) -> list[dict[str, Any]]:
    _, entries = read_log(log)
    return [e for e in entries if e["index"] >= 0]


def error_line(res: Any) -> str:
    """The one error sentence (warnings about the data, such as orphan activities, aside)."""
    lines = [line for line in res.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return str(lines[0][len("error: ") :])


# --- a wrong endpoint: 404 / 405 --------------------------------------------------------------


@pytest.mark.parametrize(("status", "phrase"), [(404, "Not Found"), (405, "Method Not Allowed")])
def test_404_or_405_stops_at_once_with_the_full_url(tmp_path, sandbox, status: int, phrase: str) -> None:
    inputs(tmp_path, 200)  # 20 batches
    sandbox.set_faults(Faults(answer_status=status))
    res = upload_cli(tmp_path, sandbox.url, "--concurrency", "4")
    assert res.returncode == ExitCode.INCOMPLETE == 4, res.stderr
    assert error_line(res) == (
        f"{sandbox.url}{EP} answered HTTP {status} {phrase}; nothing more was sent. "
        "Check base_url: it must be the Track360 API host (t360 adds /tracking/events/... itself)."
    )
    received = sandbox.stats()["requests"]
    assert 1 <= received <= 4  # one request per batch in flight at most, none retried
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["exit_code"] == 4 and report["records_sent"] == 0 and counts_add_up(report)
    assert sum(report["http_status_counts"].values()) == received
    assert not LogLock(the_log(tmp_path)).path.exists()


def test_base_url_with_a_path_is_told_it_is_the_host_only(tmp_path, sandbox) -> None:
    inputs(tmp_path, 30)
    res = upload_cli(tmp_path, sandbox.url + "/api/v1/", "--concurrency", "1")
    assert res.returncode == 4, res.stderr
    assert error_line(res) == (
        f"{sandbox.url}/api/v1{EP} answered HTTP 404 Not Found; nothing more was sent. "
        f"base_url is the host only (t360 adds /tracking/events/...): set base_url to {sandbox.url}, "
        f"not {sandbox.url}/api/v1, then rerun the same command."
    )
    assert sandbox.stats()["activities"] == 0
    entries = batch_entries(the_log(tmp_path))
    assert len(entries) == 1 and entries[0]["statuses"] == {"404": 1} and entries[0]["status"] == "failed"


# --- a dead endpoint: failed batches in a row ---------------------------------------------------


def test_a_closed_port_stops_after_three_failed_batches(tmp_path) -> None:
    inputs(tmp_path, 1000)  # 100 batches
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    res = upload_cli(tmp_path, url, "--concurrency", "2")
    assert res.returncode == 4, res.stderr
    assert time.monotonic() - started < 30
    assert error_line(res) == (
        f"cannot connect to {url} (connection refused); 3 batches failed in a row, "
        "nothing more was sent; rerun the same command to resume."
    )
    entries = batch_entries(the_log(tmp_path))
    assert 3 <= len(entries) <= 3 + 1  # the three, and at most the one still in flight
    assert all(e["status"] == "failed" for e in entries)
    assert entries[0]["error"] == "connection refused after 2 attempts"
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["exit_code"] == 4 and report["batches_failed"] == len(entries) and report["batches_sent"] == 0


def test_an_acknowledged_batch_breaks_the_row(tmp_path, sandbox, key_file) -> None:
    """Failures that are not in a row do not stop the run; it ends with exit 4 all the same."""
    src, m = inputs(tmp_path, 100)
    sandbox.set_faults(Faults(fail_rate=0.5, seed=7))
    settings = settings_for(sandbox, key_file, batch_size=10, concurrency=1, max_attempts=1)
    report = upload(RunOptions([str(src)], str(m)), settings)
    outcomes = ["acked" if e["status"] == "acked" else "failed" for e in batch_entries(Path(report.log or ""))]
    assert len(outcomes) == 10 and "failed" in outcomes and "acked" in outcomes
    assert "failed,failed,failed" not in ",".join(outcomes)  # the seed gives no three in a row
    assert report.exit_code == 4 and report.counts.batches_failed == outcomes.count("failed")


def test_a_closed_port_with_default_retry_settings_ends_within_150_s(tmp_path) -> None:
    """SPEC 10: with the default settings a server that refuses connections ends the run
    within about 90 s whatever the size of the input (8 attempts, full jitter to 60 s)."""
    inputs(tmp_path, 1000)  # 100 batches
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    res = upload_cli(tmp_path, url, config="{}\n", timeout=150)
    took = time.monotonic() - started
    print(f"closed port, default retry settings, 100 batches: {took:.1f} s")
    assert res.returncode == 4, res.stderr
    assert took < 150
    assert "(connection refused); 3 batches failed in a row" in res.stderr
    entries = batch_entries(the_log(tmp_path))
    assert len(entries) <= 3 + 3 and all(e["attempts"] == 8 or e["error"].startswith("not sent") for e in entries)


# --- TLS and DNS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by itself (its own CA), made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl binary is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


class _Collect(http.server.BaseHTTPRequestHandler):
    """Accepts every POST (a JSON array) and counts what it got."""

    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.records += len(orjson.loads(body))
        answer = b'{"accepted": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collect)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.records = 0
    with serving(server):
        yield server


def test_a_self_signed_certificate_stops_at_once_and_ca_bundle_fixes_it(tmp_path, self_signed) -> None:
    cert, key = self_signed
    inputs(tmp_path, 50)
    with tls_server(cert, key) as server:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        res = upload_cli(tmp_path, url, "--concurrency", "2")
        assert res.returncode == 4, res.stderr
        line = error_line(res)
        assert line.startswith("cannot verify the TLS certificate of 127.0.0.1 (self")
        assert line.endswith(
            " certificate); nothing more was sent. If 127.0.0.1 uses a private CA, "
            "set ca_bundle: to its PEM file in the config, then rerun the same command."
        )
        assert server.records == 0
        entries = batch_entries(the_log(tmp_path))
        assert 1 <= len(entries) <= 2 and all(e["statuses"] == {"tls": 1} for e in entries if e["attempts"])

        fixed = upload_cli(tmp_path, url, "--concurrency", "2", config=FAST_RETRY + f"ca_bundle: {cert}\n")
        assert fixed.returncode == 0, fixed.stderr
        assert server.records == 50
        assert f"resuming {the_log(tmp_path).relative_to(tmp_path)}: 0 of " in fixed.stderr
    assert_no_key(tmp_path, res.stdout, res.stderr, fixed.stdout, fixed.stderr)


def _resolves_quickly_or_not(host: str) -> bool | None:
    """True if `host` resolves, False if it fails within 5 s, None if the resolver hangs."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(socket.getaddrinfo, host, 443)
    try:
        future.result(timeout=5)
    except socket.gaierror:
        return False
    except FutureTimeout:
        return None
    finally:
        pool.shutdown(wait=False)
    return True


def test_a_host_that_does_not_resolve_stops_at_once_naming_it(tmp_path) -> None:
    host = "t360-bad-night.invalid"
    if _resolves_quickly_or_not(host) is not False:
        pytest.skip(f"this machine's resolver does not fail fast for {host}")
    inputs(tmp_path, 50)
    res = upload_cli(tmp_path, f"https://{host}", "--concurrency", "2", config=FAST_RETRY + "timeout_s: 5\n")
    assert res.returncode == 4, res.stderr
    line = error_line(res)
    assert line.startswith(f"the host name {host} does not resolve (")
    assert line.endswith(
        "); nothing more was sent. Check the host in base_url (and this machine's DNS), then rerun the same command."
    )
    entries = batch_entries(the_log(tmp_path))
    assert 1 <= len(entries) <= 2 and all(e["attempts"] <= 1 for e in entries)


# --- Retry-After over real HTTP -------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after_max_s", "at_least", "below"), [(300.0, 0.6, 5.0), (0.05, 0.0, 0.5)])
def test_retry_after_is_waited_in_full_up_to_the_cap(
    tmp_path, sandbox, key_file, retry_after_max_s: float, at_least: float, below: float
) -> None:
    """backoff_max_s (0.01 here) never shortens a server's Retry-After (0.3 s); retry_after_max_s does."""
    src, m = inputs(tmp_path, 5)
    sandbox.set_faults(Faults(throttle_rate=1.0, retry_after=0.3))
    settings = settings_for(sandbox, key_file, max_attempts=3, backoff_max_s=0.01, retry_after_max_s=retry_after_max_s)
    started = time.monotonic()
    report = upload(RunOptions([str(src)], str(m)), settings)
    took = time.monotonic() - started
    assert report.counts.http_status_counts == {"429": 3} and report.exit_code == 4
    assert at_least <= took < below  # two waits of 0.3 s, or of 0.05 s


# --- exit 1 against exit 4 ----------------------------------------------------------------------


def test_rejects_with_failed_batches_exit_4_and_rejects_alone_exit_1(tmp_path, sandbox, key_file) -> None:
    rows = deposit_rows(40)
    rows[5]["Amount"] = "lots"  # one reject
    src, m = deposits_csv(tmp_path / "d.csv", rows), mapping(tmp_path, DEPOSITS_MAPPING)
    sandbox.set_faults(Faults(fail_endpoint="activities"))
    settings = settings_for(sandbox, key_file, batch_size=10, max_attempts=1, stop_after_failed_batches=100)
    failed = upload(RunOptions([str(src)], str(m)), settings)
    assert (failed.exit_code, failed.counts.rows_rejected, failed.counts.batches_failed) == (4, 1, 4)
    dry = validate(RunOptions([str(src)], str(m)), settings)
    assert dry.exit_code == 1
    sandbox.set_faults(Faults())
    done = upload(RunOptions([str(src)], str(m)), settings)
    assert (done.exit_code, done.counts.batches_sent, done.counts.records_sent) == (1, 4, 39)


# --- an error after sending began -----------------------------------------------------------------


def test_an_unwritable_report_after_sending_exits_4_and_the_rerun_resumes(tmp_path, sandbox) -> None:
    inputs(tmp_path, 100)
    write(tmp_path / "afile", "a regular file, not a folder\n")
    res = upload_cli(tmp_path, sandbox.url, "--report", "afile/r.json")
    assert res.returncode == 4, res.stderr
    log = the_log(tmp_path)
    line = error_line(res)  # the path and the cause, what files.py advises, and how to resume
    assert line.startswith("cannot write afile/r.json: Not a directory. ")
    assert line.endswith(
        f" What was acknowledged is kept in {log.relative_to(tmp_path)}: rerun the same command to resume."
    )
    entries = batch_entries(log)
    assert len(entries) == 10 and all(e["status"] == "acked" for e in entries)
    assert not LogLock(log).path.exists()
    header, lines = read_log(log)
    assert lines[-1]["summary"]["exit_code"] == 4
    assert header["command"] == [
        "t360", "upload", "d.csv", "-m", "mapping.yaml", "-c", "config.yaml", "--base-url", sandbox.url,
        "--batch-size", "10", "--report", "r.json", "--report", "afile/r.json",
    ]  # fmt: skip
    assert header["cwd"] == str(tmp_path)
    requests = sandbox.stats()["requests"]

    again = upload_cli(tmp_path, sandbox.url)
    assert again.returncode == 0, again.stderr
    assert sandbox.stats()["requests"] == requests  # nothing sent again
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert (report["batches_skipped"], report["batches_sent"], report["exit_code"]) == (10, 0, 0)
    assert f"resuming {log.relative_to(tmp_path)}: 10 of 10 batches already acknowledged" in again.stderr


def test_a_reading_thread_that_dies_after_sending_began_exits_4(tmp_path, sandbox, key_file, monkeypatch) -> None:
    src, m = inputs(tmp_path, 50)
    real = run_module.batches

    def dies_after_two(pipe: Any, settings: Any) -> Iterator[Any]:
        for n, batch in enumerate(real(pipe, settings)):
            if n == 2:
                raise MemoryError("simulated")
            yield batch

    monkeypatch.setattr(run_module, "batches", dies_after_two)
    notes = Notes()
    settings = settings_for(sandbox, key_file, batch_size=10, concurrency=1)
    with pytest.raises(DeliveryIncomplete) as info:
        upload(RunOptions([str(src)], str(m)), settings, notes)
    assert info.value.exit_code == 4
    log = Path(notes.report.log if notes.report else "")
    assert str(info.value) == (
        "the run stopped after sending began: MemoryError: simulated. "
        f"What was acknowledged is kept in {log}: rerun the same command to resume."
    )
    assert [e["status"] for e in batch_entries(log)] == ["acked", "acked"]
    assert not LogLock(log).path.exists()
    assert sandbox.stats()["activities"] == 20


def test_the_command_line_is_recorded_without_a_password() -> None:
    python_m = ["/x/t360cli/__main__.py", "upload", "d.csv", "--base-url", "https://me:secret@host.example"]
    assert command_line(python_m) == ["t360", "upload", "d.csv", "--base-url", "https://***@host.example"]
    assert command_line(["/usr/local/bin/t360", "replay", "x.jsonl"]) == ["t360", "replay", "x.jsonl"]
    assert command_line(["/x/pytest/__main__.py", "-q"]) is None  # a library call: no t360 command to repeat


# --- guards: --min-rows, nothing read, everything filtered ----------------------------------------


def test_min_rows_not_met_sends_nothing_and_exits_3(tmp_path, sandbox, key_file) -> None:
    src, m = inputs(tmp_path, 30)
    settings = settings_for(sandbox, key_file)
    with pytest.raises(TooFewRows) as info:
        upload(RunOptions([str(src)], str(m), min_rows=31, report=str(tmp_path / "r.json")), settings)
    assert str(info.value) == "30 of 30 rows are valid, fewer than --min-rows 31; nothing was sent."
    assert info.value.exit_code == 3 and sandbox.stats()["requests"] == 0
    assert orjson.loads((tmp_path / "r.json").read_bytes())["exit_code"] == 3
    with pytest.raises(TooFewRows):
        validate(RunOptions([str(src)], str(m), min_rows=31), settings)
    report = upload(RunOptions([str(src)], str(m), min_rows=30), settings)
    assert report.exit_code == 0 and sandbox.stats()["activities"] == 30


def test_no_data_row_warns_and_exits_0_unless_min_rows(tmp_path, sandbox, key_file) -> None:
    src, m = inputs(tmp_path, 0)
    notes = Notes()
    report = upload(RunOptions([str(src)], str(m)), settings_for(sandbox, key_file), notes)
    assert report.exit_code == 0 and sandbox.stats()["requests"] == 0
    assert notes.notes == [f"warning: no data row was read from {src}."]
    with pytest.raises(TooFewRows) as info:
        upload(RunOptions([str(src)], str(m), min_rows=1), settings_for(sandbox, key_file), Notes())
    assert str(info.value) == "0 of 0 rows are valid, fewer than --min-rows 1; nothing was sent."


def test_where_that_filters_every_row_shows_the_values_seen(tmp_path, sandbox, key_file) -> None:
    lines = ["Txn ID,Login,Date,Amount,Ccy,Status"]
    lines += [f"T{i},51,2025-07-01 10:00:00,1.00,USD,{'Pending' if i % 3 else 'Cancelled'}" for i in range(30)]
    src = write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    m = mapping(
        tmp_path, DEPOSITS_MAPPING.replace("kind: activities\n", "kind: activities\nwhere:\n  Status: [approved]\n")
    )
    notes = Notes()
    report = validate(RunOptions([str(src)], str(m)), settings_for(sandbox, key_file), notes)
    assert report.exit_code == 0 and report.counts.rows_filtered == 30
    assert notes.notes == [
        "warning: where: filtered all 30 rows; values seen most often: Status: Pending (20), Cancelled (10)."
    ]
