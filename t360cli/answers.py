"""What an HTTP answer (or a transport error) means: the one place that classifies it (SPEC 6, 10).

Each attempt ends in one outcome kind, decided by type, never by the text of a message:

- `Done`: 2xx, the whole part is acknowledged.
- `Transient`: 429/408/5xx, timeouts, refused or dropped connections: retried.
- `Split`: 400/413/422: split the part to isolate what the server refuses.
- `Fatal`: this part fails without retry (other 4xx); with `auth`, a 401/403 that stops the run.
- `Broken`: the endpoint itself cannot work (a TLS certificate that fails verification, a
  host name that does not resolve, a 404 or 405): retrying cannot help, the run stops.
"""

from __future__ import annotations

import errno
import math
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx
import orjson

MESSAGE_MAX = 300
TRACKING = "/tracking/events/"  # what t360 adds to base_url
_CHAIN_MAX = 20  # causes followed from a transport error


@dataclass(frozen=True)
class Done:
    label: str


@dataclass(frozen=True)
class Transient:
    label: str
    reason: str  # "HTTP 503", "timeout", "connection refused", "connection reset", ...
    retry_after: float | None = None
    cause: str = ""  # the reason with where it happened: "cannot connect to https://host (connection refused)"


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
    cause: str = ""


@dataclass(frozen=True)
class Broken:
    """The endpoint cannot work: `message` says what and where (no final period), `hint` what to do."""

    label: str
    message: str
    hint: str


Outcome = Done | Transient | Split | Fatal | Broken
Settled = Done | Split | Fatal | Broken  # what a part ends with once retries are over


def classify(answer: httpx.Response | httpx.RequestError, secret: str = "", ca_bundle: str | None = None) -> Outcome:
    """The one place that decides what an HTTP answer (or transport error) means."""
    if isinstance(answer, httpx.Response):
        return _classify_response(answer, secret)
    return _classify_error(answer, secret, ca_bundle)


def _classify_response(answer: httpx.Response, secret: str) -> Outcome:
    code = answer.status_code
    if 200 <= code < 300:
        return Done(str(code))
    url = _url_of(answer)
    where = _show_url(url) if url is not None else "the server"
    if code in (429, 408) or code >= 500:
        return Transient(str(code), f"HTTP {code}", parse_retry_after(answer.headers), f"{where} answered HTTP {code}")
    if code in (401, 403):
        return Fatal(str(code), f"HTTP {code}", auth=True)
    if code in (400, 413, 422):
        return Split(code, server_message(answer, secret))
    if code in (404, 405):
        phrase = f" {answer.reason_phrase}" if answer.reason_phrase else ""
        return Broken(str(code), f"{where} answered HTTP {code}{phrase}", _endpoint_hint(url))
    message = server_message(answer, secret)
    return Fatal(str(code), f"HTTP {code}: {message}", cause=f"{where} answered HTTP {code}: {message}")


def _classify_error(exc: httpx.RequestError, secret: str, ca_bundle: str | None) -> Outcome:
    url = _url_of(exc)
    where = _origin(url) if url is not None else "the server"
    if isinstance(exc, httpx.TimeoutException):
        return Transient("timeout", "timeout", cause=f"no answer from {where} (timeout)")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, url, where, ca_bundle)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        reason = _os_reason(exc) or "connection dropped"
        return Transient("dropped", reason, cause=f"{where} dropped the connection ({reason})")
    text = _redact(f"{type(exc).__name__}: {exc}", secret)
    return Fatal("error", f"request failed: {text}", cause=f"a request to {where} failed: {text}")


def _connect_failure(exc: httpx.ConnectError, url: httpx.URL | None, where: str, ca_bundle: str | None) -> Outcome:
    host = url.host if url is not None and url.host else "the host"
    tls = _in_chain(exc, ssl.SSLCertVerificationError)
    if isinstance(tls, ssl.SSLCertVerificationError):
        reason = tls.verify_message or tls.reason or "verification failed"
        hint = (
            f"Check that ca_bundle {ca_bundle} holds the CA that signed the certificate of {host}"
            if ca_bundle
            else f"If {host} uses a private CA, set ca_bundle: to its PEM file in the config"
        )
        return Broken(
            "tls", f"cannot verify the TLS certificate of {host} ({reason})", f"{hint}, then rerun the same command."
        )
    dns = _in_chain(exc, socket.gaierror)
    if isinstance(dns, socket.gaierror) and dns.errno != socket.EAI_AGAIN:  # EAI_AGAIN: the resolver may recover
        return Broken(
            "dns",
            f"the host name {host} does not resolve ({dns.strerror or 'unknown host'})",
            "Check the host in base_url (and this machine's DNS), then rerun the same command.",
        )
    reason = _os_reason(exc) or "connection failed"
    return Transient("connect", reason, cause=f"cannot connect to {where} ({reason})")


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "broken pipe",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (explicit or implicit), cycles and depth bounded."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < _CHAIN_MAX:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's reason behind a transport error ("connection refused"), if any."""
    errors = [e for e in _chain(exc) if isinstance(e, OSError)]
    for error in errors:
        if error.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[error.errno]
    texts = [e.strerror for e in reversed(errors) if e.strerror]
    return texts[0].lower() if texts else None


def _url_of(answer: httpx.Response | httpx.RequestError) -> httpx.URL | None:
    try:
        return answer.request.url
    except RuntimeError:  # built without a request (unit tests)
        return None


def _origin(url: httpx.URL) -> str:
    """scheme://host[:port], never user information."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


def _show_url(url: httpx.URL) -> str:
    return _origin(url) + url.path


def _endpoint_hint(url: httpx.URL | None) -> str:
    """What to do about a 404/405: base_url is the host only (t360 adds /tracking/events/...)."""
    prefix = url.path[: url.path.find(TRACKING)] if url is not None and TRACKING in url.path else ""
    if url is not None and prefix.strip("/"):
        origin = _origin(url)
        return (
            f"base_url is the host only (t360 adds {TRACKING}...): "
            f"set base_url to {origin}, not {origin}{prefix}, then rerun the same command."
        )
    return f"Check base_url: it must be the Track360 API host (t360 adds {TRACKING}... itself)."


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
