"""Settings resolved once: command line, then environment, then config file, then default.

Each value remembers where it came from (`--verbose` prints it). All invalid keys of a
config file are reported in one message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from t360cli.errors import UsageError
from t360cli.suggest import closest

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ENV = {"base_url": "T360_BASE_URL", "state_dir": "T360_STATE_DIR"}


@dataclass
class Settings:
    base_url: str | None = None
    api_key_env: str = "T360_API_KEY"
    api_key_file: str | None = None
    batch_size: int = 500
    max_batch_bytes: int = 1_000_000
    concurrency: int = 4
    rate_limit: float | None = None
    timeout_s: float = 30.0
    max_attempts: int = 8
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    state_dir: str = ".t360"
    allow_insecure_http: bool = False
    config_path: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def api_key(self) -> str:
        """The key from api_key_file or the environment; never printed anywhere."""
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UsageError(f"cannot read api_key_file {self.api_key_file}: {exc.strerror}.") from None
            if not key:
                raise UsageError(f"api_key_file {self.api_key_file} is empty.")
            return key
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise UsageError(
                f"no API key: ${self.api_key_env} is not set.",
                f"Export {self.api_key_env}=... or set api_key_file in the config.",
            )
        return key

    def key_hint(self) -> str:
        return f"api_key_file {self.api_key_file}" if self.api_key_file else f"${self.api_key_env}"

    def check_url(self) -> list[str]:
        """Refuse plain http to a remote host; returns warnings."""
        if not self.base_url:
            raise UsageError("no base URL.", "Pass --base-url, set $T360_BASE_URL or base_url in the config.")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"base URL '{self.base_url}' is not an http(s) URL.")
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            if not self.allow_insecure_http:
                raise UsageError(
                    f"refusing plain http to {parts.hostname}: the API key would travel unencrypted.",
                    "Use https, or set allow_insecure_http: true in the config.",
                )
            return [f"warning: sending the API key over plain http to {parts.hostname}."]
        return []


def host_of(url: str | None) -> str:
    """host[:port] of a URL ("" without one): what the progress log remembers."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return ""
    return parts.hostname + (f":{parts.port}" if parts.port else "")


_KEYS = {f.name for f in fields(Settings)} - {
    "config_path",
    "sources",
    "max_attempts",
    "backoff_initial_s",
    "backoff_max_s",
}
_RETRY_KEYS = {"max_attempts", "backoff_initial_s", "backoff_max_s"}


def _coerce(name: str, value: Any, problems: list[str], label: str) -> Any:
    """The config value as the type of the setting's default; a problem line if it is not."""
    default = getattr(Settings, name)
    if value is None:
        if name in ("rate_limit", "api_key_file", "base_url"):
            return None
        problems.append(f"• {label}: must not be empty")
        return default
    kind = float if name == "rate_limit" else {int: int, float: float, bool: bool}.get(type(default), str)
    wrong = (
        isinstance(value, bool) != (kind is bool)
        or (kind is str and not isinstance(value, str))
        or (kind is int and isinstance(value, float) and not value.is_integer())
    )
    try:
        if wrong:
            raise ValueError
        out = kind(value)
    except (TypeError, ValueError):
        problems.append(f"• {label}: must be {_KIND_NAMES[kind]}, not {value!r}")
        return default
    if kind in (int, float) and out <= 0:
        problems.append(f"• {label}: must be > 0, not {value!r}")
    return out


_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _unknown(key: object, allowed: set[str], label: str) -> str:
    close = closest(str(key), allowed)
    return f"• {label}: unknown key" + (f"; did you mean {close}?" if close else "")


def _file_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UsageError(f"cannot read the config {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path} is not valid YAML: {exc}.") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must be a YAML map of settings.")
    return data


def _config_path(config: str | None) -> tuple[str | None, str]:
    if config:
        return config, "command line -c"
    if os.environ.get("T360_CONFIG"):
        return os.environ["T360_CONFIG"], "environment $T360_CONFIG"
    if Path("config.yaml").exists():
        return "config.yaml", "./config.yaml in the current directory"
    return None, "no -c, no $T360_CONFIG, no ./config.yaml"


def _apply_file(settings: Settings, path: str) -> None:
    """Settings from the config file; every invalid key reported in one UsageError."""
    data = _file_values(Path(path))
    retry = data.pop("retry", None) or {}
    problems: list[str] = []
    if not isinstance(retry, dict):
        problems.append("• retry: must be a map (max_attempts, backoff_initial_s, backoff_max_s)")
        retry = {}
    items = [(k, v, _KEYS, str(k)) for k, v in data.items()]
    items += [(k, v, _RETRY_KEYS, f"retry.{k}") for k, v in retry.items()]
    for key, value, allowed, label in items:
        if key not in allowed:
            problems.append(_unknown(key, allowed, label))
            continue
        setattr(settings, key, _coerce(key, value, problems, label))
        settings.sources[key] = f"config file {path}"
    if problems:
        raise UsageError(f"invalid config {path} (config.example.yaml shows every key):\n" + "\n".join(problems))


def resolve(config: str | None = None, cli: dict[str, Any] | None = None) -> Settings:
    """Build Settings from the command line, the environment and the config file."""
    settings = Settings()
    path, origin = _config_path(config)
    settings.sources["config_path"] = origin
    if path:
        settings.config_path = path
        _apply_file(settings, path)
    for key, var in ENV.items():
        if os.environ.get(var):
            setattr(settings, key, os.environ[var])
            settings.sources[key] = f"environment ${var}"
    for key, value in (cli or {}).items():
        if value is not None:
            setattr(settings, key, value)
            settings.sources[key] = "command line"
    return settings
