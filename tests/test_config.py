"""Settings: precedence CLI > environment > config file > default, sources, checks, the key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from t360cli.config import Settings, resolve
from t360cli.errors import ExitCode, UsageError
from t360cli.urls import host_of

ENV_VARS = ("T360_API_KEY", "T360_BASE_URL", "T360_CONFIG", "T360_STATE_DIR", "MY_KEY")
SECRET = "s3cr3t-Key-9f2c1e"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in an empty working directory with none of t360's variables set."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_without_any_config() -> None:
    s = resolve(None, {})
    assert s.config_path is None
    assert (s.base_url, s.batch_size, s.concurrency, s.state_dir) == (None, 500, 4, ".t360")
    assert (s.max_attempts, s.backoff_initial_s, s.backoff_max_s) == (8, 0.5, 60.0)
    assert s.sources == {"config_path": "no -c, no $T360_CONFIG, no ./config.yaml"}


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(
        tmp_path / "c.yaml", "base_url: https://file.example\nstate_dir: file-state\nbatch_size: 100\nconcurrency: 2\n"
    )
    s = resolve(cfg, {})
    assert (s.base_url, s.state_dir, s.batch_size, s.timeout_s) == ("https://file.example", "file-state", 100, 30.0)
    assert s.sources["base_url"] == f"config file {cfg}"
    assert "timeout_s" not in s.sources  # a default has no recorded source

    monkeypatch.setenv("T360_BASE_URL", "https://env.example")
    monkeypatch.setenv("T360_STATE_DIR", "env-state")
    s = resolve(cfg, {"batch_size": None})
    assert (s.base_url, s.state_dir, s.batch_size) == ("https://env.example", "env-state", 100)
    assert s.sources["base_url"] == "environment $T360_BASE_URL"
    assert s.sources["state_dir"] == "environment $T360_STATE_DIR"
    assert s.sources["batch_size"] == f"config file {cfg}"

    s = resolve(cfg, {"base_url": "https://cli.example", "batch_size": 7, "concurrency": None})
    assert (s.base_url, s.batch_size, s.concurrency, s.state_dir) == ("https://cli.example", 7, 2, "env-state")
    assert s.sources["base_url"] == s.sources["batch_size"] == "command line"
    assert s.sources["concurrency"] == f"config file {cfg}"


def test_config_path_cli_over_env_over_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "config.yaml", "batch_size: 11\n")
    s = resolve(None, {})
    assert (s.config_path, s.batch_size) == ("config.yaml", 11)
    assert "current directory" in s.sources["config_path"]

    env_cfg = write(tmp_path / "env.yaml", "batch_size: 22\n")
    monkeypatch.setenv("T360_CONFIG", env_cfg)
    s = resolve(None, {})
    assert (s.config_path, s.batch_size, s.sources["config_path"]) == (env_cfg, 22, "environment $T360_CONFIG")

    cli_cfg = write(tmp_path / "cli.yaml", "batch_size: 33\n")
    s = resolve(cli_cfg, {})
    assert (s.config_path, s.batch_size, s.sources["config_path"]) == (cli_cfg, 33, "command line -c")


def test_retry_keys(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "retry: {max_attempts: 3, backoff_initial_s: 0.25, backoff_max_s: 5}\n")
    s = resolve(cfg, {})
    assert (s.max_attempts, s.backoff_initial_s, s.backoff_max_s) == (3, 0.25, 5.0)
    assert s.sources["max_attempts"] == f"config file {cfg}"
    s = resolve(write(tmp_path / "d.yaml", "retry:\n"), {})  # an empty block keeps the defaults
    assert s.max_attempts == 8


def test_retry_keys_belong_under_retry(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "max_attempts: 3\nretry: {batch_size: 5, max_attempt: 2}\n")
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    text = str(err.value)
    assert "• max_attempts: unknown key" in text
    assert "• retry.batch_size: unknown key" in text
    assert "• retry.max_attempt: unknown key; did you mean max_attempts?" in text


def test_all_invalid_keys_in_one_message(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "batchsize: 5\nconcurrency: many\nallow_insecure_http: maybe\n"
        "timeout_s: 0\nbase_url: 12\nbatch_size: 2.5\n"
        "retry: {max_attempts: -1}\nstate_dir:\n",
    )
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert err.value.exit_code == ExitCode.USAGE
    lines = str(err.value).splitlines()
    assert lines[0] == f"invalid config {cfg} (config.example.yaml shows every key):"
    assert lines[1:] == [
        "• batchsize: unknown key; did you mean batch_size?",
        "• concurrency: must be a whole number, not 'many'",
        "• allow_insecure_http: must be true or false, not 'maybe'",
        "• timeout_s: must be > 0, not 0",
        "• base_url: must be text, not 12",
        "• batch_size: must be a whole number, not 2.5",
        "• state_dir: must not be empty",
        "• retry.max_attempts: must be > 0, not -1",
    ]


def test_valid_types_are_coerced(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "batch_size: '250'\ntimeout_s: 5\nrate_limit: 2\nallow_insecure_http: true\nbase_url: null\n",
    )
    s = resolve(cfg, {})
    assert (s.batch_size, s.timeout_s, s.rate_limit, s.allow_insecure_http, s.base_url) == (250, 5.0, 2.0, True, None)
    assert isinstance(s.timeout_s, float) and isinstance(s.batch_size, int)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- a\n- b\n", "must be a YAML map of settings"),
        ("batch_size: [1\n", "is not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, expected: str) -> None:
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(UsageError, match=expected):
        resolve(cfg, {})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read the config .*nope\.yaml: No such file"):
        resolve(str(tmp_path / "nope.yaml"), {})


def test_api_key_file_is_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  \t{SECRET} \n\n", encoding="utf-8")
    s = resolve(write(tmp_path / "c.yaml", f"api_key_file: {key_file}\n"), {})
    assert s.api_key() == SECRET
    assert s.key_hint() == f"api_key_file {key_file}"


def test_api_key_file_empty_or_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text(" \n", encoding="utf-8")
    with pytest.raises(UsageError, match="api_key_file .*empty is empty"):
        Settings(api_key_file=str(tmp_path / "empty")).api_key()
    with pytest.raises(UsageError, match="cannot read api_key_file .*absent"):
        Settings(api_key_file=str(tmp_path / "absent")).api_key()


def test_api_key_from_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as err:
        Settings().api_key()
    assert "$T360_API_KEY" in str(err.value)
    monkeypatch.setenv("T360_API_KEY", f" {SECRET}\n")
    assert Settings().api_key() == SECRET
    s = Settings(api_key_env="MY_KEY")
    with pytest.raises(UsageError, match=r"\$MY_KEY is not set"):
        s.api_key()
    monkeypatch.setenv("MY_KEY", SECRET)
    assert s.api_key() == SECRET


def test_key_never_stored_in_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is read when asked for, never kept: repr, str and every field stay clean."""
    monkeypatch.setenv("T360_API_KEY", SECRET)
    s = resolve(None, {"base_url": "https://x.example"})
    assert s.api_key() == SECRET
    key_file = tmp_path / "key"
    key_file.write_text(SECRET, encoding="utf-8")
    t = Settings(api_key_file=str(key_file))
    assert t.api_key() == SECRET
    for settings in (s, t):
        assert SECRET not in repr(settings) and SECRET not in str(settings)
        assert all(SECRET not in repr(getattr(settings, f.name)) for f in fields(settings))
        assert SECRET not in repr(vars(settings))
    # the key lives in the environment or the file only: changing it there is seen at once
    monkeypatch.setenv("T360_API_KEY", "rotated")
    assert s.api_key() == "rotated"


