"""lib.inference.stall: a real uvicorn server on 127.0.0.1 (in a thread of this process) with
the stall-cutting protocol, and clients on raw sockets that stop mid-request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from lib.inference.settings import Settings
from lib.inference.stall import StallCutProtocol
from tests.support.scoring_server import HOST, free_port

pytestmark = pytest.mark.slow  # starts a server

STALL_S = 1.0
HEAD = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


class App:
    """Reads the whole body, answers its length (at /slow, after twice a stall's time);
    records a client's disconnect."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope, receive, send) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(STALL_S * 2)
        body = b'{"length": %d}' % size
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server():
    app = App()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMDB_SERVING_SETTINGS", "")  # Settings.export sets it; undone after
        Settings(model_dir="", stall_s=STALL_S).export()
        port = free_port()
        config = uvicorn.Config(
            app, host=HOST, port=port, http=StallCutProtocol, lifespan="off", log_level="warning"
        )
        running = uvicorn.Server(config)
        thread = threading.Thread(target=running.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not running.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.started
        try:
            yield port, app
        finally:
            running.should_exit = True
            thread.join(10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _read_answer(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection (the app gives its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _request(port: int, body: bytes = b"{}", path: bytes = b"/") -> tuple[bytes, float]:
    """A whole request on a new connection: (the answer's status line, seconds it took)."""
    started = time.monotonic()
    with _connect(port) as sock:
        sock.sendall(
            HEAD.replace(b"/", path, 1)
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )
        answer = _read_until_closed(sock)
    return answer.split(b"\r\n", 1)[0], time.monotonic() - started


@pytest.mark.parametrize(
    "sent",
    [b"", HEAD[:20], HEAD + b"Content-Length: 100\r\n\r\n" + b"[" * 10],
    ids=["nothing", "half-the-headers", "half-the-body"],
)
def test_a_client_that_stalls_mid_request_is_answered_408_and_cut(server, sent):
    port, app = server
    disconnects = app.disconnects
    with _connect(port) as stalled:
        if sent:
            stalled.sendall(sent)
        started = time.monotonic()
        # Meanwhile another client is answered at once.
        status, took = _request(port)
        assert status == b"HTTP/1.1 200 OK" and took < STALL_S / 2
        answer = _read_until_closed(stalled)  # the server closes it
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b'"error_code": "REQUEST_TIMEOUT"' in answer
    assert STALL_S * 0.8 <= waited <= STALL_S + 3
    if b"\r\n\r\n" in sent:  # the app had the request: it saw the client go
        deadline = time.monotonic() + 2
        while app.disconnects == disconnects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.disconnects == disconnects + 1


def test_a_slow_client_that_keeps_sending_is_not_cut(server):
    port, _ = server
    body = b"x" * 8
    with _connect(port) as sock:
        sock.sendall(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        for byte in range(len(body)):  # 8 x STALL_S/2: longer than a stall, never silent
            time.sleep(STALL_S / 2)
            sock.sendall(body[byte : byte + 1])
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b'{"length": 8}' in answer


def test_a_request_the_app_works_on_longer_than_a_stall_is_not_cut(server):
    port, _ = server
    status, took = _request(port, path=b"/slow")
    assert status == b"HTTP/1.1 200 OK" and took >= STALL_S * 2


def test_between_requests_uvicorns_keep_alive_applies_not_the_stall_cut(server):
    port, _ = server
    with _connect(port) as sock:
        for _ in range(2):
            sock.sendall(HEAD + b"Content-Length: 2\r\n\r\n{}")
            assert _read_answer(sock).startswith(b"HTTP/1.1 200 OK")
            time.sleep(STALL_S * 2)  # idle, within uvicorn's keep-alive of 5 s
