"""Settings: precedence CLI > environment > config file > default, sources, checks, the key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from t360cli.config import Settings, host_of, resolve
from t360cli.errors import ExitCode, UsageError

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