@pytest.mark.parametrize("url", ["http://localhost:8360", "http://127.0.0.1", "http://[::1]:9", "https://a.example"])
def test_local_http_and_https_allowed(url: str) -> None:
    assert Settings(base_url=url).check_url() == []


def test_remote_http_refused_unless_allowed() -> None:
    with pytest.raises(UsageError) as err:
        Settings(base_url="http://api.example.com/x").check_url()
    assert err.value.exit_code == ExitCode.USAGE
    assert "refusing plain http to api.example.com" in str(err.value)
    assert "allow_insecure_http: true" in str(err.value)
    warnings = Settings(base_url="http://api.example.com", allow_insecure_http=True).check_url()
    assert warnings == ["warning: sending the API key over plain http to api.example.com."]


@pytest.mark.parametrize(
    "url, expected",
    [
        (None, "no base URL"),
        ("ftp://x.example", r"is not an http\(s\) URL"),
        ("https://", r"is not an http\(s\) URL"),
    ],
)
def test_bad_base_urls(url: str | None, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        Settings(base_url=url).check_url()


def test_host_of() -> None:
    assert host_of("https://A.example:8443/api") == "a.example:8443"
    assert host_of("http://127.0.0.1/") == "127.0.0.1"
    assert host_of(None) == "" and host_of("nonsense") == ""


def test_unknown_key_suggests_its_other_case(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "BASE_URL: https://x.test\n")
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert "• BASE_URL: unknown key; did you mean base_url?" in str(err.value)


# --- Unattended nights (SPEC 4, 6, 10): retry_after_max_s, stop_after_failed_batches, ca_bundle, bounds

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_new_settings_have_defaults_and_sources(tmp_path: Path) -> None:
    s = resolve(None, {})
    assert (s.retry_after_max_s, s.stop_after_failed_batches, s.ca_bundle) == (300.0, 3, None)
    pem = tmp_path / "ca.pem"
    pem.write_text(PEM, encoding="utf-8")
    cfg = write(
        tmp_path / "c.yaml", f"retry: {{retry_after_max_s: 30, stop_after_failed_batches: 5}}\nca_bundle: {pem}\n"
    )
    s = resolve(cfg, {})
    assert (s.retry_after_max_s, s.stop_after_failed_batches, s.ca_bundle) == (30.0, 5, str(pem))
    assert isinstance(s.retry_after_max_s, float)
    for key in ("retry_after_max_s", "stop_after_failed_batches", "ca_bundle"):
        assert s.sources[key] == f"config file {cfg}"  # what -v lists


def test_new_retry_keys_belong_under_retry(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "retry_after_max_s: 3\nretry: 5\n")
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert str(err.value).splitlines()[1:] == [
        "• retry: must be a map (backoff_initial_s, backoff_max_s, max_attempts, retry_after_max_s, "
        "stop_after_failed_batches)",
        "• retry_after_max_s: unknown key",
    ]


def test_numbers_nan_inf_and_huge_refused_in_one_message(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "timeout_s: .nan\nrate_limit: .inf\nbatch_size: 200000\nconcurrency: 1000\nmax_batch_bytes: 1.0e+400\n"
        "retry: {retry_after_max_s: -1, stop_after_failed_batches: 0.5, max_attempts: 1000, backoff_max_s: 'nan'}\n",
    )
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert str(err.value).splitlines()[1:] == [
        "• timeout_s: must be a finite number, not nan",
        "• rate_limit: must be a finite number, not inf",
        "• batch_size: must be at most 100000 (a larger value is almost certainly a mistake), not 200000",
        "• concurrency: must be at most 256 (a larger value is almost certainly a mistake), not 1000",
        "• max_batch_bytes: must be a whole number, not inf",
        "• retry.retry_after_max_s: must be > 0, not -1",
        "• retry.stop_after_failed_batches: must be a whole number, not 0.5",
        "• retry.max_attempts: must be at most 100 (a larger value is almost certainly a mistake), not 1000",
        "• retry.backoff_max_s: must be a finite number, not 'nan'",
    ]


def test_stop_after_failed_batches_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"• retry.stop_after_failed_batches: must be > 0, not 0"):
        resolve(write(tmp_path / "c.yaml", "retry: {stop_after_failed_batches: 0}\n"), {})
    assert (
        resolve(write(tmp_path / "d.yaml", "retry: {stop_after_failed_batches: 1}\n"), {}).stop_after_failed_batches
        == 1
    )


