"""Concurrent clients of a scoring server, for the load test (tests/system/test_serving_load.py)
and bench/serve.py.

Each client is a thread with one keep-alive connection of its own, sending
``POST /invocations`` bodies from a fixed list in turn (each client from its own place in
it) until ``duration_s`` has passed; ``max_requests`` bounds each client's loop too, so that
it stops by itself whatever the server does. Every answer is checked against the
probabilities expected for its body (the in-process model's), within ``atol``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class Request:
    """A request body and the probabilities its answer must hold."""

    body: bytes
    expected: np.ndarray

    @classmethod
    def of(cls, reviews: Sequence[str], expected: Sequence[float]) -> Request:
        body = json.dumps({"inputs": list(reviews)}).encode()
        return cls(body, np.asarray(expected, dtype=np.float64).reshape(-1))


@dataclass
class LoadResult:
    """Every request's wall time (s) and size, the run's wall time, what went wrong."""

    latencies_s: list[float] = field(default_factory=list)
    reviews: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def percentiles_ms(self, *qs: float) -> list[float]:
        return [float(v) for v in np.percentile(np.array(self.latencies_s) * 1000, qs)]

    @property
    def reviews_per_s(self) -> float:
        return self.reviews / self.wall_s if self.wall_s else 0.0


def _client(
    url: str,
    requests: Sequence[Request],
    start: int,
    end_at: float,
    max_requests: int,
    atol: float,
    result: LoadResult,
    lock: threading.Lock,
) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    latencies, reviews, errors = [], 0, []
    for n in range(max_requests):
        if time.monotonic() >= end_at:
            break
        request = requests[(start + n) % len(requests)]
        began = time.perf_counter()
        try:
            connection.request("POST", "/invocations", request.body, headers)
            answer = connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            connection.close()  # the next request opens a new connection
            continue
        latencies.append(time.perf_counter() - began)
        if answer.status != 200:
            errors.append(f"status {answer.status}: {data[:300]!r}")
            continue
        got = np.asarray(json.loads(data)["predictions"], dtype=np.float64).reshape(-1)
        if got.shape != request.expected.shape or not np.allclose(
            got, request.expected, rtol=0, atol=atol
        ):
            worst = (
                np.max(np.abs(got - request.expected))
                if got.shape == request.expected.shape
                else None
            )
            errors.append(f"answer differs from in-process scoring (max |diff| {worst})")
            continue
        reviews += len(got)
    connection.close()
    with lock:
        result.latencies_s += latencies
        result.reviews += reviews
        result.errors += errors


def run_clients(
    url: str,
    requests: Sequence[Request],
    *,
    clients: int = 20,
    duration_s: float = 60.0,
    max_requests: int = 100_000,
    atol: float = 1e-6,
) -> LoadResult:
    """``clients`` concurrent clients sending ``requests`` for ``duration_s`` seconds."""
    result, lock = LoadResult(), threading.Lock()
    end_at = time.monotonic() + duration_s
    step = max(len(requests) // clients, 1)
    threads = [
        threading.Thread(
            target=_client,
            args=(url, requests, i * step, end_at, max_requests, atol, result, lock),
            daemon=True,
        )
        for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 120)  # a request's own timeout is 60 s
    result.wall_s = time.perf_counter() - started
    if any(thread.is_alive() for thread in threads):
        result.errors.append("a client did not stop")
    return result
