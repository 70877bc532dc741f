"""The scoring server's limits (``python -m runner serve``, tests/support/scoring_server.py) on
127.0.0.1, serving a small logged model: after each bad request (a body over the limit,
declared or streamed; a client that stalls; malformed JSON; JSON nested too deeply; values
of the wrong type) the server answers a good request at its normal speed, and its memory is
back within 10% of what it was; a 1,000-review request fits the body limit; a prediction
past its time is answered 504 and stopped. The same server in the serving image:
tests/system/test_serving_container.py.
"""

from __future__ import annotations

import re
import statistics
import time

import numpy as np
import pytest

from lib.inference import settings
from tests.support import bad_clients, logged_models
from tests.support.scoring_server import ScoringServer, post_json

pytestmark = pytest.mark.slow

STALL_S = 2.0
GOOD = ["A wonderful film.", "Dull.", "<b>Superb</b>, I loved it! A masterpiece."]


def in_process(model, reviews: list[str]) -> np.ndarray:
    return np.asarray(model.predict(np.array(reviews, dtype=object), verbose=0)).reshape(-1)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, trained_model):
    """(the model's URI, the environment that finds it, a folder for the servers' logs)."""
    root = tmp_path_factory.mktemp("serving-limits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROJECT_ROOT", str(root))
        store = f"sqlite:///{root / 'mlflow.db'}"
        model_uri = logged_models.log_model(store, trained_model)
    return model_uri, {"MLFLOW_TRACKING_URI": store, "PROJECT_ROOT": str(root)}, root


@pytest.fixture(scope="module")
def served(logged, trained_model):
    """(the server, stalls cut after STALL_S, the model), warmed up."""
    model_uri, env, root = logged
    options = ["--stall-timeout", str(STALL_S)]
    with ScoringServer(model_uri, env=env, log=root / "server.log", options=options) as server:
        for _ in range(20):
            assert post_json(f"{server.url}/invocations", {"inputs": GOOD})[0] == 200
        yield server, trained_model


def _good_s(server, model) -> float:
    """Seconds a good request takes; its answer must be the in-process model's."""
    started = time.monotonic()
    status, body = post_json(f"{server.url}/invocations", {"inputs": GOOD})
    took = time.monotonic() - started
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], in_process(model, GOOD), rtol=0, atol=1e-6)
    return took


def _over_limit_declared(url: str) -> None:
    answer = bad_clients.declared_too_large(url)
    assert answer.status == 413, answer.raw[:300]
    assert b"connection: close" in answer.raw.lower()
    assert f"limit of {settings.MAX_BODY_BYTES} bytes".encode() in answer.body


def _over_limit_streamed(url: str) -> None:
    answer, sent = bad_clients.streamed_too_large(url, settings.MAX_BODY_BYTES)
    assert answer.status == 413, answer.raw[:300]
    assert sent < 3 * settings.MAX_BODY_BYTES  # answered before the client was done


def _stalled(part: str):
    def check(url: str) -> None:
        sock, since = bad_clients.stalled(url, part)
        # While it stalls, the server answers others (the good request after this check,
        # and this one).
        assert post_json(f"{url}/invocations", {"inputs": GOOD})[0] == 200
        answer = bad_clients.answer_of_stalled(sock, since)
        assert answer.status == 408, answer.raw[:300]
        assert STALL_S * 0.8 <= answer.seconds <= STALL_S + 5

    return check


def _bad_body(body, status: int, *names: str):
    def check(url: str) -> None:
        got, answer = post_json(f"{url}/invocations", body)
        assert got == status, answer
        for name in names:
            assert name in answer["message"], answer

    return check


BAD = {
    "over-the-limit-declared": _over_limit_declared,
    "over-the-limit-streamed": _over_limit_streamed,
    "stalled-silent": _stalled("nothing"),
    "stalled-mid-headers": _stalled("headers"),
    "stalled-mid-body": _stalled("body"),
    "malformed-json": _bad_body(b"not json", 400, "valid JSON"),
    "deeply-nested-json": _bad_body(bad_clients.nested(100_000), 400, "levels deep"),
    "wrong-types": _bad_body({"inputs": [1, 2]}, 400, "list[str]", "got int"),
    "not-a-list": _bad_body({"inputs": "x"}, 400, "Expected list", "got str"),
}


@pytest.mark.parametrize("name", BAD)
def test_after_a_bad_request_a_good_one_is_answered_at_normal_speed(served, name):
    server, model = served
    normal = statistics.median(_good_s(server, model) for _ in range(5))
    memory = server.rss_bytes()
    BAD[name](server.url)
    took = _good_s(server, model)
    # "Normal": within a generous multiple (this machine's load varies), far from the
    # seconds a server that buffered or parsed the bad request for long would take.
    assert took <= 10 * normal + 0.5, (name, took, normal)
    after = server.rss_bytes()
    assert abs(after - memory) <= 0.10 * memory, (name, memory / 2**20, after / 2**20)


def test_a_1000_review_request_of_long_reviews_fits_the_limit(served):
    server, model = served
    reviews = [f"{GOOD[i % 3]} " + "the plot and the acting " * 270 for i in range(1000)]
    # 6,500 characters each: more than the 1,000 longest IMDB reviews (5,300 on average).
    assert 6_000_000 < len(str(reviews)) < settings.MAX_BODY_BYTES
    status, body = post_json(f"{server.url}/invocations", {"inputs": reviews}, timeout_s=120)
    assert status == 200, str(body)[:300]
    np.testing.assert_allclose(body["predictions"], in_process(model, reviews), rtol=0, atol=1e-6)


def test_a_prediction_past_its_time_is_answered_504_and_stopped(logged, trained_model):
    model_uri, env, root = logged
    options = ["--predict-timeout", "1"]
    with ScoringServer(model_uri, env=env, log=root / "timeout.log", options=options) as server:
        _stopped_in_time(server, trained_model)


def _stopped_in_time(server, model) -> None:
    log_lines = len(server.log.read_text(encoding="utf-8").splitlines())
    reviews = ["a fine film"] * 400_000  # many seconds of predictions, 5 MB
    status, body = post_json(f"{server.url}/invocations", {"inputs": reviews}, timeout_s=120)
    assert (status, body) == (504, "Request processing time exceeded limit")
    # The prediction stopped at a chunk's end, well before its last review.
    deadline = time.monotonic() + 30
    stopped = None
    while stopped is None and time.monotonic() < deadline:
        new = server.log.read_text(encoding="utf-8").splitlines()[log_lines:]
        found = [re.search(r"prediction stopped after (\d+) of (\d+) reviews", x) for x in new]
        stopped = next((m for m in found if m), None)
        time.sleep(0.2)
    assert stopped, server.log_tail()
    done, total = map(int, stopped.groups())
    assert total == len(reviews) and done < total / 2
    # Then nothing runs on: the server's CPU time stands still.
    time.sleep(0.5)
    before = server.cpu_seconds()
    time.sleep(2)
    assert server.cpu_seconds() - before < 0.5
    _good_s(server, model)