def test_a_huge_number_is_shown_shortened(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        resolve(write(tmp_path / "c.yaml", f"batch_size: {'9' * 4000}\n"), {})
    line = str(err.value).splitlines()[1]
    assert line.startswith("• batch_size: must be at most 100000") and line.endswith("...") and len(line) < 150


def test_a_number_too_long_for_python_is_a_sentence(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", f"batch_size: {'9' * 5000}\n")
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert str(err.value) == f"config {cfg} holds a number too long to read (over 4300 digits)."


def test_command_line_values_get_the_same_bounds() -> None:
    assert resolve(None, {"batch_size": 100_000, "concurrency": 256}).batch_size == 100_000
    with pytest.raises(UsageError) as err:
        resolve(None, {"batch_size": 100_001, "rate_limit": float("inf"), "base_url": "https://x.test"})
    assert str(err.value).splitlines() == [
        "invalid command-line value:",
        "• batch_size (command line): must be at most 100000 (a larger value is almost certainly a mistake), "
        "not 100001",
        "• rate_limit (command line): must be a finite number, not inf",
    ]


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: None, "cannot read {p} (No such file or directory); give the path of a readable PEM file"),
        (lambda p: p.mkdir(), "{p} is not a file; give the path of a PEM file holding the private CA's certificate"),
        (
            lambda p: p.write_text("not a certificate\n"),
            "{p} holds no PEM certificate (no line -----BEGIN CERTIFICATE-----)",
        ),
        (
            lambda p: p.symlink_to(p.parent / "gone.pem"),
            "cannot read {p} (No such file or directory); give the path of a readable PEM file",
        ),
    ],
    ids=["missing", "folder", "not-pem", "dangling-link"],
)
def test_ca_bundle_must_be_a_readable_pem_file(tmp_path: Path, make: object, expected: str) -> None:
    pem = tmp_path / "ca.pem"
    make(pem)  # type: ignore[operator]
    cfg = write(tmp_path / "c.yaml", f"ca_bundle: {pem}\nbatch_size: 0\n")
    with pytest.raises(UsageError) as err:
        resolve(cfg, {})
    assert err.value.exit_code == ExitCode.USAGE
    assert str(err.value).splitlines()[1:] == [
        "• batch_size: must be > 0, not 0",
        "• ca_bundle: " + expected.format(p=pem),
    ]


