"""lib.inference.limits: the ASGI wrapper driven as uvicorn drives it (the ASGI messages, one
by one), around a real Starlette app that reads the body and predicts in a worker thread as
MLflow's scoring app does. The wrapper in the real server: tests/system/test_serving_limits.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib.inference.limits import MAX_JSON_DEPTH, TIMEOUT_ANSWER, Limits, json_too_deep
from lib.tracking.scoring_model import DEADLINE

LIMIT = 1000


def _nested(levels: int) -> bytes:
    return b'{"inputs": ' + b"[" * levels + b'"a"' + b"]" * levels + b"}"


@pytest.mark.parametrize(
    "body, deep",
    [
        (b'{"inputs": ["a", "b"]}', False),
        (json.dumps({"inputs": ["[" * 500 + "{" * 500]}).encode(), False),  # brackets in text
        (_nested(MAX_JSON_DEPTH - 1), False),  # the object is one level more
        (_nested(MAX_JSON_DEPTH), True),
        (_nested(100_000), True),  # past the parser's recursion limit
        (b"[" * 10_000, True),  # cut short, but as deep as it goes
        (b"not json " + b"[" * 100, False),  # MLflow's own 400 says what is wrong
        (b"\xff" + b"[" * 100, False),
    ],
    ids=[
        "plain",
        "brackets-in-strings",
        "at-limit",
        "over",
        "recursion",
        "cut",
        "not-json",
        "not-utf8",
    ],
)
def test_json_too_deep_counts_levels_not_brackets(body, deep):
    assert json_too_deep(body) is deep


class Inner:
    """A Starlette app as MLflow's: POST / reads the body, then predicts in a thread
    (``asyncio.to_thread``, which copies the context) for ``?sleep=S`` seconds."""

    def __init__(self) -> None:
        self.deadlines: list[float | None] = []
        self.running = self.most = 0
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/", self.invocations, methods=["POST"])])

    def _predict(self, sleep_s: float) -> None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.deadlines.append(DEADLINE.get())
        time.sleep(sleep_s)
        with self._lock:
            self.running -= 1

    async def invocations(self, request: Request) -> JSONResponse:
        body = await request.body()
        await asyncio.to_thread(self._predict, float(request.query_params.get("sleep", 0)))
        return JSONResponse({"length": len(body)})


async def _call(app, chunks: list[bytes], headers=(), query: bytes = b"") -> dict:
    """One request through ``app``: its status, body, headers, how many of ``chunks`` the
    app took and when the answer began."""
    taken = 0
    sent: list[dict] = []

    async def receive():
        nonlocal taken
        if taken < len(chunks):
            taken += 1
            more = taken < len(chunks)
            return {"type": "http.request", "body": chunks[taken - 1], "more_body": more}
        await asyncio.sleep(3600)  # the client waits for the answer

    async def send(message):
        sent.append({**message, "at": time.monotonic()})

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": query,
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {
        "status": start["status"],
        "body": body,
        "headers": dict(start["headers"]),
        "taken": taken,
        "at": start["at"],  # when the answer began
    }


def _limits(inner: Inner, timeout_s: float = 5.0, threads: int = 2) -> Limits:
    return Limits(inner.app, max_body_bytes=LIMIT, predict_timeout_s=timeout_s, threads=threads)


def test_a_body_within_the_limit_reaches_the_app_whole_with_the_deadline_set():
    inner = Inner()
    started = time.monotonic()
    done = asyncio.run(_call(_limits(inner), [b"x" * 600, b"x" * 400]))
    assert done["status"] == 200 and json.loads(done["body"]) == {"length": LIMIT}
    (deadline,) = inner.deadlines  # seen in the prediction's thread
    assert started + 5.0 <= deadline <= time.monotonic() + 5.0


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read():
    done = asyncio.run(_call(_limits(Inner()), [b"x" * 10], [(b"content-length", b"100000000")]))
    assert done["status"] == 413 and done["taken"] == 0
    assert done["headers"][b"connection"] == b"close"
    answer = json.loads(done["body"])
    assert answer["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert f"limit of {LIMIT} bytes" in answer["message"], answer


def test_a_streamed_body_is_refused_once_it_passes_the_limit_not_read_to_its_end():
    chunks = [b"x" * 300] * 100  # 30 kB, no Content-Length (chunked)
    done = asyncio.run(_call(_limits(Inner()), chunks))
    assert done["status"] == 413 and done["taken"] == 4  # 1,200 bytes: past 1,000


def test_a_deeply_nested_body_is_a_400_naming_it():
    inner = Inner()
    app = Limits(inner.app, max_body_bytes=10**6, predict_timeout_s=5, threads=1)
    done = asyncio.run(_call(app, [_nested(5000)]))
    assert done["status"] == 400 and not inner.deadlines  # the app never saw it
    assert f"more than {MAX_JSON_DEPTH} levels deep" in json.loads(done["body"])["message"]


def test_a_prediction_past_its_time_is_answered_504_as_mlflow_answers_it():
    inner = Inner()
    started = time.monotonic()
    done = asyncio.run(_call(_limits(inner, timeout_s=0.3), [b"{}"], query=b"sleep=1.5"))
    assert done["status"] == 504 and done["body"] == TIMEOUT_ANSWER
    assert 0.3 <= done["at"] - started < 1.2  # answered at its time, not at the end


async def _lifespan_then(app, calls):
    """Start ``app`` as uvicorn does (the lifespan's startup), then run ``calls``."""
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, queue.get, send))
    await started.wait()
    try:
        return await asyncio.gather(*calls())
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await lifespan


def test_the_predictions_run_at_once_are_the_threads_given():
    inner = Inner()
    app = _limits(inner, threads=2)
    answers = asyncio.run(
        _lifespan_then(app, lambda: [_call(app, [b"{}"], query=b"sleep=0.2") for _ in range(6)])
    )
    assert [a["status"] for a in answers] == [200] * 6
    assert inner.most == 2
