"""The `t360` command line: exit codes, one-line errors, reports, settings, help.

Most tests call the typer app in-process (CliRunner); a few run the installed script in a
subprocess to check that the exit codes and the absence of tracebacks are real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from conftest import cli
from typer.testing import CliRunner, Result

from t360cli.cli import app
from t360cli.sandbox import serve_in_thread

ENV_VARS = ("T360_API_KEY", "T360_BASE_URL", "T360_CONFIG", "T360_STATE_DIR")
KEY = "cli-test-key-7d1e"
MAPPING = """kind: customers
fields:
  customerId: {template: "fx_{Login}"}
  country: {column: Country, type: country}
"""
BAD_MAPPING = """kind: customers
fields:
  customerId: {template: "fx_{Logn}"}
"""
# SPEC 7: every key the report holds.
REPORT_KEYS = {
    "kind",
    "dry_run",
    "files",
    "rows_read",
    "rows_valid",
    "rows_filtered",
    "rows_rejected",
    "rows_duplicate",
    "records_valid",
    "records_sent",
    "batches_total",
    "batches_sent",
    "batches_failed",
    "batches_skipped",
    "retries",
    "http_status_counts",
    "unattributed_customers",
    "rows_unchanged",
    "records_unchanged",
    "orphan_activities",
    "customers_missing",
    "log",
    "rejects",
    "duration_s",
    "exit_code",
    "totals",
}
EXTRA_REPORT_KEYS = {"top_reject_reasons", "failed_causes"}  # SPEC 10: the summary's why, in the JSON too


def csv_rows(n: int, bad: set[int] = frozenset()) -> str:
    """n data rows; the rows numbered in `bad` (1-based) carry an unknown country."""
    return "Login,Country\n" + "".join(f"{i},{'XX' if i in bad else 'ES'}\n" for i in range(1, n + 1))


@pytest.fixture(autouse=True)
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with small inputs and none of t360's variables set."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(BAD_MAPPING, encoding="utf-8")
    (tmp_path / "good.csv").write_text(csv_rows(3), encoding="utf-8")
    (tmp_path / "one_bad.csv").write_text(csv_rows(10, {4}), encoding="utf-8")
    (tmp_path / "two_bad.csv").write_text(csv_rows(10, {4, 9}), encoding="utf-8")
    return tmp_path


def t360(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def one_error(result: Result) -> str:
    """The single stderr line, checked to be an `error: ` line without a traceback."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def load_report(path: Path) -> dict:
    report = json.loads(path.read_text(encoding="utf-8"))
    assert set(report) == REPORT_KEYS | EXTRA_REPORT_KEYS
    assert report["rows_read"] == (
        report["rows_valid"]
        + report["rows_rejected"]
        + report["rows_filtered"]
        + report["rows_duplicate"]
        + report["rows_unchanged"]
    )
    return report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox() -> Iterator:
    with serve_in_thread(api_key=KEY) as sb:
        yield sb


# -- validate: exit codes -----------------------------------------------------------------


