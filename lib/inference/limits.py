"""The scoring server's limits on a request, as an ASGI wrapper around MLflow's scoring app
(whose routes, validation and answers are kept as they are).

- A body over ``max_body_bytes``: 413, before it is read whole: at once when its
  ``Content-Length`` says so (a client that sent ``Expect: 100-continue`` sends none of it),
  else as soon as the bytes received pass the limit. The answer closes the connection, so
  the rest of the body is never read.
- A JSON body nested deeper than :data:`MAX_JSON_DEPTH`: 400 naming it (Python's parser
  raises RecursionError past about 1,000 levels, which MLflow answers with a 500).
- One prediction: once ``predict_timeout_s`` has passed since its body was read, MLflow's
  own 504 answer, and the model's predict stops at its next chunk
  (:data:`lib.tracking.scoring_model.DEADLINE`) instead of running on.
- The predictions a worker runs at once: ``threads``, the pool that MLflow's
  ``asyncio.to_thread`` runs them in (set when the app starts: asyncio's default would be
  the host's CPU count + 4, whatever the pod's CPU request).

Errors are answered as MLflow answers its own: ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lib.tracking.scoring_model import DEADLINE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Far deeper than any request MLflow takes ({"inputs": [...]} is 2, dataframe_split 3), far
# shallower than the parser's recursion limit.
MAX_JSON_DEPTH = 64
# MLflow's scoring server's words for a request past its time (its timeout middleware).
TIMEOUT_ANSWER = b"Request processing time exceeded limit"
_TOO_LARGE = object()  # what _read returns for a body over the limit


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body``, if it is JSON, nests arrays and objects more than ``limit`` deep
    (a body that is not JSON is not: MLflow answers it itself)."""
    # Each level opens a bracket: with no more than ``limit`` of them (almost every request,
    # counted at C speed) the body cannot be deeper, and is not parsed twice.
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    try:
        value = json.loads(body)
    except RecursionError:
        return True
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return False
    stack = [(value, 1)]  # walked without recursion: the depth is what is in doubt
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        stack.extend(
            (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
        )
    return False


def error_body(code: str, message: str) -> bytes:
    """An error answer in MLflow's form."""
    return json.dumps({"error_code": code, "message": message}).encode()


async def answer(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    """A whole JSON response; ``close``: the connection closes after it."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses such a request before any app sees it
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


class Limits:
    """``app`` (MLflow's scoring app) behind the limits of this module's docstring."""

    def __init__(
        self, app: App, *, max_body_bytes: int, predict_timeout_s: float, threads: int
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.predict_timeout_s = predict_timeout_s
        self.threads = threads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # once per worker, in the loop that serves it
            pool = ThreadPoolExecutor(self.threads, thread_name_prefix="predict")
            asyncio.get_running_loop().set_default_executor(pool)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        body = _TOO_LARGE if (declared or 0) > self.max_body_bytes else await self._read(receive)
        if body is None:  # the client went away
            return
        if body is _TOO_LARGE:
            limit = self.max_body_bytes
            message = (
                f"the request body is larger than this server's limit of {limit} bytes "
                f"({limit / 2**20:g} MiB): send the reviews in smaller requests"
            )
            await answer(send, 413, error_body("REQUEST_LIMIT_EXCEEDED", message), close=True)
            return
        loop = asyncio.get_running_loop()
        if _is_json(scope) and await loop.run_in_executor(None, json_too_deep, body):
            message = (
                f"the JSON body nests arrays or objects more than {MAX_JSON_DEPTH} levels "
                'deep: send {"inputs": ["a review", ...]}'
            )
            await answer(send, 400, error_body("BAD_REQUEST", message))
            return
        await self._predict(scope, body, receive, send)

    async def _read(self, receive: Receive) -> bytes | object | None:
        """The whole body; ``_TOO_LARGE`` as soon as it passes the limit; None when the
        client disconnects first (or is cut for stalling: lib.inference.stall)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return _TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _predict(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """The request, its body read already, through MLflow's app within its time."""
        deadline = time.monotonic() + self.predict_timeout_s
        replayed = False
        started = timed_out = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # what comes next: the disconnect

        async def on_time() -> None:
            nonlocal timed_out
            if not started and not timed_out:
                timed_out = True
                await answer(send, 504, TIMEOUT_ANSWER)

        async def guarded(message: Message) -> None:
            nonlocal started
            # An answer begun past the deadline is the prediction that was stopped (a 400
            # from its PredictionTimeout): the client is told of the time instead.
            if message["type"] == "http.response.start" and time.monotonic() > deadline:
                await on_time()
            if timed_out:
                return
            started = True
            await send(message)

        token = DEADLINE.set(deadline)  # before the task below copies the context
        try:
            await asyncio.wait_for(self.app(scope, replay, guarded), self.predict_timeout_s)
        except TimeoutError:
            await on_time()
        finally:
            DEADLINE.reset(token)
