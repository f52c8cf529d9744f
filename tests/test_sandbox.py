"""The sandbox over real HTTP on 127.0.0.1 (httpx and raw sockets)."""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from t360cli.sandbox import Faults, check_batch, serve_in_thread

KEY = "sandbox-key"
CUST = "/tracking/events/customers"
ACT = "/tracking/events/activities"


@pytest.fixture
def sandbox() -> Iterator:
    with serve_in_thread() as sb:
        yield sb


@pytest.fixture
def client(sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"x-api-key": KEY}, timeout=10) as c:
        yield c


def post(client: httpx.Client, path: str, records: object) -> httpx.Response:
    return client.post(path, content=orjson.dumps(records))


def act(i: int, **kw: str) -> dict:
    return {"customerid": f"c{i}", "eventname": "Deposit", "Value": "10.00", **kw}


def raw_exchange(port: int, data: bytes, answers: int) -> list[bytes]:
    """Send raw bytes on one connection; read until `answers` responses (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while got.count(b"HTTP/1.1 ") < answers:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return [b"HTTP/1.1 " + part for part in got.split(b"HTTP/1.1 ")[1:]]


def raw_post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


# --- the key -------------------------------------------------------------------------------


def test_missing_or_wrong_key_is_401_and_stores_nothing(sandbox) -> None:
    body = orjson.dumps([act(1)])
    with httpx.Client(base_url=sandbox.url) as c:
        missing = c.post(ACT, content=body)
        wrong = c.post(ACT, content=body, headers={"x-api-key": "s3cret-guess"})
    assert (missing.status_code, missing.json()) == (401, {"error": "missing x-api-key header"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid API key"})
    assert "s3cret-guess" not in wrong.text and KEY not in wrong.text
    assert sandbox.stats() == {"customers": 0, "activities": 0, "requests": 2, "duplicates_ignored": 0}


def test_stats_and_records_need_no_key(sandbox, client) -> None:
    post(client, CUST, [{"customerId": "a"}])
    with httpx.Client(base_url=sandbox.url) as anon:
        assert anon.get("/sandbox/stats").json()["customers"] == 1
        assert anon.get("/sandbox/records/customers").json() == [{"customerId": "a"}]
        assert anon.get("/sandbox/records/activities").json() == []


# --- storing ------------------------------------------------------------------------------


def test_customers_upserted_whole_in_first_insert_order(sandbox, client) -> None:
    r1 = post(client, CUST, [{"customerId": "a", "country": "DE", "tracking_data": "t1"}, {"customerId": "b"}])
    r2 = post(client, CUST, [{"customerId": "a", "country": "FR"}, {"customerId": "c"}])
    assert r1.json() == {"accepted": 2, "duplicates": 0} and r2.status_code == 200
    assert sandbox.customers() == [{"customerId": "a", "country": "FR"}, {"customerId": "b"}, {"customerId": "c"}]
    assert sandbox.stats()["customers"] == 3


def test_activities_deduplicated_by_eventid(sandbox, client) -> None:
    first = post(client, ACT, [act(1, eventid="e1"), act(2, eventid="e2"), act(3)])
    again = post(client, ACT, [act(9, eventid="e2"), act(4, eventid="e4"), act(4, eventid="e4"), act(3)])
    assert first.json() == {"accepted": 3, "duplicates": 0}
    assert again.json() == {"accepted": 2, "duplicates": 2}
    assert [a["customerid"] for a in sandbox.activities()] == ["c1", "c2", "c3", "c4", "c3"]
    assert sandbox.activities()[1] == act(2, eventid="e2")  # the first one is kept
    assert sandbox.stats() == {"customers": 0, "activities": 5, "requests": 2, "duplicates_ignored": 2}


def test_file_db_persists_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "state" / "sandbox.db"
    for _ in range(2):
        with serve_in_thread(db=db) as sb, httpx.Client(headers={"x-api-key": KEY}) as c:
            c.post(sb.url + ACT, content=orjson.dumps([act(1, eventid="same")]))
            assert sb.stats()["activities"] == 1
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT eventid FROM activities").fetchall() == [("same",)]
    con.close()


# --- refusals -----------------------------------------------------------------------------

BAD = [
    (CUST, b"[{'customerId': 'a'}]", r"^body is not valid JSON: "),
    (CUST, b'{"customerId": "a"}', r"^body must be a JSON array of records, got object$"),
    (ACT, b'[{"customerid": "a", "eventname": "x"}, "x"]', r"^record 2: must be a JSON object, got string$"),
    (ACT, b'[{"customerid": "a", "eventname": "x"}, {"customerid": "b"}]', r"^record 2: eventname is required$"),
    (ACT, b'[{"customerid": "", "eventname": "x"}]', r"^record 1: customerid is required$"),
    (ACT, b'[{"customerid": 7, "eventname": "x"}]', r"^record 1: customerid must be a string, got number$"),
    (
        CUST,
        b'[{"customerid": "a"}]',
        r"^record 1: customerId is required \(found 'customerid': this endpoint spells it "
        r"'customerId'\)$",
    ),
    (
        CUST,
        orjson.dumps([{"customerId": "a"}, {"customerId": "b", "tracking_data": "x" * 51}]),
        r"^record 2: tracking_data: 51 characters, at most 50$",
    ),
]


@pytest.mark.parametrize("path,body,message", BAD)
def test_malformed_batch_is_400_and_stores_nothing(sandbox, client, path, body, message) -> None:
    r = client.post(path, content=body)
    assert r.status_code == 400
    assert re.search(message, r.json()["error"]), r.json()
    assert sandbox.stats()["customers"] == sandbox.stats()["activities"] == 0


def test_tracking_data_of_50_characters_is_fine() -> None:
    assert check_batch("customers", [{"customerId": "a", "tracking_data": "x" * 50}]) is None
    assert check_batch("activities", []) is None


def test_wrong_path_404_and_wrong_method_405(sandbox, client) -> None:
    nope = client.post("/tracking/events/trades", content=b"[]")
    get_post_endpoint = client.get(ACT)
    post_stats = client.post("/sandbox/stats", content=b"")
    assert (nope.status_code, nope.json()) == (404, {"error": "no such path: /tracking/events/trades"})
    assert get_post_endpoint.status_code == 405 and get_post_endpoint.headers["allow"] == "POST"
    assert post_stats.status_code == 405 and post_stats.headers["allow"] == "GET"
    assert "error" in get_post_endpoint.json() and "error" in post_stats.json()
    assert sandbox.stats()["requests"] == 0  # only POSTs to the two endpoints count


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults,status,headers",
    [
        (Faults(fail_rate=1.0, seed=1), 503, {}),
        (Faults(throttle_rate=1.0, seed=1), 429, {"retry-after": "1"}),
        (Faults(throttle_rate=1.0, retry_after=0, seed=1), 429, {"retry-after": "0"}),
        (Faults(max_body_bytes=10), 413, {}),
    ],
)
def test_fault_answers_store_nothing(sandbox, client, faults, status, headers) -> None:
    sandbox.set_faults(faults)
    r = post(client, ACT, [act(1, eventid="e1")])
    assert r.status_code == status and "error" in r.json()
    assert {k: r.headers[k] for k in headers} == headers
    assert client.get("/sandbox/stats").status_code == 200  # never applies to GET
    assert sandbox.stats() == {"customers": 0, "activities": 0, "requests": 1, "duplicates_ignored": 0}


def test_max_body_bytes_lets_a_body_of_exactly_that_size_through(sandbox, client) -> None:
    body = orjson.dumps([act(1)])
    sandbox.set_faults(Faults(max_body_bytes=len(body)))
    assert client.post(ACT, content=body).status_code == 200
    too_big = client.post(ACT, content=body + b" ")
    assert too_big.json() == {"error": f"body is {len(body) + 1} bytes, at most {len(body)}"}


def test_poison_refuses_the_whole_batch(sandbox, client) -> None:
    sandbox.set_faults(Faults(poison="BAD"))
    r = post(client, ACT, [act(1), act(2, eventname="BAD")])
    assert (r.status_code, r.json()) == (400, {"error": "record 2: refused value 'BAD' in eventname"})
    assert post(client, ACT, [act(1)]).status_code == 200
    assert sandbox.stats()["activities"] == 1


def test_drop_closes_without_answer(sandbox, client) -> None:
    sandbox.set_faults(Faults(drop_rate=1.0, seed=3))
    with pytest.raises(httpx.TransportError):
        post(client, ACT, [act(1)])
    sandbox.set_faults(Faults())
    assert post(client, ACT, [act(2)]).status_code == 200  # a new connection works
    assert [a["customerid"] for a in sandbox.activities()] == ["c2"]
    assert sandbox.stats()["requests"] == 2


def test_seeded_faults_are_reproducible() -> None:
    runs = []
    for _ in range(2):
        with (
            serve_in_thread(faults=Faults(fail_rate=0.5, seed=42)) as sb,
            httpx.Client(base_url=sb.url, headers={"x-api-key": KEY}) as c,
        ):
            runs.append([post(c, ACT, [act(i)]).status_code for i in range(30)])
            assert sb.stats()["requests"] == 30
            assert sb.stats()["activities"] == runs[-1].count(200)
    assert runs[0] == runs[1] and {200, 503} == set(runs[0])


def test_latency_does_not_block_other_connections(sandbox, client) -> None:
    sandbox.set_faults(Faults(latency_ms=3000))
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=sandbox.url) as other:
        slow = pool.submit(post, client, ACT, [act(1)])
        deadline = time.monotonic() + 10
        while other.get("/sandbox/stats").json()["requests"] < 1:
            assert time.monotonic() < deadline, "the slow POST never arrived"
        # the slow POST has arrived and is still waiting, yet another connection is answered
        assert not slow.done()
        assert other.get("/sandbox/stats").json()["activities"] == 0
        assert slow.result(timeout=30).status_code == 200
    assert sandbox.stats()["activities"] == 1


def test_busy_port_raises_and_close_is_idempotent(sandbox) -> None:
    with pytest.raises(OSError):
        serve_in_thread(port=sandbox.port)
    sandbox.close()
    sandbox.close()


def test_faults_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="fail_rate must be between 0 and 1"):
        Faults(fail_rate=1.5)
    with pytest.raises(ValueError, match="latency_ms must not be negative"):
        Faults(latency_ms=-1)
    with pytest.raises(ValueError, match=r"^fail_endpoint must be one of customers, activities, got 'trades'$"):
        Faults(fail_endpoint="trades")
    for status in (200, 302, 399, 600):
        with pytest.raises(
            ValueError, match=rf"^answer_status must be an HTTP error status from 400 to 599, got {status}$"
        ):
            Faults(answer_status=status)
    with pytest.raises(ValueError, match=r"^give fail_endpoint or answer_status, not both"):
        Faults(fail_endpoint="customers", answer_status=500)


# --- bad nights: fixed answers (SPEC section 10) --------------------------------------------


def test_fail_endpoint_is_an_outage_of_that_endpoint_only() -> None:
    with (
        serve_in_thread(faults=Faults(fail_endpoint="customers")) as sb,
        httpx.Client(base_url=sb.url, headers={"x-api-key": KEY}) as c,
    ):
        down = [post(c, CUST, [{"customerId": f"a{i}"}]) for i in range(3)]
        up = post(c, ACT, [act(1)])
        assert {(r.status_code, r.json()["error"]) for r in down} == {
            (503, "sandbox: the customers endpoint is down (fail_endpoint)")
        }
        assert "retry-after" not in down[0].headers
        assert up.json() == {"accepted": 1, "duplicates": 0}
        assert sb.stats() == {"customers": 0, "activities": 1, "requests": 4, "duplicates_ignored": 0}


def test_fail_endpoint_activities_answers_before_the_key_is_looked_at() -> None:
    with serve_in_thread(faults=Faults(fail_endpoint="activities")) as sb, httpx.Client(base_url=sb.url) as anon:
        assert anon.post(ACT, content=orjson.dumps([act(1)])).status_code == 503
        assert anon.post(CUST, content=b'[{"customerId": "a"}]').status_code == 401  # the other one checks the key
        assert sb.stats()["requests"] == 2


@pytest.mark.parametrize(
    "status,phrase",
    [(404, b"Not Found"), (405, b"Method Not Allowed"), (500, b"Internal Server Error"), (502, b"Bad Gateway")],
)
def test_answer_status_answers_every_post_and_stores_nothing(status, phrase) -> None:
    with (
        serve_in_thread(faults=Faults(answer_status=status)) as sb,
        httpx.Client(base_url=sb.url, headers={"x-api-key": KEY}) as c,
    ):
        answers = [post(c, CUST, [{"customerId": "a"}]), post(c, ACT, [act(1)]), c.post(ACT, content=b"not json")]
        assert [(r.status_code, r.json()) for r in answers] == [
            (status, {"error": f"sandbox: every POST is answered {status} (answer_status)"})
        ] * 3
        assert c.get("/sandbox/stats").status_code == 200  # GETs are not covered
        assert sb.stats() == {"customers": 0, "activities": 0, "requests": 3, "duplicates_ignored": 0}
        status_line = raw_exchange(sb.port, raw_post(ACT, b"[]"), 1)[0].split(b"\r\n")[0]
        assert status_line == b"HTTP/1.1 %d %s" % (status, phrase)
        sb.set_faults(Faults())  # and back to normal
        assert post(c, ACT, [act(1)]).status_code == 200


def test_module_refuses_a_bad_fixed_answer(capsys) -> None:
    from t360cli.sandbox import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", "--db", ":memory:", "--answer-status", "200"])
    assert exit_info.value.code == 2
    assert "answer_status must be an HTTP error status from 400 to 599, got 200" in capsys.readouterr().err


# --- HTTP framing -------------------------------------------------------------------------


def test_keep_alive_and_pipelining_on_one_connection(sandbox) -> None:
    data = (
        raw_post(ACT, orjson.dumps([act(1)]))
        + raw_post(ACT, b"not json")
        + b"GET /sandbox/stats HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = raw_exchange(sandbox.port, data, 3)
    assert [a.split(b"\r\n")[0] for a in answers] == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 200 OK",
    ]
    assert answers[2].endswith(b'{"customers":0,"activities":1,"requests":2,"duplicates_ignored":0}')


def test_httpx_reuses_one_connection(sandbox, client) -> None:
    ports = set()
    for i in range(5):
        r = post(client, ACT, [act(i)])
        assert r.status_code == 200
        ports.add(r.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1 and sandbox.stats()["activities"] == 5


@pytest.mark.parametrize(
    "data,status",
    [
        (f"POST {ACT} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n\r\n".encode(), b"411"),
        (f"POST {ACT} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n".encode(), b"411"),
        (b"POST /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
        (b"garbage\r\n\r\n", b"400"),
    ],
)
def test_unframeable_requests_answered_and_closed(sandbox, data, status) -> None:
    answers = raw_exchange(sandbox.port, data + raw_post(ACT, b"[]"), 2)
    assert len(answers) == 1  # the connection is closed after the error
    assert answers[0].split(b" ")[1] == status and b"Connection: close" in answers[0]
    assert b'{"error":' in answers[0]


def test_http10_and_connection_close_end_the_connection(sandbox) -> None:
    for data in (b"GET /sandbox/stats HTTP/1.0\r\n\r\n", b"GET /sandbox/stats HTTP/1.1\r\nConnection: close\r\n\r\n"):
        answers = raw_exchange(sandbox.port, data + data, 2)
        assert len(answers) == 1 and answers[0].startswith(b"HTTP/1.1 200 OK")


def test_expect_100_continue(sandbox) -> None:
    answers = raw_exchange(sandbox.port, raw_post(ACT, b"[]", "Expect: 100-continue\r\n"), 2)
    assert answers[0].startswith(b"HTTP/1.1 100 Continue") and answers[1].startswith(b"HTTP/1.1 200")


# --- the foreground server ----------------------------------------------------------------


def test_module_serves_until_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    cmd = [sys.executable, "-m", "t360cli.sandbox", "--port", "0", "--db", str(db), "--api-key", "k1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]) as proc:
        try:
            line = proc.stdout.readline()
            m = re.fullmatch(r"t360 sandbox listening on (http://127\.0\.0\.1:(\d+)) \(db: (.+)\)\n", line)
            assert m and Path(m[3]) == db.resolve(), line
            r = httpx.post(m[1] + CUST, content=b'[{"customerId": "z"}]', headers={"x-api-key": "k1"})
            assert r.json() == {"accepted": 1, "duplicates": 0}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    con = sqlite3.connect(db)
    assert con.execute("SELECT customerId, data FROM customers").fetchall() == [("z", '{"customerId":"z"}')]
    con.close()
