"""uvicorn's HTTP/1.1 protocol (h11) with a cut for a client that stalls mid-request.

uvicorn times out only an idle keep-alive connection (between requests): a client that opens
a connection and sends nothing, or half a request's headers, or part of its body, and waits,
holds the connection and its buffers for as long as it likes. Here such a client is cut
once it has sent nothing for ``stall_s`` seconds while its request is incomplete: it is
answered 408 (when no answer has begun) and the connection closed; the app, if the request
reached it, sees the client disconnect. While the request is complete and the app works
on it, or a response is being sent, the timer is off; between requests uvicorn's keep-alive
timeout applies.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lib.inference import settings


def _timeout_answer() -> bytes:
    body = json.dumps(
        {
            "error_code": "REQUEST_TIMEOUT",
            "message": "the request stalled: nothing was received for too long; send it whole",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


# Written past h11 (it has no response to send before a request's headers are whole).
REQUEST_TIMEOUT = _timeout_answer()


class StallCutProtocol(H11Protocol):
    """:class:`H11Protocol` that cuts a client stalled mid-request for the settings'
    ``stall_s`` (:func:`lib.inference.settings.current`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stall_s = settings.current().stall_s
        self._stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """The connection is open: its first request is awaited from now."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Bytes came: the timer starts again while the request is incomplete."""
        super().data_received(data)
        if self._awaiting_client():
            self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        """The answer is sent: uvicorn's keep-alive timeout takes over."""
        self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no timer is left behind."""
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_client(self) -> bool:
        # IDLE: a request's headers are awaited (a new connection, or some bytes of them);
        # SEND_BODY: the rest of its body. DONE: the app has the request.
        return not self.transport.is_closing() and self.conn.their_state in (
            h11.IDLE,
            h11.SEND_BODY,
        )

    def _arm(self) -> None:
        self._disarm()
        self._stall_timer = self.loop.call_later(self.stall_s, self._cut)

    def _disarm(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _cut(self) -> None:
        self._stall_timer = None
        if not self._awaiting_client():
            return
        if self.flow.read_paused:  # the app, not the client, is behind: wait for it
            self._arm()
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()
