"""The sandbox's fault injection: the options (Faults) and the seeded dice that apply them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from t360cli.contract import ENDPOINTS

Fault = Literal["drop", "fail", "throttle"]


@dataclass
class Faults:
    """Fault injection: rates are probabilities 0..1, decided per POST with a seeded RNG.

    fail_endpoint and answer_status are not random: they answer every POST they cover,
    before the key is looked at (as a load balancer or a wrong base_url would).
    """

    fail_rate: float = 0.0  # 503
    throttle_rate: float = 0.0  # 429 with Retry-After: retry_after
    drop_rate: float = 0.0  # close the connection without answering
    latency_ms: float = 0  # delay before answering any POST
    retry_after: float = 1.0  # seconds, sent in Retry-After
    max_body_bytes: int | None = None  # 413 above this
    poison: str | None = None  # 400 for a batch holding a field with exactly this value
    seed: int | None = None
    fail_endpoint: str | None = None  # "customers" or "activities": every POST to it is answered 503 (an outage)
    answer_status: int | None = None  # every POST to the two endpoints is answered with this status (400-599)

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("latency_ms", "retry_after", "max_body_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.fail_endpoint is not None and self.fail_endpoint not in ENDPOINTS:
            raise ValueError(f"fail_endpoint must be one of {', '.join(ENDPOINTS)}, got {self.fail_endpoint!r}")
        if self.answer_status is not None:
            if type(self.answer_status) is not int or not 400 <= self.answer_status <= 599:
                raise ValueError(
                    f"answer_status must be an HTTP error status from 400 to 599, got {self.answer_status}"
                )
            if self.fail_endpoint is not None:
                raise ValueError("give fail_endpoint or answer_status, not both (answer_status covers both endpoints)")


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
