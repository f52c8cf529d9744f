"""The sandbox's fault injection: the options (Faults) and the seeded dice that apply them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Fault = Literal["drop", "fail", "throttle"]


@dataclass
class Faults:
    """Fault injection: rates are probabilities 0..1, decided per POST with a seeded RNG."""

    fail_rate: float = 0.0  # 503
    throttle_rate: float = 0.0  # 429 with Retry-After: retry_after
    drop_rate: float = 0.0  # close the connection without answering
    latency_ms: float = 0  # delay before answering any POST
    retry_after: float = 1.0  # seconds, sent in Retry-After
    max_body_bytes: int | None = None  # 413 above this
    poison: str | None = None  # 400 for a batch holding a field with exactly this value
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("latency_ms", "retry_after", "max_body_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


class Dice:
    """The seeded RNG that decides each POST's random fault from the rates of the faults in force."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def roll(self, faults: Faults) -> Fault | None:
        """This request's random fault (drop, fail, throttle, tried in that order), or None."""
        rates: tuple[tuple[Fault, float], ...] = (
            ("drop", faults.drop_rate),
            ("fail", faults.fail_rate),
            ("throttle", faults.throttle_rate),
        )
        for fault, rate in rates:
            if rate > 0 and self._rng.random() < rate:
                return fault
        return None
