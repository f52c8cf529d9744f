"""YAML with line numbers and without implicit typing.

Every scalar is kept as text (so `NO` stays Norway and `00123` keeps its zeros); maps and
lists remember the line of each entry, so that errors can say where to look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from t360cli.errors import MappingError, T360Error

MAX_BYTES = 1_000_000  # SPEC 11: mapping and config files over 1 MB are refused


class YMap(dict[str, Any]):
    """A YAML mapping: dict of str -> value, with `line` and `key_lines`."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A YAML sequence with the line of the sequence and of each item."""

    line: int = 0
    item_lines: list[int]


def _convert(node: yaml.Node, where: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return "" if node.tag.endswith(":null") and node.value in ("", "~") else node.value
    if isinstance(node, yaml.SequenceNode):
        seq = YList(_convert(item, where) for item in node.value)
        seq.line = line
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq
    if isinstance(node, yaml.MappingNode):
        out = YMap()
        out.line, out.key_lines = line, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise MappingError(f"{where}, line {key_node.start_mark.line + 1}: a key must be text.")
            key = key_node.value
            if key in out:
                raise MappingError(
                    f"{where}, line {key_node.start_mark.line + 1}: '{key}' is given twice.",
                    "Keep one of them.",
                )
            out[key] = _convert(value_node, where)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    raise MappingError(f"{where}, line {line}: unsupported YAML node.")  # pragma: no cover


def read_bounded(
    path: Path, what: str = "mapping", error: type[T360Error] = MappingError, limit: int = MAX_BYTES
) -> bytes:
    """The file's bytes, reading at most limit + 1 of them: a larger file (or /dev/zero) is refused.

    `what` names the file in messages ("mapping", "config file"); `error` is the T360Error raised.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}.") from exc
    if len(raw) > limit:
        raise error(
            f"{path} is larger than {limit:,} bytes; a {what} is a short text file.",
            f"Check that {path} is the {what} you meant.",
        )
    return raw


def refuse_aliases(text: str, where: str, error: type[T360Error] = MappingError) -> None:
    """Raise on the first YAML anchor or alias (`&a`, `*a`): a mapping has no use for them (no "billion laughs")."""
    try:
        events = list(yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return  # composing reports the syntax error with its line
    for event in events:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1 if event.start_mark else 0
            raise error(
                f"{where}, line {line}: YAML anchors and aliases (&name, *name) are not allowed.",
                "Write the value out in full.",
            )


def compose_bounded(path: Path, what: str = "mapping", error: type[T360Error] = MappingError) -> yaml.Node | None:
    """Read at most 1,000,000 bytes of UTF-8 YAML and compose it, refusing anchors and aliases."""
    raw = read_bounded(path, what, error)
    return _compose(raw, path, what, error)


def _compose(raw: bytes, path: Path, what: str, error: type[T360Error]) -> yaml.Node | None:
    try:
        text = raw.decode("utf-8-sig")
        refuse_aliases(text, str(path), error)
        node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02X}).",
            f"Save the {what} as UTF-8.",
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}{at}: not valid YAML ({exc.problem}).") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise error(f"{path}: not valid YAML ({type(exc).__name__}: nested too deeply or malformed).") from exc
    return node


def load(path: Path) -> tuple[Any, bytes]:
    """Parse a YAML file into YMap/YList/str values; returns (tree, raw bytes)."""
    raw = read_bounded(path)
    node = _compose(raw, path, "mapping", MappingError)
    if node is None:
        raise MappingError(f"{path} is empty.", "A mapping needs at least `kind:` and `fields:`.")
    try:
        return _convert(node, str(path)), raw
    except RecursionError as exc:
        raise MappingError(
            f"{path}: the YAML is nested too deeply.", "A mapping is at most a few levels deep."
        ) from exc
