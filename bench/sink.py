"""A fast local HTTP/1.1 sink for the upload benchmark (stdlib only).

    python bench/sink.py [--host 127.0.0.1] [--port 0] [--latency-ms 20]

Prints the bound port alone on one line when it is listening. Every POST (any path)
with a Content-Length body is answered `200 {"accepted":N}` without parsing the JSON:
N counts the top-level objects of a flat JSON array cheaply (`},{` separators + 1),
which is exact for arrays of flat objects whose values never contain `},{`.
`GET /stats` answers the totals since start: `requests` (POSTs), `bytes` (POST body
bytes), `records`, `connections`, `max_pending` (most POSTs whose answer was waiting at
once: with --latency-ms, the client's real concurrency; `GET /stats?reset` answers, then
restarts it from the current count). Keep-alive and pipelining are
supported; chunked bodies are refused (411, connection closed). `--latency-ms` delays
every POST's answer by that much with a timer, so other connections are never blocked.
Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

HEAD_LIMIT = 64 * 1024


class Stats:
    def __init__(self) -> None:
        self.requests = self.bytes = self.records = self.connections = 0
        self.pending = self.max_pending = 0

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "bytes": self.bytes,
                "records": self.records,
                "connections": self.connections,
                "max_pending": self.max_pending,
            }
        ).encode()


def _response(status: str, body: bytes, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


def _head_fields(head: bytes) -> tuple[bytes, bytes, int, bool, bool]:
    """(method, path, content length, keep alive, chunked) of a request head."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    method, path = (parts[0], parts[1]) if len(parts) == 3 else (b"", b"")
    low = rest.lower()
    length = 0
    i = low.find(b"content-length:")
    if i >= 0:
        j = low.find(b"\r\n", i)
        length = int(low[i + 15 : j if j >= 0 else len(low)].strip() or b"0")
    keep = b"connection: close" not in low and not line.endswith(b"HTTP/1.0")
    return method, path, length, keep, b"transfer-encoding:" in low


class SinkProtocol(asyncio.Protocol):
    """One connection: frame requests from a byte buffer, answer each in order."""

    def __init__(self, stats: Stats, delay: float) -> None:
        self.stats, self.delay = stats, delay
        self.buf = bytearray()
        self.length = -1  # body bytes awaited for the current request; -1: reading a head
        self.keep = True
        self.is_post = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one head or one complete body from the buffer; False when more is needed."""
        buf = self.buf
        if self.length < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._answer(_response("431 Request Header Fields Too Large", b"{}", True))
                return False
            try:
                method, path, length, keep, chunked = _head_fields(bytes(buf[:end]))
            except ValueError:
                self._answer(_response("400 Bad Request", b'{"error":"content-length"}', True))
                return False
            del buf[: end + 4]
            if chunked:
                self._answer(_response("411 Length Required", b'{"error":"chunked"}', True))
                return False
            self.length, self.keep, self.is_post = length, keep, method == b"POST"
            if not self.is_post:
                self._answer(self._get(path), False)
            return True
        if len(buf) < self.length:
            return False
        if self.is_post:
            self._post(self.length)
        del buf[: self.length]
        self.length = -1
        return True

    def _get(self, path: bytes) -> bytes:
        route, _, query = path.partition(b"?")
        if route == b"/stats":
            answer = _response("200 OK", self.stats.as_json(), not self.keep)
            if query == b"reset":
                self.stats.max_pending = self.stats.pending
            return answer
        return _response("404 Not Found", b'{"error":"no such path"}', not self.keep)

    def _post(self, n: int) -> None:
        s = self.stats
        records = self.buf.count(b"},{", 0, n) + 1 if n > 2 else 0
        s.requests += 1
        s.bytes += n
        s.records += records
        body = b'{"accepted":' + str(records).encode() + b"}"
        self._answer(_response("200 OK", body, not self.keep), self.delay > 0)

    def _answer(self, resp: bytes, later: bool = False) -> None:
        if later:
            self.stats.pending += 1
            self.stats.max_pending = max(self.stats.max_pending, self.stats.pending)
            asyncio.get_running_loop().call_later(self.delay, self._write_later, resp)
            return
        self._write(resp)

    def _write_later(self, resp: bytes) -> None:
        self.stats.pending -= 1
        self._write(resp)

    def _write(self, resp: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(resp)
        if resp.find(b"Connection: close", 0, 200) >= 0:
            t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, latency_ms: float) -> None:
    """Listen until SIGINT/SIGTERM; print the bound port once ready."""
    loop = asyncio.get_running_loop()
    stats, stop = Stats(), asyncio.Event()
    server = await loop.create_server(lambda: SinkProtocol(stats, latency_ms / 1000), host, port, backlog=128)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay of every POST answer")
    args = ap.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.latency_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
