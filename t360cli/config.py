"""Settings resolved once: command line, then environment, then config file, then default.

Each value remembers where it came from (`--verbose` prints it). All invalid keys of a
config file are reported in one message.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from t360cli.errors import UsageError
from t360cli.suggest import closest
from t360cli.urls import mask_url

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # SPEC 4: plain http allowed (proxies skip all of 127/8)
ENV = {"base_url": "T360_BASE_URL", "state_dir": "T360_STATE_DIR"}


ORPHAN_RULES = ("warn", "reject")


@dataclass(frozen=True)
class Agreement:
    """`contract:` in the config: what was agreed with Track360 (SPEC 12, guide sections 10-11)."""

    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # target field -> the agreed values
    customers_must_have: tuple[str, ...] = ()  # counted per field when missing; still sent
    orphans: str = "warn"  # an activity for a customer never sent: "warn" or "reject" (SPEC 13)


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
    retry_after_max_s: float = 300.0  # a server's Retry-After is waited in full up to this (SPEC 6)
    stop_after_failed_batches: int = 3  # this many failed batches in a row stop the run (SPEC 10)
    ca_bundle: str | None = None  # a PEM file with a private CA for the Track360 host
    state_dir: str = ".t360"
    allow_insecure_http: bool = False
    contract: Agreement = field(default_factory=Agreement)
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

    def api_key_if_any(self) -> str | None:
        """The key when one is set (a dry run uses it only to find its ledger), else None."""
        try:
            return self.api_key()
        except UsageError:
            return None

    def key_hint(self) -> str:
        return f"api_key_file {self.api_key_file}" if self.api_key_file else f"${self.api_key_env}"

    def check_url(self) -> list[str]:
        """Refuse plain http to a remote host; returns warnings."""
        if not self.base_url:
            raise UsageError("no base URL.", "Pass --base-url, set $T360_BASE_URL or base_url in the config.")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"base URL '{mask_url(self.base_url)}' is not an http(s) URL.")
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            if not self.allow_insecure_http:
                raise UsageError(
                    f"refusing plain http to {parts.hostname}: the API key would travel unencrypted.",
                    "Use https, or set allow_insecure_http: true in the config.",
                )
            return [f"warning: sending the API key over plain http to {parts.hostname}."]
        return []


_RETRY_KEYS = {"max_attempts", "backoff_initial_s", "backoff_max_s", "retry_after_max_s", "stop_after_failed_batches"}
_KEYS = {f.name for f in fields(Settings)} - {"config_path", "sources", "contract"} - _RETRY_KEYS
_CONTRACT_KEYS = {"allowed", "customers_must_have", "orphans"}
_OPTIONAL = ("rate_limit", "api_key_file", "base_url", "ca_bundle")  # null is allowed
# Upper bounds where a larger value is a typo rather than a choice (memory, open connections, a night's wait).
_MAX: dict[str, int] = {
    "batch_size": 100_000,
    "max_batch_bytes": 100_000_000,
    "concurrency": 256,
    "max_attempts": 100,
    "timeout_s": 3600,
    "backoff_initial_s": 3600,
    "backoff_max_s": 3600,
    "retry_after_max_s": 86_400,
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _coerce(name: str, value: Any, problems: list[str], label: str) -> Any:
    """The config value as the type of the setting's default; a problem line if it is not."""
    default = getattr(Settings, name)
    if value is None:
        if name in _OPTIONAL:
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
    except (TypeError, ValueError, OverflowError):
        problems.append(f"• {label}: must be {_KIND_NAMES[kind]}, not {_show(value)}")
        return default
    if kind in (int, float):
        problem = _out_of_range(name, out)
        if problem:
            problems.append(f"• {label}: {problem}, not {_show(value)}")
            return default
    return out


def _out_of_range(name: str, number: float) -> str | None:
    """Why a number is not acceptable for setting `name` (None if it is)."""
    if isinstance(number, float) and not math.isfinite(number):
        return "must be a finite number"
    if number <= 0:
        return "must be > 0"
    limit = _MAX.get(name)
    if limit is not None and number > limit:
        return f"must be at most {limit} (a larger value is almost certainly a mistake)"
    return None


_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _unknown(key: object, allowed: set[str], label: str) -> str:
    close = closest(str(key), allowed)
    return f"• {label}: unknown key" + (f"; did you mean {close}?" if close else "")


_CONFIG_MAX = 1_000_000  # bytes (SPEC 11)