def test_ca_bundle_through_a_symlink_and_null(tmp_path: Path) -> None:
    real = tmp_path / "real.pem"
    real.write_text("# private CA\n" + PEM, encoding="utf-8")
    (tmp_path / "link.pem").symlink_to(real)
    assert resolve(write(tmp_path / "c.yaml", f"ca_bundle: {tmp_path / 'link.pem'}\n"), {}).ca_bundle
    assert resolve(write(tmp_path / "d.yaml", "ca_bundle: null\n"), {}).ca_bundle is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            b"base: &a [1, 2]\nbatch_size: *a\n",
            "config {cfg}, line 2: YAML aliases (*a) are not allowed in a config. Write the value out in full.",
        ),
        (b"state_dir: caf\xe9\n", "config {cfg} is not UTF-8 text (byte 15). Save it as UTF-8."),
        (
            b"# " + b"x" * 1_000_000 + b"\n",
            "config {cfg} is larger than 1000000 bytes; a config is a few lines of YAML.",
        ),
    ],
    ids=["alias", "latin-1", "over-1MB"],
)
def test_hostile_config_files(tmp_path: Path, raw: bytes, expected: str) -> None:
    """SPEC 11: aliases, bad encodings and oversized configs are one sentence, exit 2."""
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(raw)
    with pytest.raises(UsageError) as err:
        resolve(str(cfg), {})
    assert str(err.value) == expected.format(cfg=cfg)
    assert err.value.exit_code == ExitCode.USAGE
