"""HTTP/1.1 framing for the sandbox: read a request head, size its body, write an answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

HEADER_LIMIT = 64 * 1024  # request line + headers
BODY_LIMIT = 64 * 1024 * 1024  # above this: 413 and the connection is closed unread
LINGER_S = 2.0  # lingering close after an answer that ends the connection
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def reason(status: int) -> str:
    """The reason phrase of a status line (any status, for Faults.answer_status)."""
    if status in REASONS:
        return REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


class BadRequest(Exception):
    """A request that cannot be framed: answer and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(
    status: int, message: str, headers: list[tuple[str, str]] | None = None, close: bool = False
) -> Response:
    """An answer whose body is {"error": message}."""
    return Response(status, orjson.dumps({"error": message}), headers or [], close)


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (the block ends with a blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if parts[2] == "HTTP/1.1" else connection == "keep-alive"
    return Request(parts[0], parts[1].split("?", 1)[0], headers, keep_alive)


def body_length(request: Request) -> int:
    """The Content-Length of the request body (0 when there is none)."""
    if "transfer-encoding" in request.headers:
        raise BadRequest(411, "chunked bodies are not supported: send Content-Length")
    raw = request.headers.get("content-length")
    if raw is None:
        if request.method in ("POST", "PUT", "PATCH"):
            raise BadRequest(411, "Content-Length is required")
        return 0
    if not raw.isdigit():
        raise BadRequest(400, "invalid Content-Length")
    if int(raw) > BODY_LIMIT:
        raise BadRequest(413, f"body is {raw} bytes, at most {BODY_LIMIT}")
    return int(raw)


async def send(writer: asyncio.StreamWriter, response: Response, reader: asyncio.StreamReader | None = None) -> bool:
    """Write one response; return whether the connection stays open.

    With `reader`, a closing answer is followed by a lingering close: unread request bytes
    are drained (for at most LINGER_S) so that the client's TCP stack does not reset the
    connection before the client has read the answer.
    """
    lines = [
        f"HTTP/1.1 {response.status} {reason(response.status)}",
        "Content-Type: application/json",
        f"Content-Length: {len(response.body)}",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if response.close:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()
    if response.close and reader is not None and writer.can_write_eof():
        writer.write_eof()
        await _drain_unread(reader)
    return not response.close


async def _drain_unread(reader: asyncio.StreamReader) -> None:
    """Read and discard what the client still sends, for at most LINGER_S."""
    try:
        async with asyncio.timeout(LINGER_S):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass
