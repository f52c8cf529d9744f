"""Deliver batches to Track360 (SPEC sections 6 and 9).

One `Sender` owns one `httpx.AsyncClient`. `send()` posts one batch with our own retry
loop: full-jitter exponential backoff honouring `Retry-After` on 429/5xx/timeouts/dropped
connections, halving on 413, isolating refused records on 400/422, and stopping on
401/403 and on a broken endpoint (TLS, DNS, 404/405; every other send of the same Sender
stops too). `answers.classify` decides what each answer means. Every outcome is a value,
the halt included (`SendResult.halt`): nothing is raised once sending starts. No printing
here: callers read `SendResult` and the optional `on_retry` callback.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random as _random
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from t360cli import __version__
from t360cli.answers import Broken, Done, Fatal, Outcome, Settled, Split, Transient, classify
from t360cli.errors import UsageError
from t360cli.urls import is_loopback, mask_url

STOP_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8  # every attempt, the first included
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0  # caps the computed backoff only
    retry_after_max_s: float = 300.0  # a server's Retry-After is waited in full up to this


Span = tuple[int, int]  # records lo..hi-1 of a batch


@dataclass(frozen=True)
class Halt:
    """Why every send stopped: the key was refused (`auth`, exit 3) or the endpoint cannot work
    (exit 4); `message` is the sentence for the user, `hint` what to do."""

    message: str
    hint: str
    auth: bool = False

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
    cause: str | None = None  # why the last failed part failed, naming where ("cannot connect to https://...")
    halt: Halt | None = None  # set on a send whose answer stopped every send (401/403, TLS, DNS, 404/405)

    @property
    def auth_refused(self) -> Halt | None:
        return self.halt if self.halt is not None and self.halt.auth else None

    @property
    def status(self) -> str:
        return "acked" if not self.failed else "failed"

    @property
    def retries(self) -> int:
        return self.requests - self.parts


def _check_key(api_key: str, hint: str) -> None:
    if not api_key:
        raise UsageError(f"no API key: {hint} is empty.", "Set it to the Brand Token.")
    if not api_key.isascii() or not api_key.isprintable():
        raise UsageError(
            f"the API key in {hint} holds characters an HTTP header cannot carry.",
            "Check for stray quotes, spaces or line breaks.",
        )


def proxy_for(url: str) -> str | None:
    """The proxy a request to `url` goes through (SPEC 11), or None for a direct connection.

    The key travels only to base_url, over TLS or to the loopback host: plain http (a proxy
    forwarding it reads every header) and loopback never use a proxy; https uses HTTPS_PROXY,
    else ALL_PROXY, unless NO_PROXY names the host, and httpx tunnels through it (CONNECT)."""
    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"base URL {mask_url(url)} is not a valid URL ({exc}).") from None
    proxies = urllib.request.getproxies()
    name, proxy = next(((n, proxies[n]) for n in ("https", "all") if proxies.get(n)), ("", None))
    if parts.scheme != "https" or is_loopback(parts.host) or not proxy or urllib.request.proxy_bypass(parts.host):
        return None
    proxy, variable = proxy if "://" in proxy else f"http://{proxy}", f"${name.upper()}_PROXY"
    scheme = proxy.partition("://")[0].lower()
    try:
        valid = scheme in ("http", "https", "socks5", "socks5h") and bool(httpx.Proxy(proxy).url.host)
    except (httpx.InvalidURL, ValueError):
        valid = False
    if not valid:
        raise UsageError(
            f"the proxy {mask_url(proxy)} in {variable} is not an http, https or socks5 URL.",
            f"Fix {variable}, or unset it to connect directly.",
        )
    if scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise UsageError(
            f"the proxy {mask_url(proxy)} in {variable} is a SOCKS proxy, which needs the socksio package.",
            "Install it (pip install 'httpx[socks]'), or use an http proxy.",
        )
    return proxy


def _verify(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """httpx's `verify=`: the system's CAs ($SSL_CERT_FILE or $SSL_CERT_DIR when set, as httpx
    reads them), or only the private CA in `ca_bundle` (a PEM file)."""
    cafile = ca_bundle or os.environ.get("SSL_CERT_FILE")
    capath = None if cafile else os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        return True
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except OSError as exc:  # ssl.SSLError too
        reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
        what = (
            f"ca_bundle {ca_bundle}"
            if ca_bundle
            else f"$SSL_CERT_FILE {cafile}"
            if cafile
            else f"$SSL_CERT_DIR {capath}"
        )
        hint = "Give the path of a PEM file holding the private CA's certificate." if ca_bundle else "Fix or unset it."
        raise UsageError(f"{what}: cannot load it as a CA ({reason}).", hint) from None


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
        ca_bundle: str | None = None,
    ) -> None:
        _check_key(api_key, api_key_hint)
        self._verify = _verify(ca_bundle)
        self._ca_bundle = ca_bundle
        self.url = base_url.rstrip("/") + endpoint
        self._proxy = proxy_for(self.url) if transport is None else None
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
        return f"Sender(url={mask_url(self.url)!r}, halted={self.halted!r})"

    async def __aenter__(self) -> Sender:
        self._loop = asyncio.get_running_loop()
        self._halt_event = asyncio.Event()
        if self.halted:
            self._halt_event.set()
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            limits=self._limits,
            verify=self._verify,
            headers={"User-Agent": f"t360/{__version__}"},
            trust_env=False,  # proxies chosen by proxy_for (SPEC 11), CAs by _verify
            proxy=self._proxy,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stop(self) -> None:
        """No new attempts or waits; in-flight requests finish; the rest fails "interrupted"."""
        self._halt(STOP_INTERRUPTED)

    def halt(self, reason: str) -> None:
        """Like stop(), the rest failing with `reason` (the caller gave up on the endpoint)."""
        self._halt(reason)

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
            refusal = Halt(
                f"the server refused the API key ({outcome.message}).",
                f"Check the key in {self._hint}: it must be the Brand Token for {mask_url(self.url)}. "
                "Nothing more was sent.",
                auth=True,
            )
            self._halt_all(refusal, f"the server refused the API key ({outcome.message})", span, todo, result)
        elif isinstance(outcome, Broken):
            halt = Halt(f"{outcome.message}; nothing more was sent.", outcome.hint)
            self._halt_all(halt, outcome.message, span, todo, result)
        else:
            result.failed.append(span)
            result.error = outcome.message
            result.cause = outcome.cause or outcome.message

    def _halt_all(self, halt: Halt, why: str, span: Span, todo: list[Span], result: SendResult) -> None:
        """Halt every send; this batch's remaining parts fail, and the result carries the halt."""
        reason = f"not sent: {why}"
        self._halt(reason)
        result.failed += [span, *todo]
        result.error = result.cause = reason
        todo.clear()
        result.halt = halt

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
        return Fatal(last.label, f"{last.reason} after {attempts} attempts", cause=last.cause)

    def _delay(self, failed_attempt: int, last: Transient) -> float:
        """A server's Retry-After in full (up to retry_after_max_s), else full-jitter backoff
        capped at backoff_max_s (SPEC 6)."""
        if last.retry_after is not None:
            return min(self.retry.retry_after_max_s, last.retry_after)
        cap = self.retry.backoff_max_s
        return self._random() * min(cap, self.retry.backoff_initial_s * 2.0 ** (failed_attempt - 1))

    async def _post(self, body: bytes) -> Outcome:
        assert self._client is not None
        try:
            resp = await self._client.post(self.url, content=body, headers=self._headers)
        except httpx.RequestError as exc:
            return classify(exc, self._key, self._ca_bundle)
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
