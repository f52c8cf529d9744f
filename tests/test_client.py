"""Tests for t360cli.client: retries, backoff, splitting, isolation, auth, rate, stop."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import orjson
import pytest

from t360cli.client import RetryPolicy, Sender, SendResult, parse_retry_after
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


def test_retry_after_seconds_is_used_instead_of_jitter_and_capped():
    ft = FakeTime()
    handler, _ = scripted((429, {"Retry-After": "7"}), (503, {"Retry-After": "1000"}), 200)
    res = send_once(make(handler, ft, random=lambda: 0.0), 1, part_of(recs(1)))
    assert res.acked == [(0, 1)]
    assert ft.delays == [7.0, 60.0]  # 1000 s capped at backoff_max_s


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
        return httpx.Response(404, json={"error": "no such endpoint"})

    res = send_once(make(handler), 3, part_of(recs(3)))
    assert res.failed == [(0, 3)] and res.requests == 1
    assert res.error == "HTTP 404: no such endpoint"
    assert res.statuses == {"404": 1}


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


def test_401_stops_concurrent_sends():
    """Four sends in flight; the first answer is 401, the others 503: 4 requests in all."""
    count = 0

    async def go():
        arrived = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal count
            count += 1
            mine = count
            if count == 4:
                arrived.set()
            await asyncio.wait_for(arrived.wait(), 5)
            return httpx.Response(401 if mine == 1 else 503)

        sender = make(handler)
        async with sender:
            results = await asyncio.gather(
                *(sender.send(10, part_of(recs(10))) for _ in range(4)), return_exceptions=True
            )
            later = await sender.send(3, part_of(recs(3)))
        return results, later

    results, later = asyncio.run(go())
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
        return httpx.Response(404, json={"error": f"unknown key {request.headers['x-api-key']}"})

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
    assert "HTTP 404: unknown key ***" in texts
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
