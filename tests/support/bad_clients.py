"""Clients that misbehave toward a running scoring server (``python -m runner serve``, on this
machine or in the serving image): a body over the limit, declared or streamed; a request
that stalls; a JSON body nested too deeply. Each sends on a raw socket, as a client that
is not a well-behaved library would, and returns what the server answered.

Used by tests/system/test_serving_limits.py and tests/system/test_serving_container.py.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

HEAD = "POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
# A body far over any limit (100 MB), declared in the headers.
DECLARED_BYTES = 100 * 10**6


@dataclass
class Answer:
    """What came back: the status (0 for none), the whole answer, seconds it took."""

    status: int
    raw: bytes
    seconds: float

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


def _connect(url: str) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    return sock, parts.netloc


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # what was read before the reset is the answer
        pass
    return data


def _answer(raw: bytes, started: float) -> Answer:
    status_line = raw.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return Answer(status, raw, time.monotonic() - started)


def declared_too_large(url: str) -> Answer:
    """Headers that declare a 100 MB body, then nothing: the answer, unread body and all."""
    sock, host = _connect(url)
    started = time.monotonic()
    with sock:
        head = HEAD.format(host=host) + f"Content-Length: {DECLARED_BYTES}\r\n\r\n"
        sock.sendall(head.encode())
        return _answer(_read_until_closed(sock), started)


def streamed_too_large(url: str, limit_bytes: int) -> tuple[Answer, int]:
    """A chunked body sent 64 KiB at a time until the server answers or 3 x ``limit_bytes``
    are sent: (the answer, bytes sent)."""
    sock, host = _connect(url)
    started = time.monotonic()
    sent = 0
    chunk = b"[" * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    with sock:
        sock.sendall((HEAD.format(host=host) + "Transfer-Encoding: chunked\r\n\r\n").encode())
        try:
            while sent < 3 * limit_bytes:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered
                sock.sendall(framed)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed: its answer is read below
        return _answer(_read_until_closed(sock), started), sent


def stalled(url: str, part: str) -> tuple[socket.socket, float]:
    """A connection that has sent ``part`` of a request (``"nothing"``, ``"headers"``: half
    of them, ``"body"``: the headers and half the body) and then nothing: (the socket, when
    it went silent). Read its answer with :func:`answer_of_stalled`."""
    sock, host = _connect(url)
    head = (HEAD.format(host=host) + "Content-Length: 40\r\n\r\n").encode()
    sent = {"nothing": b"", "headers": head[:30], "body": head + b'{"inputs": ['}[part]
    if sent:
        sock.sendall(sent)
    return sock, time.monotonic()


def answer_of_stalled(sock: socket.socket, since: float) -> Answer:
    """The answer a stalled connection gets once the server cuts it (the socket closed)."""
    with sock:
        return _answer(_read_until_closed(sock), since)


def nested(levels: int) -> bytes:
    """``{"inputs": [[[... "a" ...]]]}``, ``levels`` arrays deep."""
    return b'{"inputs": ' + b"[" * levels + b'"a"' + b"]" * levels + b"}"
