"""The mapping checker: walks the YAML tree and collects every mistake with its line.

A mistake that leaves nothing to check further (a mapping that is not a map, an unknown
`kind:`) stops at once; every other one is noted and the walk goes on, so that one run
reports them all (SPEC 12).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from t360cli.errors import MappingError
from t360cli.suggest import closest
from t360cli.yamlnodes import YMap


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """ " Did you mean 'x'?" for the closest choice, or nothing."""
    close = closest(word, choices)
    return f" Did you mean '{close}'?" if close else ""


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    hint: str | None = None


class Checker:
    """Collects the mistakes of one mapping file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def note(self, line: int, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(line, message, hint))

    def stop(self, line: int, message: str, hint: str | None = None) -> NoReturn:
        self.note(line, message, hint)
        raise self.error()

    def error(self) -> MappingError:
        if len(self.problems) == 1:
            only = self.problems[0]
            return MappingError(f"{self.path}, line {only.line}: {only.message}", only.hint)
        bullets = [
            f"• line {p.line}: {p.message}" + (f" {p.hint}" if p.hint else "")
            for p in sorted(self.problems, key=lambda p: p.line)
        ]
        return MappingError(f"{self.path} has {len(self.problems)} mistakes:\n" + "\n".join(bullets))

    def finish(self) -> None:
        if self.problems:
            raise self.error()

    def keys(self, node: YMap, allowed: Sequence[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.note(
                    node.line_of(key),
                    f"unknown key '{key}' in {what}.{did_you_mean(key, allowed)}",
                    f"Allowed: {', '.join(allowed)}.",
                )

    def text(self, node: YMap, key: str, what: str) -> str | None:
        value = node[key]
        if not isinstance(value, str):
            self.note(node.line_of(key), f"{what} must be a single value, not a list or a map.")
            return None
        return value

    def zone(self, node: YMap, key: str) -> str | None:
        name = self.text(node, key, key)
        if name is None:
            return None
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.note(
                node.line_of(key), f"unknown time zone '{name}'.", "Use an IANA name such as Europe/Madrid or UTC."
            )
            return None
        return name
