"""The registered champion served by the project's scoring server (``python -m runner serve``,
MLflow's scoring app with limits: tests/support/scoring_server.py) on 127.0.0.1.

Two small models are trained and logged as the train notebook logs them
(lib.tracking.runs.log_keras_model), registered as versions 1 and 2 of one registered model in a
local store (lib.tracking.registry), and ``champion`` is set on version 1. ``python -m runner
serve --model models:/NAME@champion`` then answers ``POST /invocations`` with raw review
strings, one probability per review, the in-process model's; malformed requests get MLflow's
400 whose message names the problem; and the alias is resolved when the server starts: moving
it changes what a restarted server serves, not the running one. The limits:
tests/system/test_serving_limits.py; under load: tests/system/test_serving_load.py; the
serving image: tests/system/test_serving_container.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.tracking import registry
from tests.support import logged_models
from tests.support.scoring_server import ScoringServer, post_json

pytestmark = pytest.mark.slow

NAME = "serving-test"
REVIEWS = ["A wonderful film.", "Dull.", "<b>Superb</b>, I loved it! A masterpiece."]


def in_process(model, reviews: list[str]) -> np.ndarray:
    """The exported Keras model's P(positive) for ``reviews``, in this process."""
    return np.asarray(model.predict(np.array(reviews, dtype=object), verbose=0)).reshape(-1)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A local store holding versions 1 and 2 of NAME, champion on 1: (env, models)."""
    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROJECT_ROOT", str(root))
        uri = f"sqlite:///{root / 'mlflow.db'}"
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        models = []
        for seed in (4, 11):
            model = logged_models.train_model(seed=seed)
            model_uri = logged_models.log_model(uri, model)
            version = registry.register(model_uri, NAME, {}, tracking_uri=uri)
            models.append((version.version, model))
        registry.set_alias(NAME, registry.CHAMPION, models[0][0], tracking_uri=uri)
        yield {"root": root, "env": {"MLFLOW_TRACKING_URI": uri}, "models": models}


@pytest.fixture(scope="module")
def server(store):
    """The scoring server on ``models:/NAME@champion`` (version 1 when it starts)."""
    log = store["root"] / "server-1.log"
    with ScoringServer(f"models:/{NAME}@champion", env=store["env"], log=log) as running:
        yield running


def test_the_champion_answers_raw_reviews_with_the_in_process_probabilities(store, server):
    status, body = post_json(f"{server.url}/invocations", {"inputs": REVIEWS[:2]})
    assert status == 200, body
    predictions = body["predictions"]
    assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions), body
    assert all(0.0 <= p <= 1.0 for p in predictions)
    champion = store["models"][0][1]
    np.testing.assert_allclose(predictions, in_process(champion, REVIEWS[:2]), rtol=1e-5, atol=1e-6)
    # One review a request, and a batch: the same probabilities each way.
    status, one = post_json(f"{server.url}/invocations", {"inputs": [REVIEWS[2]]})
    assert status == 200
    np.testing.assert_allclose(one["predictions"], in_process(champion, REVIEWS[2:]), rtol=1e-5)


# Each malformed body and what the 400's message must say about it (MLflow checks the raw
# JSON against predict's list[str] hint before its parser would cast values to strings).
MALFORMED = [
    ({"inputs": [1, 2]}, ["list[str]", "got int"]),
    ({"inputs": "x"}, ["Expected list", "got str"]),
    ({"inputs": [["a"]]}, ["list[str]", "got list"]),
    ({"inputs": ["a", None]}, ["list[str]", "NoneType"]),
    (b"not json", ["valid JSON"]),
    ({"reviews": ["a"]}, ["inputs"]),
]


@pytest.mark.parametrize("body, names", MALFORMED, ids=lambda v: repr(v)[:30])
def test_a_malformed_request_gets_a_400_naming_the_problem(server, body, names):
    status, answer = post_json(f"{server.url}/invocations", body)
    assert status == 400, answer
    message = answer["message"] if isinstance(answer, dict) else answer
    for name in names:
        assert name in message, message


def test_the_alias_is_resolved_at_start_so_a_promotion_takes_effect_at_the_next(store, server):
    (v1, first), (v2, second) = store["models"]
    expected = [in_process(first, REVIEWS), in_process(second, REVIEWS)]
    assert not np.allclose(*expected, rtol=0, atol=1e-6), "the two versions must differ"
    uri = store["env"]["MLFLOW_TRACKING_URI"]
    registry.set_alias(NAME, registry.CHAMPION, v2, tracking_uri=uri)
    try:
        # The running server keeps the version it loaded.
        status, body = post_json(f"{server.url}/invocations", {"inputs": REVIEWS})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], expected[0], rtol=1e-5, atol=1e-6)
        # A server started now resolves @champion to version 2.
        log = store["root"] / "server-2.log"
        with ScoringServer(f"models:/{NAME}@champion", env=store["env"], log=log) as restarted:
            status, body = post_json(f"{restarted.url}/invocations", {"inputs": REVIEWS})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], expected[1], rtol=1e-5, atol=1e-6)
    finally:
        registry.set_alias(NAME, registry.CHAMPION, v1, tracking_uri=uri)
