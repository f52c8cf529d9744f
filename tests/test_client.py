"""Tests for t360cli.client (and t360cli.answers): retries, backoff, splitting, isolation,
auth, endpoint failures, rate, stop."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
import time

import httpx
import orjson
import pytest

from t360cli.answers import Broken, Transient, classify, parse_retry_after
from t360cli.client import RetryPolicy, Sender, SendResult
from t360cli.errors import UsageError

KEY = "sekret-key-9f8e7d"
BASE = "https://api.example.test"
EP = "/tracking/events/activities"


def recs(n: int, poison: set[int] = frozenset()) -> list[bytes]:
    return [orjson.dumps({"eventid": f"e{i}", "poison": i in poison}) for i in range(n)]


def part_of(records: list[bytes]):
    return lambda lo, hi: b"[" + b",".join(records[lo:hi]) + b"]"


def ids(request: httpx.Request) -> list[str]:
    return [r["eventid"] for r in orjson.loads(request.content)]


class FakeTime:
    """Injected sleep/clock: records each delay, returns at once (after yielding)."""

    def __init__(self, advance: bool = True) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self.advance = advance

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if self.advance:
            self.now += delay
        await asyncio.sleep(0)

    def clock(self) -> float:
        return self.now


def make(handler, ft: FakeTime | None = None, **kw) -> Sender:
    ft = ft or FakeTime()
    kw.setdefault("random", lambda: 1.0)
    return Sender(
        base_url=BASE,
        endpoint=EP,
        api_key=KEY,
        transport=httpx.MockTransport(handler),
        sleep=ft.sleep,
        clock=ft.clock,
        **kw,
    )


def send_once(sender: Sender, n: int, part) -> SendResult:
    async def go() -> SendResult:
        async with sender:
            return await sender.send(n, part)

    return asyncio.run(go())


def scripted(*answers):
    """Handler answering with the given statuses/exceptions in turn; records requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("simulated", request=request)
        if isinstance(answer, tuple):
            return httpx.Response(answer[0], headers=answer[1])
        return httpx.Response(answer, json={"ok": answer < 300})

    return handler, seen


def test_429_then_503_then_200_is_acked_with_counts():
    handler, seen = scripted(429, 503, 200)
    labels: list[str] = []
    res = send_once(make(handler, on_retry=labels.append), 3, part_of(recs(3)))
    assert res.acked == [(0, 3)] and res.failed == [] and res.refused == []
    assert (res.requests, res.parts, res.retries) == (3, 1, 2)
    assert res.statuses == {"429": 1, "503": 1, "200": 1}
    assert res.status == "acked" and res.error is None
    assert labels == ["429", "503"]
    assert len(seen) == 3


def test_retry_after_is_waited_in_full_up_to_retry_after_max_s():
    """SPEC 6: backoff_max_s caps the computed backoff only, never a server's Retry-After."""
    ft = FakeTime()
    handler, _ = scripted((429, {"Retry-After": "7"}), (503, {"Retry-After": "1000"}), 503, 200)
    policy = RetryPolicy(max_attempts=8, backoff_initial_s=0.5, backoff_max_s=1.0, retry_after_max_s=300.0)
    res = send_once(make(handler, ft, retry=policy, random=lambda: 1.0), 1, part_of(recs(1)))
    assert res.acked == [(0, 1)]
    # 7 s in full although backoff_max_s is 1; 1000 s waits retry_after_max_s, then retries;
    # the third failure has no Retry-After: backoff 0.5 * 2**2 = 2, capped at 1
    assert ft.delays == [7.0, 300.0, 1.0]


def test_retry_after_defaults_wait_300_s_at_most():
    ft = FakeTime()
    handler, _ = scripted((503, {"Retry-After": "86400"}), 200)
    res = send_once(make(handler, ft), 1, part_of(recs(1)))
    assert res.acked == [(0, 1)] and ft.delays == [300.0]