def test_validate_all_valid_exits_0(work: Path) -> None:
    result = t360("validate", "good.csv", "-m", "m.yaml", "--report", "r.json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "t360: rows read: 3" in result.stdout.splitlines()
    report = load_report(work / "r.json")
    assert (report["rows_valid"], report["rows_rejected"], report["exit_code"], report["dry_run"]) == (3, 0, 0, True)
    assert report["rejects"] is None and report["log"] is None
    assert not list(work.glob(".t360/runs/*.jsonl"))  # a dry run keeps no progress log


def test_validate_with_rejects_exits_1(work: Path) -> None:
    result = t360("validate", "one_bad.csv", "-m", "m.yaml", "--report", "r.json", "--rejects", "rej.csv")
    assert result.exit_code == 1, result.output
    report = load_report(work / "r.json")
    assert (report["rows_read"], report["rows_valid"], report["rows_rejected"]) == (10, 9, 1)
    assert report["rejects"] == "rej.csv"
    rejects = (work / "rej.csv").read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "source_file,source_line,reason,Login,Country"
    assert len(rejects) == 2 and ",5," in rejects[1] and rejects[1].endswith(",4,XX")


def test_all_rows_rejected_shows_the_reasons_without_opening_the_csv(work: Path) -> None:
    """SPEC 10: 41 of 41 rejected, the summary says why, grouped by field and rule, with the first line."""
    rows = "".join(f"{i},{'XX' if i % 2 else 'YY'}\n" for i in range(1, 42))
    (work / "deals.csv").write_text("Login,Country\n" + rows, encoding="utf-8")
    result = t360("validate", "deals.csv", "-m", "m.yaml", "--report", "r.json")
    assert result.exit_code == 1, result.output
    assert "t360: reject reason: 41 x country: not a known country (first: deals.csv line 2)" in result.stdout
    report = load_report(work / "r.json")
    assert report["top_reject_reasons"] == [
        {"reason": "country: not a known country", "count": 41, "first_file": "deals.csv", "first_line": 2}
    ]
    assert report["failed_causes"] == {}


def test_report_dash_writes_json_to_stdout_and_the_summary_to_stderr(work: Path) -> None:
    result = t360("validate", "one_bad.csv", "-m", "m.yaml", "--report", "-")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)  # stdout is the JSON report and nothing else
    assert set(report) == REPORT_KEYS | EXTRA_REPORT_KEYS and report["rows_rejected"] == 1
    assert "t360: dry run of customers finished, exit 1" in result.stderr.splitlines()
    assert "t360: reject reason: 1 x country: not a known country (first: one_bad.csv line 5)" in result.stderr
    assert not (work / "-").exists()


def test_report_dash_when_max_rejects_stops_the_dry_run(work: Path) -> None:
    result = t360("validate", "two_bad.csv", "-m", "m.yaml", "--report", "-", "--max-rejects", "1")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["exit_code"] == 3
    assert result.stderr.splitlines()[-1].startswith("error: 2 of 10 rows are invalid, more than --max-rejects 1")


def test_report_and_rejects_through_a_symlink_keep_the_link(work: Path) -> None:
    (work / "real").mkdir()
    (work / "r.json").symlink_to(work / "real" / "r.json")
    (work / "rej.csv").symlink_to(work / "real" / "rej.csv")
    result = t360("validate", "one_bad.csv", "-m", "m.yaml", "--report", "r.json", "--rejects", "rej.csv")
    assert result.exit_code == 1, result.output
    assert (work / "r.json").is_symlink() and (work / "rej.csv").is_symlink()
    assert json.loads((work / "real" / "r.json").read_text(encoding="utf-8"))["rows_rejected"] == 1
    assert (work / "real" / "rej.csv").read_text(encoding="utf-8").endswith(",4,XX\n")


def test_mapping_error_exits_2_with_one_line() -> None:
    result = t360("validate", "good.csv", "-m", "bad.yaml")
    assert result.exit_code == 2
    assert one_error(result) == (
        "error: bad.yaml, line 3: column 'Logn' is not in good.csv. "
        "Did you mean 'Login'? Its columns are: Login, Country."
    )
    assert result.stdout == ""


def test_missing_file_exits_2() -> None:
    result = t360("validate", "nope.csv", "-m", "m.yaml")
    assert result.exit_code == 2
    assert one_error(result) == "error: nope.csv: no such file. Check the path."
    result = t360("validate", "good.csv", "-m", "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml" in one_error(result)


@pytest.mark.parametrize(
    "file, limit, code",
    [
        ("one_bad.csv", "1", 1),  # exactly at the limit: fine
        ("two_bad.csv", "1", 3),  # above it: stopped
        ("one_bad.csv", "10%", 1),  # 1 of 10 rows = 10%: at the limit
        ("two_bad.csv", "10%", 3),  # 2 of 10 rows = 20%
        ("two_bad.csv", "20%", 1),
        ("one_bad.csv", "0", 3),
        ("good.csv", "0", 0),
    ],
)
def test_max_rejects(work: Path, file: str, limit: str, code: int) -> None:
    result = t360("validate", file, "-m", "m.yaml", "--max-rejects", limit, "--report", "r.json")
    assert result.exit_code == code, result.output
    report = load_report(work / "r.json")  # written even when stopped
    assert report["exit_code"] == code
    if code == 3:
        line = one_error(result)
        assert line.startswith(
            f"error: {report['rows_rejected']} of 10 rows are invalid, more than --max-rejects {limit}."
        )
        assert report["rejects"] and Path(report["rejects"]).is_file()
    else:
        assert result.stderr == ""


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "%", "ten%"])
def test_max_rejects_bad_value_exits_2(value: str) -> None:
    result = t360("validate", "good.csv", "-m", "m.yaml", f"--max-rejects={value}")
    assert result.exit_code == 2
    assert f"--max-rejects '{value}'" in one_error(result)


