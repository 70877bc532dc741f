"""The scoring server (``python -m runner serve``) under load on 127.0.0.1: 20 concurrent
clients for 60 seconds, mixing one-review and 100-review requests (tests/support/
load_clients.py, whose loops stop by themselves): no error, every answer the in-process
model's within 1e-6, p50 and p99 reported, and the server's memory after the run within 10%
of its memory after a warm-up under the same load.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import logged_models
from tests.support.load_clients import Request, run_clients
from tests.support.reviews import synthetic_reviews
from tests.support.scoring_server import ScoringServer

pytestmark = pytest.mark.slow

CLIENTS = 20
DURATION_S = 60.0
WARM_UP_S = 15.0


def _requests(model) -> list[Request]:
    """40 one-review and 10 hundred-review requests, interleaved, with the in-process
    model's probabilities."""
    texts, _ = synthetic_reviews(1040, seed=27)
    ones = [texts[i : i + 1] for i in range(40)]
    hundreds = [texts[40 + 100 * i : 140 + 100 * i] for i in range(10)]
    order = []
    for i in range(10):
        order += [*ones[4 * i : 4 * i + 4], hundreds[i]]
    return [
        Request.of(b, np.asarray(model.predict(np.array(b, dtype=object), verbose=0)))
        for b in order
    ]


def test_twenty_clients_for_a_minute_get_the_in_process_answers(
    tmp_path, trained_model, record_property
):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROJECT_ROOT", str(tmp_path))
        model_uri = logged_models.log_model(store, trained_model)
    requests = _requests(trained_model)
    env = {"MLFLOW_TRACKING_URI": store, "PROJECT_ROOT": str(tmp_path)}
    with ScoringServer(model_uri, env=env, log=tmp_path / "server.log") as server:
        url = server.url
        warm = run_clients(url, requests, clients=CLIENTS, duration_s=WARM_UP_S)
        assert not warm.errors, warm.errors[:5]
        warm_memory = server.rss_bytes()
        load = run_clients(url, requests, clients=CLIENTS, duration_s=DURATION_S)
        memory = server.rss_bytes()
    assert not load.errors, (len(load.errors), load.errors[:5])
    p50, p99 = load.percentiles_ms(50, 99)
    line = (
        f"{len(load.latencies_s)} requests from {CLIENTS} clients in {load.wall_s:.0f} s: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {load.reviews_per_s:.0f} reviews/s; memory "
        f"{warm_memory / 2**20:.0f} MiB after the warm-up, {memory / 2**20:.0f} MiB after"
    )
    print(line)
    record_property("load", line)
    assert len(load.latencies_s) > CLIENTS * 10  # every client was served, many times
    assert abs(memory - warm_memory) <= 0.10 * warm_memory, line