def _file_values(path: Path) -> dict[str, Any]:
    """The config's YAML map; over 1 MB, not UTF-8, not YAML or with an alias: one UsageError."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_CONFIG_MAX + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the config {path}: {exc.strerror or exc}.") from None
    if len(raw) > _CONFIG_MAX:
        raise UsageError(f"config {path} is larger than {_CONFIG_MAX} bytes; a config is a few lines of YAML.")
    try:
        text = raw.decode("utf-8-sig")
        _refuse_aliases(text, path)
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        raise UsageError(f"config {path} is not UTF-8 text (byte {exc.start + 1}).", "Save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path} is not valid YAML: {exc}.") from None
    except ValueError:  # PyYAML's int() of a number over Python's 4300-digit limit
        raise UsageError(f"config {path} holds a number too long to read (over 4300 digits).") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must be a YAML map of settings.")
    return data


def _refuse_aliases(text: str, path: Path) -> None:
    """A config has no use for YAML aliases (`*name`); refusing them rules out a "billion laughs"."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else 0
            raise UsageError(
                f"config {path}, line {line}: YAML aliases (*{event.anchor}) are not allowed in a config.",
                "Write the value out in full.",
            )


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
    if "contract" in data:
        settings.contract = _agreement(data.pop("contract"), problems)
        settings.sources["contract"] = f"config file {path}"
    if not isinstance(retry, dict):
        problems.append(f"• retry: must be a map ({', '.join(sorted(_RETRY_KEYS))})")
        retry = {}
    items = [(k, v, _KEYS, str(k)) for k, v in data.items()]
    items += [(k, v, _RETRY_KEYS, f"retry.{k}") for k, v in retry.items()]
    for key, value, allowed, label in items:
        if key not in allowed:
            problems.append(_unknown(key, allowed, label))
            continue
        setattr(settings, key, _coerce(key, value, problems, label))
        settings.sources[key] = f"config file {path}"
    if settings.ca_bundle is not None and (problem := _ca_bundle_problem(settings.ca_bundle)):
        problems.append(f"• ca_bundle: {problem}")
    if problems:
        raise UsageError(f"invalid config {path} (config.example.yaml shows every key):\n" + "\n".join(problems))


def _agreement(node: object, problems: list[str]) -> Agreement:
    """The `contract:` block; its problems join the config's one message."""
    if node is None:
        return Agreement()
    if not isinstance(node, dict):
        problems.append("• contract: must be a map (allowed, customers_must_have, orphans)")
        return Agreement()
    for key in node:
        if key not in _CONTRACT_KEYS:
            problems.append(_unknown(key, _CONTRACT_KEYS, f"contract.{key}"))
    allowed: dict[str, tuple[str, ...]] = {}
    raw_allowed = node.get("allowed") or {}
    if not isinstance(raw_allowed, dict):
        problems.append("• contract.allowed: must map a target field to its agreed values")
        raw_allowed = {}
    for name, values in raw_allowed.items():
        if not isinstance(values, list) or not values or any(isinstance(v, (dict, list)) for v in values):
            problems.append(f"• contract.allowed.{name}: must list the agreed values, e.g. [Deposit, Withdrawal]")
            continue
        allowed[str(name)] = tuple(_scalar_text(value) for value in values)
    must = node.get("customers_must_have") or []
    if not isinstance(must, list) or any(not isinstance(name, str) for name in must):
        problems.append("• contract.customers_must_have: must list field names, e.g. [tracking_data]")
        must = []
    orphans = node.get("orphans", "warn")
    if orphans not in ORPHAN_RULES:
        problems.append(f"• contract.orphans: must be warn or reject, not {_show(orphans)}")
        orphans = "warn"
    return Agreement(allowed, tuple(must), str(orphans))


def _scalar_text(value: object) -> str:
    """A YAML scalar as the text it stands for (`true` -> "TRUE" would be a guess: keep YAML's
    spelling of booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ca_bundle_problem(path: str) -> str | None:
    """Why `path` cannot serve as a CA bundle (None if it can): it must be a readable PEM file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return f"{path} is not a file; give the path of a PEM file holding the private CA's certificate"
        with open(path, "rb") as fh:
            head = fh.read(_CA_BUNDLE_MAX + 1)
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror or exc}); give the path of a readable PEM file"
    if len(head) > _CA_BUNDLE_MAX:
        return f"{path} is larger than {_CA_BUNDLE_MAX} bytes; a CA bundle is a PEM file of certificates"
    if b"-----BEGIN CERTIFICATE-----" not in head:
        return f"{path} holds no PEM certificate (no line -----BEGIN CERTIFICATE-----)"
    return None


_CA_BUNDLE_MAX = 10_000_000  # a system bundle of every public CA is about 250 kB


def _apply_cli(settings: Settings, cli: dict[str, Any]) -> None:
    """Command-line values win; numbers get the same bounds as in a config file."""
    problems: list[str] = []
    for key, value in cli.items():
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            _coerce(key, value, problems, f"{key} (command line)")
        setattr(settings, key, value)
        settings.sources[key] = "command line"
    if problems:
        raise UsageError("invalid command-line value:\n" + "\n".join(problems))


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
    _apply_cli(settings, cli or {})
    return settings