def test_limit_reads_only_the_first_rows(work: Path) -> None:
    result = t360("validate", "one_bad.csv", "-m", "m.yaml", "--limit", "3", "--report", "r.json")
    assert result.exit_code == 0, result.output  # the bad row (the 4th) is not read
    assert load_report(work / "r.json")["rows_read"] == 3
    result = t360("validate", "one_bad.csv", "-m", "m.yaml", "--limit", "4", "--report", "r.json")
    assert result.exit_code == 1
    assert load_report(work / "r.json")["rows_read"] == 4


@pytest.mark.parametrize("args", [["--limit", "0"], ["--batch-size", "0"], ["--bogus"], []])
def test_bad_command_lines_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["validate", "good.csv", *args] + (["-m", "m.yaml"] if args else []))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# -- upload: dry run, key, URL --------------------------------------------------------------


def test_dry_run_equals_validate_and_connects_nowhere(work: Path) -> None:
    with socket.socket() as listener:  # a port that records any connection attempt
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        dry = t360("upload", "one_bad.csv", "-m", "m.yaml", "--dry-run", "--base-url", url, "--report", "d.json")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    val = t360("validate", "one_bad.csv", "-m", "m.yaml", "--report", "v.json")
    assert dry.exit_code == val.exit_code == 1
    d, v = load_report(work / "d.json"), load_report(work / "v.json")
    d.pop("duration_s"), v.pop("duration_s")
    # the default rejects name carries the host in its fingerprint; the contents are the same
    assert Path(d.pop("rejects")).read_text() == Path(v.pop("rejects")).read_text()
    assert d == v and d["dry_run"] is True and d["records_sent"] == 0

    def lines(r: Result) -> list[str]:
        return [x for x in r.stdout.splitlines() if not x.startswith(("t360: time:", "t360: rejects:"))]

    assert lines(dry) == lines(val)
    assert not list(work.glob(".t360/runs/*.jsonl"))


