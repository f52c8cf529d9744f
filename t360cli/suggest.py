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


def fold(name: str) -> str:
    """A field name without case, `_`, `-` and spaces: `tracking_data` ~ `TrackingData`."""
    return "".join(ch for ch in name.casefold() if ch not in "_- ")


def edits(first: str, second: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(second) + 1))
    for i, left in enumerate(first, 1):
        current = [i]
        for j, right in enumerate(second, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        previous = current
    return previous[-1]


def near_miss(name: str, known: Iterable[str]) -> str | None:
    """The known name that `name` most likely misspells: equal once folded, or within one
    edit of it (two for names of 8 characters or more). None for a name that is itself known."""
    names = list(known)
    if name in names:
        return None
    folded = fold(name)
    best: tuple[int, str] | None = None
    for candidate in names:
        distance = edits(folded, fold(candidate))
        allowed = 2 if len(candidate) >= 8 else 1
        if distance <= allowed and (best is None or distance < best[0]):
            best = (distance, candidate)
    return best[1] if best else None
