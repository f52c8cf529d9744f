"""SPEC 11, the delivery side of hostile input: the API key travels only to base_url (never to a
proxy over plain http), a URL's password never shows, odd option values end in one sentence,
and a damaged progress log given to status or replay is named. Real sockets on 127.0.0.1: the
sandbox, and a "proxy" that records whatever reaches it."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from conftest import API_KEY, DEPOSITS_MAPPING, cli, deposit_rows, deposits_csv, mapping, write
from helpers import serving
from typer.testing import CliRunner

from t360cli.cli import app
from t360cli.client import RetryPolicy, Sender, proxy_for
from t360cli.errors import UsageError
from t360cli.sandbox import Faults
from t360cli.urls import is_loopback, mask_url

pytestmark = pytest.mark.usefixtures("clean_env")
KEY_ENV = {"T360_API_KEY": API_KEY}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class RecordingProxy(socketserver.ThreadingTCPServer):
    """Keeps the bytes of every connection that reaches it and answers 502: a proxy that must not
    see the key."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Record)
        self.received: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Record(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(2)
        data = b""
        for _ in range(64):  # bounded: the request head, and a little of any body
            try:
                part = sock.recv(65536)
            except OSError:
                break
            data += part
            if not part or b"\r\n\r\n" in data:
                break
        server = self.server
        assert isinstance(server, RecordingProxy)
        with server.lock:
            server.received.append(data)
        sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    with serving(server):
        yield server


def proxy_env(url: str) -> dict[str, str]:
    return {**dict.fromkeys(PROXY_VARS, url), "NO_PROXY": "", "no_proxy": ""}


def upload(tmp: Path, base_url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    deposits_csv(tmp / "d.csv", deposit_rows(30))
    mapping(tmp, DEPOSITS_MAPPING)
    write(tmp / "config.yaml", "retry: {max_attempts: 2, backoff_initial_s: 0.001, backoff_max_s: 0.01}\n")
    args = ["upload", "d.csv", "-m", "mapping.yaml", "-c", "config.yaml", "--batch-size", "10"]
    return cli(*args, "--base-url", base_url, "--report", "r.json", *extra, cwd=tmp, env={**KEY_ENV, **(env or {})})


# --- proxies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_base_url_ignores_every_proxy_variable(tmp_path, sandbox, proxy, host: str) -> None:
    port = urlsplit(sandbox.url).port
    res = upload(tmp_path, f"http://{host}:{port}", env=proxy_env(proxy.url))
    assert res.returncode == 0, res.stderr
    assert sandbox.stats()["activities"] == 30  # the sandbox got every batch
    assert proxy.received == []  # and the proxy nothing at all, the key least of all


def test_an_https_base_url_reaches_its_host_through_connect_only(proxy, monkeypatch) -> None:
    """The proxy learns the host and port it tunnels to; the request, key included, would travel
    inside TLS. (This proxy refuses the tunnel, so the batch fails: a value, not a crash.)"""
    for name in PROXY_VARS:
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.setenv("NO_PROXY", "")

    async def send() -> Any:
        retry = RetryPolicy(max_attempts=1)
        async with Sender(base_url="https://track360.example", endpoint="/e", api_key=API_KEY, retry=retry) as s:
            return await s.send(1, lambda lo, hi: b"[{}]")

    result = asyncio.run(send())
    assert result.failed == [(0, 1)]
    assert len(proxy.received) == 1
    assert proxy.received[0].startswith(b"CONNECT track360.example:443 HTTP/1.1\r\n")
    assert API_KEY.encode() not in proxy.received[0] and b"x-api-key" not in proxy.received[0].lower()


@pytest.mark.parametrize(
    "url, env, expected",
    [
        ("http://127.0.0.1:8080/e", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://127.0.0.2/e", {"ALL_PROXY": "http://p:3128"}, None),
        ("https://[::1]:8443/e", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://localhost/e", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("http://track.example/e", {"HTTP_PROXY": "http://p:3128", "ALL_PROXY": "http://p:3128"}, None),
        ("https://track.example/e", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://track.example/e", {"ALL_PROXY": "p:3128"}, "http://p:3128"),
        ("https://track.example/e", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "track.example"}, None),
        ("https://track.example/e", {"HTTP_PROXY": "http://p:3128"}, None),
    ],
)
def test_proxy_for(monkeypatch, url: str, env: dict[str, str], expected: str | None) -> None:
    for name in (*PROXY_VARS, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(url) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "ftp://u:pw-4711@p:21",
            "the proxy ftp://u:***@p:21 in $HTTPS_PROXY is not an http, https or socks5 URL. "
            "Fix $HTTPS_PROXY, or unset it to connect directly.",
        ),
        (
            "socks5://p:1080",
            "the proxy socks5://p:1080 in $HTTPS_PROXY is a SOCKS proxy, which needs the socksio package. "
            "Install it (pip install 'httpx[socks]'), or use an http proxy.",
        ),
    ],
)
def test_a_proxy_httpx_cannot_use_is_one_sentence(monkeypatch, value: str, message: str) -> None:
    if value.startswith("socks") and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed here: httpx can use a SOCKS proxy")
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(UsageError) as e:
        Sender(base_url="https://track.example", endpoint="/e", api_key=API_KEY)
    assert str(e.value) == message


def test_is_loopback() -> None:
    assert all(is_loopback(h) for h in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST.", "::1", "[::1]"])
    assert not any(is_loopback(h) for h in ["10.0.0.1", "128.0.0.1", "example.com", "localhost.example.com"])


# --- a password in the base URL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:secret@host", "https://user:***@host"),
        ("https://user:se@cret@host:8443/p?q=1#f", "https://user:***@host:8443/p?q=1#f"),
        ("https://user@host/a", "https://user@host/a"),
        ("https://host/a:b@c", "https://host/a:b@c"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_password_in_base_url_never_shows(tmp_path, sandbox, verbose: bool) -> None:
    port = urlsplit(sandbox.url).port
    url = f"http://t360user:pw-secret-0451@127.0.0.1:{port}"
    res = upload(tmp_path, url, *(["-v"] if verbose else []))
    assert res.returncode == 0, res.stderr
    assert sandbox.stats()["activities"] == 30
    if verbose:
        assert f"setting base_url = 'http://t360user:***@127.0.0.1:{port}' (command line)" in res.stderr
    assert "pw-secret-0451" not in res.stdout + res.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert b"pw-secret-0451" not in path.read_bytes(), path


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_password_in_base_url_never_shows_in_errors(tmp_path, sandbox, verbose: bool) -> None:
    port = urlsplit(sandbox.url).port
    url = f"http://t360user:pw-secret-0451@127.0.0.1:{port}"
    flag = ["-v"] if verbose else []
    refused = upload(tmp_path, url, *flag, env={"T360_API_KEY": "wrong-key-2222"})
    assert refused.returncode == 3
    assert f"Brand Token for http://t360user:***@127.0.0.1:{port}/tracking/events/activities." in refused.stderr
    sandbox.set_faults(Faults(answer_status=404))
    missing = upload(tmp_path, url, *flag, "--restart")
    assert missing.returncode == 4
    assert f"http://127.0.0.1:{port}/tracking/events/activities answered HTTP 404" in missing.stderr
    env = {"T360_BASE_URL": url}
    checked = cli("validate", "d.csv", "-m", "mapping.yaml", "-c", "config.yaml", *flag, cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    for res in (refused, missing, checked):
        assert "pw-secret-0451" not in res.stdout + res.stderr


# --- --max-rejects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        ("nan", "--max-rejects 'nan' is not a number or a percentage."),
        ("nan%", "--max-rejects 'nan%' is not a number or a percentage."),
        ("inf", "--max-rejects 'inf' must be a whole number or a percentage >= 0."),
        ("-inf", "--max-rejects '-inf' must be a whole number or a percentage >= 0."),
        ("1e999", "--max-rejects '1e999' must be a whole number or a percentage >= 0."),
        ("inf%", "--max-rejects 'inf%' must be a whole number or a percentage >= 0."),
        ("-1", "--max-rejects '-1' must be a whole number or a percentage >= 0."),
    ],
)
def test_max_rejects_that_is_not_a_finite_number_is_one_sentence(tmp_path, value: str, message: str) -> None:
    deposits_csv(tmp_path / "d.csv", deposit_rows(3))
    mapping(tmp_path, DEPOSITS_MAPPING)
    result = CliRunner().invoke(app, ["validate", "d.csv", "-m", "mapping.yaml", f"--max-rejects={value}"])
    assert result.exit_code == 2
    assert result.output == f"error: {message} Examples: --max-rejects 100, --max-rejects 2%.\n"


# --- a damaged progress log given to status or replay ------------------------------------------------

DAMAGE = "the progress log is damaged. Use --restart to start over or --log for a new log."


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "line 1: no header line"),
        (b"\x00 garbage\n", "line 1: not valid JSON (unexpected character, expected a JSON value, column 1)"),
        (b"[" * 100_000 + b"\n", "line 1: not valid JSON (depth limit exceeded, column 1026)"),
        (b'{"kind": "\\ud800"}\n', "line 1: not valid JSON (no low surrogate in string, column 11)"),
        (b'{"kind": "customers", "n": 1e999}\n', "line 1: not valid JSON (number is infinity"),
        (b"[]\n", "line 1: the header is not a JSON object"),
        (b'{"kind": "customers", "files": []}\n{"index": "x"}\n', "line 2: not a batch entry"),
    ],
)
@pytest.mark.parametrize("command", ["status", "replay"])
def test_a_damaged_progress_log_is_one_sentence_naming_it(tmp_path, command: str, content: bytes, problem: str):
    (tmp_path / "bad.jsonl").write_bytes(content)
    extra = ["--base-url", "http://127.0.0.1:9"] if command == "replay" else []
    res = cli(command, "bad.jsonl", *extra, cwd=tmp_path, env=KEY_ENV)
    assert res.returncode == 2 and res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"error: bad.jsonl, {problem}") and res.stderr.count("\n") == 1
    assert res.stderr.rstrip().endswith(DAMAGE)


@pytest.mark.parametrize(
    "header",
    [{"kind": "customers", "files": []}, {"kind": "customers", "files": [], "mapping": 7, "batch_size": "x"}],
)
def test_replay_of_a_log_whose_header_lacks_a_key_is_one_sentence(tmp_path, header: dict[str, Any]) -> None:
    (tmp_path / "bad.jsonl").write_bytes(orjson.dumps(header) + b"\n")
    res = cli("replay", "bad.jsonl", "--base-url", "http://127.0.0.1:9", cwd=tmp_path, env=KEY_ENV)
    assert res.returncode == 2 and "unexpected" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: bad.jsonl")