def test_upload_without_key_exits_2_naming_the_variable(work: Path) -> None:
    result = t360("upload", "good.csv", "-m", "m.yaml", "--base-url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 2
    assert one_error(result) == (
        "error: no API key: $T360_API_KEY is not set. Export T360_API_KEY=... or set api_key_file in the config."
    )
    assert not list(work.glob(".t360/runs/*.jsonl"))


def test_upload_with_api_key_file_and_whitespace(work: Path, sandbox) -> None:
    (work / "key").write_text(f"  {KEY}  \n\n", encoding="utf-8")
    (work / "c.yaml").write_text(f"base_url: {sandbox.url}\napi_key_file: key\n", encoding="utf-8")
    result = t360("upload", "one_bad.csv", "-m", "m.yaml", "-c", "c.yaml", "--report", "r.json")
    assert result.exit_code == 1, result.output  # one row rejected, every batch acknowledged
    report = load_report(work / "r.json")
    assert (report["records_sent"], report["batches_sent"], report["batches_failed"]) == (9, 1, 0)
    assert sandbox.stats()["customers"] == 9
    log = Path(report["log"])
    texts = [
        result.stdout,
        result.stderr,
        (work / "r.json").read_text(),
        log.read_text(),
        Path(report["rejects"]).read_text(),
    ]
    assert all(KEY not in text for text in texts)
    status = t360("status", str(log))
    assert status.exit_code == 0
    assert "batches: 1 acknowledged, 0 failed (0 records pending)" in status.stdout


def test_upload_stopped_by_max_rejects_sends_nothing_and_reports(
    work: Path, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T360_API_KEY", KEY)
    result = t360(
        "upload", "two_bad.csv", "-m", "m.yaml", "--base-url", sandbox.url, "--max-rejects", "10%", "--report", "r.json"
    )
    assert result.exit_code == 3
    assert one_error(result).startswith(
        "error: 2 of 10 rows are invalid, more than --max-rejects 10%; nothing was sent."
    )
    report = load_report(work / "r.json")
    assert (report["exit_code"], report["dry_run"], report["records_sent"]) == (3, False, 0)
    assert sandbox.stats()["requests"] == 0


def test_plain_http_to_a_remote_host_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T360_API_KEY", KEY)
    result = t360("upload", "good.csv", "-m", "m.yaml", "--base-url", "http://api.example.com")
    assert result.exit_code == 2
    assert one_error(result) == (
        "error: refusing plain http to api.example.com: the API key would travel "
        "unencrypted. Use https, or set allow_insecure_http: true in the config."
    )


def test_allow_insecure_http_warns_and_sends(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.2 is a loopback address t360 does not count as local: the rule applies to it."""
    try:
        sb = serve_in_thread(host="127.0.0.2", api_key=KEY)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.2 on this machine: {exc}")
    monkeypatch.setenv("T360_API_KEY", KEY)
    with sb:
        refused = t360("upload", "good.csv", "-m", "m.yaml", "--base-url", sb.url)
        assert refused.exit_code == 2
        assert "refusing plain http to 127.0.0.2" in one_error(refused)
        assert sb.stats()["requests"] == 0
        (work / "c.yaml").write_text("allow_insecure_http: true\n", encoding="utf-8")
        result = t360("upload", "good.csv", "-m", "m.yaml", "-c", "c.yaml", "--base-url", sb.url)
        assert result.exit_code == 0, result.output
        assert result.stderr == "warning: sending the API key over plain http to 127.0.0.2.\n"
        assert sb.stats()["customers"] == 3


# -- verbose, unexpected errors ----------------------------------------------------------------


def test_verbose_shows_traceback_and_setting_sources(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "c.yaml").write_text("concurrency: 2\n", encoding="utf-8")
    monkeypatch.setenv("T360_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("T360_API_KEY", KEY)
    result = t360("upload", "good.csv", "-m", "bad.yaml", "-c", "c.yaml", "--batch-size", "7", "-v")
    assert result.exit_code == 2
    err = result.stderr
    assert "config file: c.yaml (command line -c)" in err
    assert "setting base_url = 'http://127.0.0.1:9' (environment $T360_BASE_URL)" in err
    assert "setting concurrency = 2 (config file c.yaml)" in err
    assert "setting batch_size = 7 (command line)" in err
    assert "setting timeout_s = 30.0 (default)" in err
    assert "Traceback (most recent call last)" in err and "MappingError" in err
    assert err.splitlines()[-1].startswith("error: bad.yaml, line 3: column 'Logn'")
    assert KEY not in err
    quiet = t360("upload", "good.csv", "-m", "bad.yaml", "-c", "c.yaml")
    assert "setting" not in quiet.stderr
    one_error(quiet)


def test_unexpected_exception_is_one_line_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    from t360cli import run

    def boom(*_a: object, **_k: object) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "validate", boom)
    result = t360("validate", "good.csv", "-m", "m.yaml")
    assert result.exit_code == 2
    assert one_error(result) == "error: unexpected RuntimeError: boom. Run again with --verbose for details."
    verbose = t360("validate", "good.csv", "-m", "m.yaml", "--verbose")
    assert verbose.exit_code == 2
    assert "Traceback (most recent call last)" in verbose.stderr and 'raise RuntimeError("boom")' in verbose.stderr


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from t360cli import run

    def interrupted(*_a: object, **_k: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "validate", interrupted)
    result = t360("validate", "good.csv", "-m", "m.yaml")
    assert result.exit_code == 130
    assert one_error(result) == "error: interrupted."


# -- status, mapping init, help -----------------------------------------------------------------


@pytest.mark.parametrize("content", ["garbage\n", "", '{"kind": "customers"}\n{not json\n{"index": 0}\n'])
def test_status_on_a_damaged_log_exits_2(work: Path, content: str) -> None:
    (work / "g.jsonl").write_text(content, encoding="utf-8")
    result = t360("status", "g.jsonl")
    assert result.exit_code == 2
    line = one_error(result)
    assert line.startswith("error: g.jsonl") and "progress log" in line


def test_status_on_a_missing_log_exits_2() -> None:
    result = t360("status", "none.jsonl")
    assert result.exit_code == 2
    assert one_error(result) == "error: none.jsonl: no such progress log. Check the path."


def test_mapping_init_refuses_to_overwrite(work: Path) -> None:
    (work / "out.yaml").write_text("mine\n", encoding="utf-8")
    result = t360("mapping", "init", "good.csv", "--kind", "customers", "-o", "out.yaml")
    assert result.exit_code == 2
    assert "out.yaml exists" in one_error(result) and "--force" in result.stderr
    assert (work / "out.yaml").read_text(encoding="utf-8") == "mine\n"
    forced = t360("mapping", "init", "good.csv", "--kind", "customers", "-o", "out.yaml", "--force")
    assert forced.exit_code == 0, forced.output
    assert "kind: customers" in (work / "out.yaml").read_text(encoding="utf-8")
    check = t360("validate", "good.csv", "-m", "out.yaml")  # accepted as it is
    assert check.exit_code in (0, 1), check.output


def test_mapping_init_to_stdout_and_bad_kind() -> None:
    result = t360("mapping", "init", "good.csv", "--kind", "customers")
    assert result.exit_code == 0
    assert "kind: customers" in result.stdout
    bad = t360("mapping", "init", "good.csv", "--kind", "deposits")
    assert bad.exit_code == 2
    assert "customers or activities" in one_error(bad)


def all_command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(cmd: object, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "t360")
def test_help_exits_0(path: list[str]) -> None:
    result = t360(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "--help" in result.stdout


def test_version() -> None:
    from t360cli import __version__

    for args in (["version"], ["--version"]):
        result = t360(*args)
        assert result.exit_code == 0 and result.stdout == f"t360 {__version__}\n"


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "t360")
def test_dash_h_is_help(path: list[str]) -> None:
    assert t360(*path, "-h").stdout == t360(*path, "--help").stdout


def test_top_help_one_line_per_command_not_cut_with_exit_codes() -> None:
    """SPEC 10: one-line command help that is not cut off, completion, exit codes in the epilog."""
    out = t360("--help").stdout
    commands = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(commands) == len(typer.main.get_command(app).commands)
    assert all(len(line.split()) > 2 and not line.rstrip().endswith("...") for line in commands), commands
    for text in ("--version", "--install-completion", "--show-completion", "-h, --help"):
        assert text in out
    assert "Exit codes: 0 every row valid" in out and "130 interrupted." in out


def test_readable_metavars() -> None:
    out = t360("upload", "--help").stdout
    assert out.splitlines()[0].endswith(" upload [OPTIONS] {FILE}...")  # typer braces a required argument
    for text in ("-m, --mapping PATH", "--base-url URL", "--batch-size N", "--rate R", "--report PATH"):
        assert text in out
    assert "--min-rows N" in out and "--min-rows N" in t360("validate", "--help").stdout


def test_min_rows_reaches_the_run_options(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from t360cli import run

    seen: list[object] = []

    def fake_upload(opts, settings, observer):  # type: ignore[no-untyped-def]
        seen.append(opts.min_rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "upload", fake_upload)
    assert t360("validate", "good.csv", "-m", "m.yaml", "--min-rows", "5").exit_code == 130
    assert t360("upload", "good.csv", "-m", "m.yaml", "--min-rows", "7").exit_code == 130
    assert t360("upload", "good.csv", "-m", "m.yaml").exit_code == 130
    assert seen == [5, 7, 0]


# -- the real script ------------------------------------------------------------------------------


def script(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "t360"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "t360cli"]
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    return subprocess.run([*cmd, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)


def test_script_exit_codes_are_real(work: Path) -> None:
    bad = script(work, "validate", "good.csv", "-m", "bad.yaml")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: bad.yaml, line 3: column 'Logn'") and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr + bad.stdout
    partial = script(work, "validate", "one_bad.csv", "-m", "m.yaml", "-q")
    assert (partial.returncode, partial.stdout, partial.stderr) == (1, "", "")
    stopped = script(work, "validate", "two_bad.csv", "-m", "m.yaml", "-q", "--max-rejects", "1")
    assert stopped.returncode == 3 and stopped.stderr.startswith("error: 2 of 10 rows are invalid")
    no_key = script(work, "upload", "good.csv", "-m", "m.yaml", "--base-url", f"http://127.0.0.1:{free_port()}")
    assert no_key.returncode == 2 and "$T360_API_KEY" in no_key.stderr and "Traceback" not in no_key.stderr


def test_script_help_and_no_arguments(work: Path) -> None:
    helped = script(work, "--help")
    assert helped.returncode == 0
    for name in ("upload", "validate", "replay", "status", "mapping", "sandbox", "demo"):
        assert name in helped.stdout
    bare = script(work)
    assert bare.returncode in (0, 2) and "Usage:" in bare.stdout + bare.stderr
    assert "Traceback" not in bare.stdout + bare.stderr


def test_fields_lists_the_guides_fields(tmp_path: Path) -> None:
    """SPEC 12: `t360 fields [customers|activities]`."""
    out = cli("fields", "activities", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names == [
        "customerid",
        "eventname",
        "eventid",
        "createtime",
        "Value",
        "Currency",
        "Lots",
        "Volume",
        "Rebate",
        "Trades",
    ]
    assert "required" in out.stdout.splitlines()[1]
    both = cli("fields", cwd=tmp_path)
    assert "tracking_data  string    -         at most 50 characters" in both.stdout
    bad = cli("fields", "trades", cwd=tmp_path)
    assert bad.returncode == 2 and "no kind 'trades': give customers or activities." in bad.stderr


def test_validate_show_prints_the_first_records_as_sent(tmp_path: Path) -> None:
    """SPEC 12: `validate --show N` prints the first N valid records exactly as they would be
    sent, one JSON object a line on stdout, the summary on stderr; with `--report -` too, a usage error."""
    samples = Path(__file__).resolve().parents[1] / "t360cli" / "sample_data"
    args = ("validate", str(samples / "withdrawals.csv"), "-m", str(samples / "withdrawals.yaml"))
    out = cli(*args, "--show", "2", cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert [json.loads(line)["eventid"] for line in lines] == ["WD-2507-00001", "WD-2507-00002"]
    assert lines[0].startswith('{"customerid":"fx_5102345","eventname":"Withdrawal"') and "rows read" in out.stderr
    both = cli(*args, "--show", "2", "--report", "-", cwd=tmp_path)
    assert both.returncode == 2 and both.stdout == ""
    assert (
        both.stderr
        == "error: --show and --report - both print to standard output. Write the report to a file instead.\n"
    )


def test_export_and_mapping_swapped_are_named(tmp_path: Path) -> None:
    """SPEC 12: FILE and -m given the wrong way round: say so, not "save the mapping as UTF-8"."""
    (tmp_path / "deals.csv").write_text("Deal;Login\n1;2\n", encoding="cp1252")
    (tmp_path / "deals.yaml").write_text("kind: activities\nfields:\n  customerid: Login\n")
    out = cli("validate", "deals.yaml", "-m", "deals.csv", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        "error: the export and the mapping look swapped: deals.yaml is given as the export and deals.csv as the "
        "mapping. Give the export first and the mapping after -m: t360 validate EXPORT -m MAPPING.yaml.\n"
    )
