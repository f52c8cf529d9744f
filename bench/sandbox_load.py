"""Load the sandbox: httpx.AsyncClient with N in flight, or raw pipelined sockets."""

import asyncio
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import orjson

N_BODIES = int(os.environ.get("N", 2000))
INFLIGHT = int(os.environ.get("INFLIGHT", 8))


def rec(i):
    return {
        "customerid": f"fx_{i % 9000:06d}",
        "eventname": "Deposit",
        "eventid": f"T{i:09d}",
        "createtime": "2025-03-01 10:22",
        "Value": "1000.00",
        "Currency": "USD",
        "deposit_type": "cc",
    }


bodies = [orjson.dumps([rec(b * 500 + i) for i in range(500)]) for b in range(N_BODIES)]
print("body bytes", len(bodies[0]), file=sys.stderr)


async def httpx_load(url):
    q = iter(bodies)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"x-api-key": "sandbox-key", "content-type": "application/json"},
        limits=httpx.Limits(max_connections=INFLIGHT),
    ) as c:

        async def worker():
            for b in q:
                r = await c.post("/tracking/events/activities", content=b)
                assert r.status_code == 200, r.text

        t = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(INFLIGHT)])
        return time.perf_counter() - t


def raw_load(port, conns=4):
    import threading

    per = [bodies[i::conns] for i in range(conns)]

    def run(bs):
        s = socket.create_connection(("127.0.0.1", port))
        reqs = b"".join(
            b"POST /tracking/events/activities HTTP/1.1\r\nHost: x\r\nx-api-key: sandbox-key\r\nContent-Length: %d\r\n\r\n"
            % len(b)
            + b
            for b in bs
        )
        threading.Thread(target=s.sendall, args=(reqs,)).start()
        got = b""
        n = 0
        while n < len(bs):
            chunk = s.recv(1 << 16)
            assert chunk
            got += chunk
            n = got.count(b"HTTP/1.1 200")
        s.close()

    t = time.perf_counter()
    ts = [threading.Thread(target=run, args=(b,)) for b in per]
    [x.start() for x in ts]
    [x.join() for x in ts]
    return time.perf_counter() - t


def main(mode, db):
    if os.path.exists(db):
        os.remove(db)
    p = subprocess.Popen(
        [sys.executable, "-m", "t360cli.sandbox", "--port", "0", "--db", db], stdout=subprocess.PIPE, text=True
    )
    port = int(re.search(r":(\d+) ", p.stdout.readline()).group(1))
    try:
        dt = asyncio.run(httpx_load(f"http://127.0.0.1:{port}")) if mode == "httpx" else raw_load(port)
        st = httpx.get(f"http://127.0.0.1:{port}/sandbox/stats").json()
        print(
            f"{mode} inflight={INFLIGHT} db={db}: {N_BODIES / dt:.0f} req/s, {N_BODIES * 500 / dt:.0f} rec/s  stats={st}"
        )
    finally:
        p.terminate()
        p.wait()


main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "/tmp/sbx/load.db")
