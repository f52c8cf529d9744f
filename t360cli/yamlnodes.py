"""YAML with line numbers and without implicit typing.

Every scalar is kept as text (so `NO` stays Norway and `00123` keeps its zeros); maps and
lists remember the line of each entry, so that errors can say where to look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from t360cli.errors import MappingError


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


def load(path: Path) -> tuple[Any, bytes]:
    """Parse a YAML file into YMap/YList/str values; returns (tree, raw bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"cannot read the mapping {path}: {exc.strerror}.") from exc
    try:
        node = yaml.compose(raw.decode("utf-8-sig"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path} is not UTF-8 text.", "Save the mapping as UTF-8.") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MappingError(f"{path}{at}: not valid YAML ({exc.problem}).") from exc
    if node is None:
        raise MappingError(f"{path} is empty.", "A mapping needs at least `kind:` and `fields:`.")
    return _convert(node, str(path)), raw
