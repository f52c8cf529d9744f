"""Deliver batches to Track360 (SPEC sections 6 and 9).

One `Sender` owns one `httpx.AsyncClient`. `send()` posts one batch with our own retry
loop: full-jitter exponential backoff honouring `Retry-After` on 429/5xx/timeouts/dropped
connections, halving on 413, isolating refused records on 400/422, and stopping on
401/403 (every other send of the same Sender stops too). Every outcome is a value, the
key's refusal included (`SendResult.auth_refused`): nothing is raised once sending starts.
No printing here: callers read `SendResult` and the optional `on_retry` callback.
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx
import orjson

from t360cli import __version__
from t360cli.errors import UsageError

MESSAGE_MAX = 300
STOP_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8  # every attempt, the first included
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0


Span = tuple[int, int]  # records lo..hi-1 of a batch


@dataclass(frozen=True)
class AuthRefusal:
    """The server refused the API key (401/403): what to say, and what to check."""

    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} {self.hint}"


@dataclass
class SendResult:
    acked: list[Span] = field(default_factory=list)
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # (record, HTTP status, message)
    failed: list[Span] = field(default_factory=list)
    requests: int = 0
    parts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    auth_refused: AuthRefusal | None = None  # set on the one send that got the 401/403

    @property
    def status(self) -> str:
        return "acked" if not self.failed else "failed"

    @property
    def retries(self) -> int:
        return self.requests - self.parts


# --- outcome of one HTTP attempt -------------------------------------------------------


@dataclass(frozen=True)
class Done:
    label: str


@dataclass(frozen=True)
class Transient:
    label: str
    reason: str  # "HTTP 503", "timeout", "connection dropped", "connection failed"
    retry_after: float | None = None


@dataclass(frozen=True)
class Split:
    status: int
    message: str

    @property
    def label(self) -> str:
        return str(self.status)


@dataclass(frozen=True)
class Fatal:
    label: str
    message: str
    auth: bool = False


Outcome = Done | Transient | Split | Fatal
Settled = Done | Split | Fatal  # what a part ends with once retries are over


def classify(answer: httpx.Response | httpx.RequestError, secret: str = "") -> Outcome:
    """The one place that decides what an HTTP answer (or transport error) means."""
    if isinstance(answer, httpx.TimeoutException):
        return Transient("timeout", "timeout")
    if isinstance(answer, httpx.ConnectError):
        return Transient("connect", "connection failed")
    if isinstance(answer, (httpx.NetworkError, httpx.RemoteProtocolError)):
        return Transient("dropped", "connection dropped")
    if isinstance(answer, httpx.RequestError):
        text = _redact(f"{type(answer).__name__}: {answer}", secret)
        return Fatal("error", f"request failed: {text}")
    code = answer.status_code
    if 200 <= code < 300:
        return Done(str(code))
    if code in (429, 408) or code >= 500:
        return Transient(str(code), f"HTTP {code}", parse_retry_after(answer.headers))
    if code in (401, 403):
        return Fatal(str(code), f"HTTP {code}", auth=True)
    if code in (400, 413, 422):
        return Split(code, server_message(answer, secret))
    return Fatal(str(code), f"HTTP {code}: {server_message(answer, secret)}")


def server_message(resp: httpx.Response, secret: str = "") -> str:
    """The `error` (or `message`) of a JSON answer, else its text; trimmed, key redacted."""
    text = ""
    try:
        data = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        found = next((data[k] for k in ("error", "message", "detail") if k in data), None)
        if found is not None:
            text = found if isinstance(found, str) else orjson.dumps(found).decode()
    if not text:
        text = resp.content.decode("utf-8", "replace")
    text = " ".join(text.split()) or resp.reason_phrase or f"HTTP {resp.status_code}"
    return _redact(text, secret)[:MESSAGE_MAX]


def parse_retry_after(headers: httpx.Headers, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or HTTP date); None if absent/bad."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _check_key(api_key: str, hint: str) -> None:
    if not api_key:
        raise UsageError(f"no API key: {hint} is empty.", "Set it to the Brand Token.")
    if not api_key.isascii() or not api_key.isprintable():
        raise UsageError(
            f"the API key in {hint} holds characters an HTTP header cannot carry.",
            "Check for stray quotes, spaces or line breaks.",
        )


class _TokenBucket:
    """At most a burst of `rate` requests, then `rate` per second on average."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def reserve(self) -> float:
        """Take a token (possibly in advance); return how long to wait before using it."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Sender:
    """Posts batches to one endpoint; use as `async with Sender(...) as s: await s.send(...)`."""

    def __init__(
        self,
        *,
        base_url: str,
        endpoint: str,
        api_key: str,
        api_key_hint: str = "$T360_API_KEY",
        timeout_s: float = 30,
        retry: RetryPolicy = RetryPolicy(),
        rate_limit: float | None = None,
        max_connections: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[str], object] | None = None,
    ) -> None:
        _check_key(api_key, api_key_hint)
        self.url = base_url.rstrip("/") + endpoint
        self.retry = retry
        self._key = api_key
        self._hint = api_key_hint
        self._headers = {"Content-Type": "application/json", "x-api-key": api_key}
        self._timeout = httpx.Timeout(timeout_s, pool=None)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        self._sleep, self._random, self._on_retry = sleep, random, on_retry
        self._bucket = _TokenBucket(rate_limit, clock) if rate_limit else None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt_event: asyncio.Event | None = None
        self.halted: str | None = None  # why no more requests are sent, once stopped

    def __repr__(self) -> str:
        return f"Sender(url={self.url!r}, halted={self.halted!r})"

    async def __aenter__(self) -> Sender:
        self._loop = asyncio.get_running_loop()
        self._halt_event = asyncio.Event()
        if self.halted:
            self._halt_event.set()
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            limits=self._limits,
            headers={"User-Agent": f"t360/{__version__}"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stop(self) -> None:
        """No new attempts or waits; in-flight requests finish; the rest fails "interrupted"."""
        self._halt(STOP_INTERRUPTED)

    def _halt(self, reason: str) -> None:
        if self.halted is None:
            self.halted = reason
        event, loop = self._halt_event, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def send(self, records: int, part: Callable[[int, int], bytes]) -> SendResult:
        """Deliver records 0..records-1; `part(lo, hi)` is the JSON array body of records lo..hi-1."""
        if self._client is None:
            raise RuntimeError("Sender.send() needs `async with Sender(...)`")
        result = SendResult()
        todo: list[Span] = [(0, records)] if records > 0 else []
        while todo:  # bounded: each split halves a part, so at most 2n-1 parts
            lo, hi = todo.pop()
            if self.halted:
                result.failed.append((lo, hi))
                result.error = self.halted
                continue
            outcome = await self._deliver(part(lo, hi), result)
            self._settle(outcome, (lo, hi), todo, result)
        return _tidy(result)

    def _settle(self, outcome: Settled, span: Span, todo: list[Span], result: SendResult) -> None:
        lo, hi = span
        if isinstance(outcome, Done):
            result.acked.append(span)
        elif isinstance(outcome, Split) and hi - lo == 1:
            result.refused.append((lo, outcome.status, outcome.message))
        elif isinstance(outcome, Split):
            mid = (lo + hi) // 2
            todo += [(mid, hi), (lo, mid)]
        elif isinstance(outcome, Fatal) and outcome.auth:
            self._refuse_auth(outcome, span, todo, result)
        else:
            result.failed.append(span)
            result.error = outcome.message

    def _refuse_auth(self, outcome: Fatal, span: Span, todo: list[Span], result: SendResult) -> None:
        """Halt every send; this batch's remaining parts fail, and the result carries the refusal."""
        reason = f"not sent: the server refused the API key ({outcome.message})"
        self._halt(reason)
        result.failed += [span, *todo]
        result.error = reason
        todo.clear()
        result.auth_refused = AuthRefusal(
            f"the server refused the API key ({outcome.message}).",
            f"Check the key in {self._hint}: it must be the Brand Token for {self.url}. Nothing more was sent.",
        )

    async def _deliver(self, body: bytes, result: SendResult) -> Settled:
        """Send one part until it is settled, retries exhausted, or the Sender is halted."""
        attempts = max(1, self.retry.max_attempts)
        last: Outcome | None = None
        for attempt in range(1, attempts + 1):
            if isinstance(last, Transient):
                await self._pause(self._delay(attempt - 1, last))
                if not self.halted and self._on_retry is not None:
                    self._on_retry(last.label)
            if self._bucket is not None and not self.halted:
                await self._pause(self._bucket.reserve())
            if self.halted:
                return Fatal("halted", self.halted)
            result.parts += int(attempt == 1)
            result.requests += 1
            last = await self._post(body)
            result.statuses[last.label] = result.statuses.get(last.label, 0) + 1
            if not isinstance(last, Transient):
                return last
        assert isinstance(last, Transient)
        return Fatal(last.label, f"{last.reason} after {attempts} attempts")

    def _delay(self, failed_attempt: int, last: Transient) -> float:
        cap = self.retry.backoff_max_s
        if last.retry_after is not None:
            return min(cap, last.retry_after)
        return self._random() * min(cap, self.retry.backoff_initial_s * 2.0 ** (failed_attempt - 1))

    async def _post(self, body: bytes) -> Outcome:
        assert self._client is not None
        try:
            resp = await self._client.post(self.url, content=body, headers=self._headers)
        except httpx.RequestError as exc:
            return classify(exc, self._key)
        return classify(resp, self._key)

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` with the injected sleep, waking early if the Sender is halted."""
        if self.halted or self._halt_event is None:
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        halter = asyncio.ensure_future(self._halt_event.wait())
        try:
            await asyncio.wait({sleeper, halter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, halter):
                task.cancel()
            await asyncio.gather(sleeper, halter, return_exceptions=True)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for lo, hi in sorted(spans):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _tidy(result: SendResult) -> SendResult:
    """Sort and merge adjacent ranges; order statuses by count."""
    result.acked = _merge(result.acked)
    result.failed = _merge(result.failed)
    result.refused.sort()
    result.statuses = dict(Counter(result.statuses).most_common())
    return result