def test_retry_after_http_date():
    now = time.time()
    when = email.utils.formatdate(now + 30, usegmt=True)
    headers = httpx.Headers({"Retry-After": when})
    assert parse_retry_after(headers, now=lambda: now) == pytest.approx(30, abs=1)
    assert parse_retry_after(httpx.Headers({"Retry-After": " 2.5 "})) == 2.5
    assert parse_retry_after(httpx.Headers({"Retry-After": "-1"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None
    past = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert parse_retry_after(past) == 0.0


def test_backoff_full_jitter_bounds_and_max_attempts_exhausted():
    policy = RetryPolicy(max_attempts=6, backoff_initial_s=0.5, backoff_max_s=3.0)
    for rnd, expected in ((1.0, [0.5, 1.0, 2.0, 3.0, 3.0]), (0.25, [0.125, 0.25, 0.5, 0.75, 0.75])):
        ft = FakeTime()
        handler, seen = scripted(503)
        sender = make(handler, ft, retry=policy, random=lambda r=rnd: r)
        res = send_once(sender, 4, part_of(recs(4)))
        assert ft.delays == expected
        assert len(seen) == 6
        assert res.failed == [(0, 4)] and res.acked == [] and res.status == "failed"
        assert (res.requests, res.parts) == (6, 1)
        assert res.statuses == {"503": 6}
        assert res.error == "HTTP 503 after 6 attempts"


def test_timeouts_and_dropped_connections_are_retried():
    handler, seen = scripted(httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError, 201)
    res = send_once(make(handler), 2, part_of(recs(2)))
    assert res.acked == [(0, 2)]
    assert res.statuses == {"timeout": 1, "dropped": 2, "connect": 1, "201": 1}
    assert len(seen) == 5


def test_timeouts_exhausted():
    handler, _ = scripted(httpx.ConnectTimeout)
    res = send_once(make(handler, retry=RetryPolicy(max_attempts=3)), 1, part_of(recs(1)))
    assert res.failed == [(0, 1)] and res.error == "timeout after 3 attempts"
    assert res.statuses == {"timeout": 3}


def test_413_splits_in_halves_and_single_record_413_is_refused():
    records = recs(5, poison={3})
    delivered: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if len(body) > 2 or any(r["poison"] for r in body):
            return httpx.Response(413, json={"error": "payload too large"})
        delivered.extend(ids(request))
        return httpx.Response(200)

    res = send_once(make(handler), 5, part_of(records))
    assert sorted(delivered) == ["e0", "e1", "e2", "e4"]
    assert res.acked == [(0, 3), (4, 5)]
    assert res.refused == [(3, 413, "payload too large")]
    assert res.failed == [] and res.status == "acked"
    # [0,5) -> [0,2) [2,5) -> [2,3) [3,5) -> [3,4) [4,5): 7 parts, no retries
    assert (res.parts, res.requests) == (7, 7)


def test_400_isolates_one_poison_record_in_ten():
    records = recs(10, poison={6})
    acked_ids: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        bad = [r["eventid"] for r in body if r["poison"]]
        if bad:
            return httpx.Response(400, json={"error": f"record {bad[0]}: Value is not a number"})
        acked_ids.extend(ids(request))
        return httpx.Response(200)

    res = send_once(make(handler), 10, part_of(records))
    # each good record delivered exactly once, halves in order (the lower half first)
    assert acked_ids == [f"e{i}" for i in range(10) if i != 6]
    assert res.refused == [(6, 400, "record e6: Value is not a number")]
    assert res.acked == [(0, 6), (7, 10)] and res.failed == []
    assert res.requests == res.parts  # splits are parts, not retries


def test_422_text_message_is_trimmed_to_300_chars():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, text="  bad   record " + "x" * 1000)

    res = send_once(make(handler), 1, part_of(recs(1)))
    ((index, status, message),) = res.refused
    assert (index, status) == (0, 422)
    assert message.startswith("bad record xxx") and len(message) == 300


def test_other_4xx_is_not_retried():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": "conflict"})

    res = send_once(make(handler), 3, part_of(recs(3)))
    assert res.failed == [(0, 3)] and res.requests == 1
    assert res.error == "HTTP 409: conflict"
    assert res.cause == f"{BASE}{EP} answered HTTP 409: conflict"
    assert res.statuses == {"409": 1} and res.halt is None


def test_header_and_body_exactness():
    handler, seen = scripted(200)
    records = recs(3)
    sender = Sender(base_url=BASE + "/", endpoint=EP, api_key=KEY, transport=httpx.MockTransport(handler))
    send_once(sender, 3, part_of(records))
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == BASE + EP
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-api-key"] == KEY
    assert req.content == b"[" + b",".join(records) + b"]"
    assert req.headers["user-agent"].startswith("t360/")


def test_401_is_an_auth_refusal_without_the_key():
    """A refused key is a value on the result (run.py raises AuthRefused once the report is written)."""
    handler, seen = scripted(401)
    sender = make(handler, api_key_hint="$MY_KEY")
    res = send_once(sender, 5, part_of(recs(5)))
    text = str(res.auth_refused)
    assert text.startswith("the server refused the API key (HTTP 401).")
    assert "$MY_KEY" in text and KEY not in text
    assert res.failed == [(0, 5)]
    assert len(seen) == 1 and sender.halted == res.error


def four_sends_first_answered(status: int, records: int) -> tuple[list[SendResult], SendResult, int]:
    """Four sends in flight; the first request is answered `status`, the others 503; then
    one more send. (results, the later send, requests made)."""
    count = 0

    async def go() -> tuple[list[SendResult], SendResult]:
        arrived = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal count
            count += 1
            mine = count
            if count == 4:
                arrived.set()
            await asyncio.wait_for(arrived.wait(), 5)
            return httpx.Response(status if mine == 1 else 503)

        sender = make(handler)
        async with sender:
            results = await asyncio.gather(*(sender.send(records, part_of(recs(records))) for _ in range(4)))
            later = await sender.send(3, part_of(recs(3)))
        return list(results), later

    results, later = asyncio.run(go())
    return results, later, count


def test_401_stops_concurrent_sends():
    """Four sends in flight; the first answer is 401, the others 503: 4 requests in all."""
    results, later, count = four_sends_first_answered(401, 10)
    assert count == 4
    assert all(isinstance(r, SendResult) for r in results)
    assert sum(r.auth_refused is not None for r in results) == 1
    for r in results:
        if r.auth_refused is None:
            assert r.failed == [(0, 10)] and r.requests == 1
            assert r.error == "not sent: the server refused the API key (HTTP 401)"
    assert later.requests == 0 and later.failed == [(0, 3)]


def test_rate_limit_sequential_with_fake_clock():
    ft = FakeTime()
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(ft.now)
        return httpx.Response(200)

    async def go():
        async with make(handler, ft, rate_limit=2) as sender:
            for _ in range(7):
                await sender.send(1, part_of(recs(1)))

    asyncio.run(go())
    assert times == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(sum(t <= s for t in times) <= 2 + 2 * s for s in times)


def test_rate_limit_is_shared_by_concurrent_sends():
    ft = FakeTime(advance=False)  # clock stays at 0: each delay is the reserved slot
    handler, seen = scripted(200)

    async def go():
        async with make(handler, ft, rate_limit=2) as sender:
            await asyncio.gather(*(sender.send(1, part_of(recs(1))) for _ in range(6)))

    asyncio.run(go())
    assert sorted(ft.delays) == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert len(seen) == 6


def test_stop_during_backoff_sends_nothing_more():
    handler, seen = scripted(503)
    holder: dict[str, Sender] = {}

    async def stopping_sleep(delay: float) -> None:
        holder["s"].stop()
        await asyncio.sleep(0)

    sender = Sender(
        base_url=BASE, endpoint=EP, api_key=KEY, transport=httpx.MockTransport(handler), sleep=stopping_sleep
    )
    holder["s"] = sender
    res = send_once(sender, 4, part_of(recs(4)))
    assert len(seen) == 1 and res.requests == 1
    assert res.failed == [(0, 4)] and res.error == "interrupted"


def test_stop_wakes_a_long_real_wait():
    handler, seen = scripted((503, {"Retry-After": "60"}))

    async def go():
        sender = Sender(base_url=BASE, endpoint=EP, api_key=KEY, transport=httpx.MockTransport(handler))
        async with sender:
            asyncio.get_running_loop().call_later(0.05, sender.stop)
            return await asyncio.wait_for(sender.send(1, part_of(recs(1))), 10)

    res = asyncio.run(go())
    assert res.error == "interrupted" and len(seen) == 1


def test_stop_lets_in_flight_request_finish_and_fails_the_rest():
    records = recs(4, poison={0})
    holder: dict[str, Sender] = {}
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(ids(request))
        holder["s"].stop()  # Ctrl-C while this request is on the wire
        return httpx.Response(400, json={"error": "bad"})

    sender = make(handler)
    holder["s"] = sender
    res = send_once(sender, 4, part_of(records))
    assert seen == [["e0", "e1", "e2", "e3"]]
    assert res.failed == [(0, 4)] and res.error == "interrupted" and res.refused == []


def test_stop_in_flight_2xx_is_acked():
    holder: dict[str, Sender] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        holder["s"].stop()
        return httpx.Response(200)

    sender = make(handler)
    holder["s"] = sender
    res = send_once(sender, 2, part_of(recs(2)))
    assert res.acked == [(0, 2)] and res.status == "acked"


def test_key_never_in_error_texts_or_repr():
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": f"unknown key {request.headers['x-api-key']}"})

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol(f"odd {KEY}", request=request)

    def poison(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"record refused for {KEY}")

    texts = []
    for handler in (echo, boom, poison):
        sender = make(handler)
        res = send_once(sender, 1, part_of(recs(1)))
        texts += [res.error or "", repr(res), repr(sender), str(vars(res))]
    for status in (401, 403):
        h, _ = scripted(status)
        res = send_once(make(h), 1, part_of(recs(1)))
        texts += [str(res.auth_refused), repr(res.auth_refused), res.error or ""]
    assert "HTTP 409: unknown key ***" in texts
    assert any("record refused for ***" in t for t in texts)
    assert all(KEY not in t for t in texts)


def test_bad_key_is_refused_without_showing_it():
    for bad in ("", "abc\ndef", "clé-secrète"):
        with pytest.raises(UsageError) as info:
            Sender(base_url=BASE, endpoint=EP, api_key=bad, api_key_hint="$T360_API_KEY")
        assert "$T360_API_KEY" in str(info.value)
        assert not bad or bad not in str(info.value)


def test_zero_records_sends_nothing():
    handler, seen = scripted(200)
    res = send_once(make(handler), 0, part_of([]))
    assert seen == [] and res.status == "acked" and res.requests == 0


def test_send_outside_context_manager_is_an_error():
    handler, _ = scripted(200)
    with pytest.raises(RuntimeError):
        asyncio.run(make(handler).send(1, part_of(recs(1))))


# --- endpoint failures (SPEC 10): classified by type, not retried, every send stops -----------


def connect_error(cause: BaseException, url: str = BASE + EP) -> httpx.ConnectError:
    """A ConnectError as httpx raises it: the OS or ssl error in its cause chain."""
    request = httpx.Request("POST", url)
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError("All connection attempts failed", request=request) from inner
    except httpx.ConnectError as exc:
        return exc


def test_connection_refused_is_transient_and_says_refused():
    refused = ConnectionRefusedError(111, "Connection refused")
    outcome = classify(connect_error(refused))
    assert outcome == Transient(
        "connect", "connection refused", cause="cannot connect to https://api.example.test (connection refused)"
    )


def test_a_certificate_that_fails_verification_is_broken_naming_host_and_reason():
    tls = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    tls.verify_message = "self-signed certificate"
    outcome = classify(connect_error(tls))
    assert outcome == Broken(
        "tls",
        "cannot verify the TLS certificate of api.example.test (self-signed certificate)",
        "If api.example.test uses a private CA, set ca_bundle: to its PEM file in the config, "
        "then rerun the same command.",
    )
    with_bundle = classify(connect_error(tls), ca_bundle="/etc/ssl/ours.pem")
    assert isinstance(with_bundle, Broken) and with_bundle.hint == (
        "Check that ca_bundle /etc/ssl/ours.pem holds the CA that signed the certificate of api.example.test, "
        "then rerun the same command."
    )


def test_a_host_that_does_not_resolve_is_broken_but_a_resolver_hiccup_is_retried():
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    outcome = classify(connect_error(unknown))
    assert isinstance(outcome, Broken) and outcome.label == "dns"
    assert outcome.message == "the host name api.example.test does not resolve (Name or service not known)"
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    outcome = classify(connect_error(again))
    assert isinstance(outcome, Transient) and outcome.reason == "temporary failure in name resolution"


@pytest.mark.parametrize("status", [404, 405])
def test_404_and_405_are_broken_with_the_full_url(status: int):
    request = httpx.Request("POST", BASE + EP)
    outcome = classify(httpx.Response(status, request=request))
    assert isinstance(outcome, Broken)
    phrase = {404: "Not Found", 405: "Method Not Allowed"}[status]
    assert outcome.message == f"{BASE}{EP} answered HTTP {status} {phrase}"
    assert outcome.hint == "Check base_url: it must be the Track360 API host (t360 adds /tracking/events/... itself)."
    with_path = classify(httpx.Response(status, request=httpx.Request("POST", BASE + "/api/v2" + EP)))
    assert isinstance(with_path, Broken)
    assert with_path.hint == (
        "base_url is the host only (t360 adds /tracking/events/...): "
        f"set base_url to {BASE}, not {BASE}/api/v2, then rerun the same command."
    )


def test_a_404_halts_every_send_of_the_sender():
    """Four sends in flight; the first answer is 404: no further request, every send fails."""
    results, later, count = four_sends_first_answered(404, 5)
    assert count == 4
    halts = [r.halt for r in results if r.halt is not None]
    assert (
        len(halts) == 1
        and not halts[0].auth
        and halts[0].message == (f"{BASE}{EP} answered HTTP 404 Not Found; nothing more was sent.")
    )
    assert all(r.failed == [(0, 5)] for r in results)
    assert later.requests == 0 and later.failed == [(0, 3)]
    assert later.error == f"not sent: {BASE}{EP} answered HTTP 404 Not Found"


def test_exhausted_retries_keep_the_cause_naming_where():
    handler, _ = scripted(503)
    res = send_once(make(handler, retry=RetryPolicy(max_attempts=2)), 1, part_of(recs(1)))
    assert res.error == "HTTP 503 after 2 attempts"
    assert res.cause == f"{BASE}{EP} answered HTTP 503"


def test_ca_bundle_that_is_no_ca_is_a_usage_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError) as info:
        Sender(base_url=BASE, endpoint=EP, api_key=KEY, ca_bundle=str(bad))
    assert str(info.value).startswith(f"ca_bundle {bad}: cannot load it as a CA (")
