"""The README and config.example.yaml stay in step with the code."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import typer.main

from t360cli import mapping
from t360cli.cli import app
from t360cli.config import Settings, resolve

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "config.example.yaml"
RETRY_KEYS = ("max_attempts", "backoff_initial_s", "backoff_max_s")
NOT_CONFIG = ("config_path", "sources")

# Every key SPEC section 3 names, and the field types it lists.
SPEC3_KEYS = (
    "kind",
    "source",
    "format",
    "delimiter",
    "encoding",
    "sheet",
    "decimal",
    "thousands",
    "timezone",
    "output_timezone",
    "where",
    "fields",
    "column",
    "value",
    "template",
    "type",
    "default",
    "map",
    "required",
    "max_length",
    "events",
    "aggregate",
    "by",
    "sum",
    "count",
    "generate",
)
SPEC3_TYPES = ("string", "decimal", "integer", "datetime", "date", "currency", "country")


def commands() -> list[tuple[str, object]]:
    """(full name, click command) of every command and subcommand, groups included."""
    out = []

    def walk(cmd: object, prefix: str) -> None:
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            out.append((f"{prefix} {name}", sub))
            walk(sub, f"{prefix} {name}")

    walk(typer.main.get_command(app), "t360")
    return out


def test_commands_found() -> None:
    names = {name for name, _ in commands()}
    assert {
        "t360 upload",
        "t360 validate",
        "t360 replay",
        "t360 status",
        "t360 mapping",
        "t360 mapping init",
        "t360 sandbox",
        "t360 demo",
    } <= names


@pytest.mark.parametrize("name, cmd", commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_command_in_readme_with_help(name: str, cmd: object) -> None:
    assert re.search(rf"(^|[\s`]){re.escape(name)}([\s`]|$)", README, re.M), f"README does not show `{name}`"
    assert (getattr(cmd, "help", None) or "").strip(), f"`{name}` has no help text"


@pytest.mark.parametrize("name, cmd", commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_has_help(name: str, cmd: object) -> None:
    for param in getattr(cmd, "params", []):
        if getattr(param, "param_type_name", "") == "option":
            assert (param.help or "").strip(), f"{name} {param.opts[0]} has no help text"


@pytest.mark.parametrize("target", ["make demo", "make test"])
def test_readme_shows_make_targets(target: str) -> None:
    assert re.search(rf"^\s*{target}\b", README, re.M), f"README does not show `{target}` on its own line"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^{target.split()[1]}:", makefile, re.M)


def test_readme_lists_every_upload_option() -> None:
    upload = dict(commands())["t360 upload"]
    for param in upload.params:
        if getattr(param, "param_type_name", "") == "option":
            assert any(f"`{opt}" in README for opt in param.opts), f"README does not document {param.opts[0]}"


def test_config_example_has_every_settings_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = [f.name for f in fields(Settings) if f.name not in NOT_CONFIG]
    for key in keys:
        assert re.search(rf"^\s*#?\s*{key}:", text, re.M), f"config.example.yaml does not show {key}"
    retry_block = re.search(r"^retry:.*?(?=^\S)", text + "\nend", re.M | re.S)
    assert retry_block, "config.example.yaml has no retry: block"
    for key in RETRY_KEYS:
        assert re.search(rf"^\s+{key}:", retry_block.group(0), re.M), f"{key} is not under retry:"


def test_config_example_loads_with_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("T360_BASE_URL", "T360_STATE_DIR", "T360_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = resolve(str(EXAMPLE), {})
    default = Settings()
    for f in fields(Settings):
        if f.name not in NOT_CONFIG + ("base_url",):
            assert getattr(s, f.name) == getattr(default, f.name), f"example {f.name} differs from the default"
    assert s.base_url and s.base_url.startswith("https://")
    assert s.check_url() == []


def test_config_example_commented_keys_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting the example's optional keys gives a config t360 accepts."""
    for var in ("T360_BASE_URL", "T360_STATE_DIR", "T360_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    keys = "|".join(f.name for f in fields(Settings))
    text = re.sub(rf"^# ({keys}):", r"\1:", EXAMPLE.read_text(encoding="utf-8"), flags=re.M)
    assert "\napi_key_file:" in text and "\nallow_insecure_http:" in text and "\nca_bundle:" in text
    pem = tmp_path / "private-ca.pem"  # ca_bundle must name a readable PEM file
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", encoding="utf-8")
    text = re.sub(r"^ca_bundle: .*$", f"ca_bundle: {pem}", text, flags=re.M)
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    s = resolve(str(tmp_path / "c.yaml"), {})
    assert s.api_key_file and s.allow_insecure_http is False


@pytest.mark.parametrize(
    "key",
    sorted(set(SPEC3_KEYS + SPEC3_TYPES + mapping.TOP_KEYS + mapping.SOURCE_KEYS + mapping.FIELD_KEYS + mapping.TYPES)),
)
def test_every_mapping_key_in_readme(key: str) -> None:
    assert re.search(rf"\b{key}\b", README), f"README does not mention the mapping key/type {key}"


def test_readme_names_the_exit_codes_and_env_vars() -> None:
    for text in (
        "`0`",
        "`1`",
        "`2`",
        "`3`",
        "`4`",
        "`130`",
        "T360_API_KEY",
        "T360_BASE_URL",
        "T360_CONFIG",
        "T360_STATE_DIR",
        "api_key_file",
        "allow_insecure_http",
    ):
        assert text in README, text


def test_readme_quotes_the_top_help_commands_as_they_are() -> None:
    """The README's copy of `t360 --help`'s command list is what the CLI prints."""
    from typer.testing import CliRunner

    quoted = re.search(r"<!-- t360 --help: commands.*?-->\n```\n(.*?)```", README, re.S)
    assert quoted, "README lost its quote of `t360 --help`"
    out = CliRunner().invoke(app, ["--help"]).stdout
    listed = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    assert quoted.group(1).rstrip("\n") == listed.rstrip("\n")


def test_readme_exit_codes_table_and_cron_recipe_act_on_each_code() -> None:
    table = re.search(r"### Exit codes\n(.*?)\n###", README, re.S)
    assert table, "README has no exit-code section"
    codes = re.findall(r"^\| `(\d+)` \|", table.group(1), re.M)
    assert codes == ["0", "1", "2", "3", "4", "130"]
    recipe = re.search(r"### Cron recipe\n+```sh\n(.*?)```", README, re.S)
    assert recipe, "README has no cron recipe"
    for branch in ("  0)", "  1)", "  4)", "  2|3)"):
        assert branch in recipe.group(1), branch
    assert "rejects" in recipe.group(1).split("  1)", 1)[1].split(";;", 1)[0]


def test_readme_quick_start_puts_t360_on_the_path() -> None:
    quick = README.split("## Three jobs", 1)[0]
    assert "source .venv/bin/activate" in quick and ".venv/bin/t360" in quick
