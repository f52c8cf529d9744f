""" "Did you mean ...?": the closest known name to a mistyped one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like `word` (difflib ratio at least `cutoff`), else one equal to it
    but for case (`Value` for `value`), else None."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if close:
        return close[0]
    folded = word.casefold()
    return next((choice for choice in options if choice.casefold() == folded), None)
