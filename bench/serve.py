"""Benchmark: the registered champion behind the project's scoring server (MLflow's scoring
app with limits), against in-process predictions of the same exported Keras model.

Usage: python bench/serve.py ../shared/data/aclImdb_v1.tar.gz [--per-label 1500] [--epochs 1]

Takes ``--per-label`` reviews of each label from the archive's train and test folders
(read straight from the stream: no full extraction), prepares them through lib, trains the
default model (the train notebook's ``nbngram``) for ``--epochs`` on them, logs it as the
train notebook does (lib.tracking.runs.log_keras_model), registers it in a throwaway local store
and sets ``champion`` on it (lib.tracking.registry). Then, in one run:

* starts ``python -m runner serve --model models:/bench-serve@champion`` on 127.0.0.1
  (tests/support/scoring_server.py) and, after a warm-up, times ``--requests`` one-review
  requests one after another (latency: p50 and p99, the client's wall time per request);
* times ``--batches`` requests of ``--batch`` reviews each (throughput: reviews/s);
* runs ``--clients`` concurrent clients (tests/support/load_clients.py) for ``--concurrent-s``
  seconds twice: all sending ``--batch``-review requests (``concurrent_reviews_per_s``, to set
  against one client's ``batch_reviews_per_s``), then a mix of one-review and
  ``--batch``-review requests, four to one (``concurrent_p50_ms``, ``concurrent_p99_ms``);
  every answer is checked against ``predict_on_batch`` in this process (within 1e-6);
* predicts the same batches in this process with the exported Keras model's
  ``predict_on_batch`` (what the served pyfunc calls), after one warm-up call: the last
  line's ``inprocess_reviews_per_s``, the strict baseline; and, for the line before the
  last, with ``model.predict``, whose per-call set-up (a tf.data pipeline) costs about 90 ms
  a call on 2 cores, whatever the batch.

The server's and the in-process probabilities are checked equal. Last line:
``p50_ms=... p99_ms=... batch_reviews_per_s=... inprocess_reviews_per_s=...
concurrent_p50_ms=... concurrent_p99_ms=... concurrent_reviews_per_s=...``
(goals: p50 <= 50 ms, batch >= half of in-process, concurrent reviews/s >= 0.8 of one
client's, concurrent p99 <= 10 x concurrent p50).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "bench-serve"
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


def extract_subset(archive: Path, target: Path, per_label: int) -> Path:
    """``target``/aclImdb with the first ``per_label`` reviews of each split and label."""
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            found = _MEMBER.match(member.name)
            if not found or not member.isfile():
                continue
            key = (found.group(1), found.group(2))
            if counts.get(key, 0) >= per_label:
                continue
            counts[key] = counts.get(key, 0) + 1
            path = target / "aclImdb" / key[0] / key[1] / Path(member.name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            path.write_bytes(source.read())
            if len(counts) == 4 and min(counts.values()) >= per_label:
                break
    return target / "aclImdb"


def train_and_register(processed: Path, store: str, epochs: int):
    """The default model trained on ``processed``, logged and registered as champion:
    (the exported Keras model, its version, the test reviews)."""
    from lib.data import datasets
    from lib.model import models, training
    from lib.tracking import registry
    from lib.tracking import runs as tracking

    data = datasets.load(processed, 0.2, 4002)
    training.set_seed(4002)
    bundle = models.build_model("nbngram", data.train.texts, data.train.labels, seed=4002)
    params = models.default_train_params("nbngram") | {"learning_rate": None, "epochs": epochs}
    training.train(
        bundle, data.train.texts, data.train.labels, data.val.texts, data.val.labels, **params
    )
    exported = bundle.export_model()
    tracking.start_run(tracking_uri=store, experiment_name="bench-serve")
    try:
        model_uri = tracking.log_keras_model(exported, [str(t) for t in data.test.texts[:2]])
    finally:
        import mlflow

        mlflow.end_run()
    version = registry.register(model_uri, MODEL_NAME, {}, tracking_uri=store)
    registry.set_alias(MODEL_NAME, registry.CHAMPION, version.version, tracking_uri=store)
    return exported, version.version, [str(t) for t in data.test.texts]


def time_requests(url: str, bodies: list[dict]) -> list[float]:
    """Each request's wall time in s, sent one after another; every answer must be 200."""
    from tests.support.scoring_server import post_json

    seconds = []
    for body in bodies:
        started = time.perf_counter()
        status, answer = post_json(url, body)
        seconds.append(time.perf_counter() - started)
        if status != 200:
            sys.exit(f"the server answered {status}: {str(answer)[:500]}")
    return seconds


def registered_champion(archive: Path, tmp: Path, per_label: int, epochs: int):
    """In ``tmp`` (the project root from now on, so the store, logs and git lookup stay
    there): ``per_label`` reviews of each split and label of ``archive`` prepared, the default
    model trained and registered as champion in a SQLite store; (the store's URI, the
    exported Keras model, the test reviews), with a line saying so."""
    from lib.data.prep import prepare

    os.environ["PROJECT_ROOT"] = str(tmp)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    raw = extract_subset(archive, tmp, per_label)
    prepare([raw], tmp / "processed")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    model, version, reviews = train_and_register(tmp / "processed", store, epochs)
    print(
        f"trained and registered {MODEL_NAME} version {version} on "
        f"{2 * per_label} train reviews in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return store, model, reviews


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--per-label", type=int, default=1500, help="reviews per split/label")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="one-review requests")
    parser.add_argument("--batch", type=int, default=100, help="reviews per batch request")
    parser.add_argument("--batches", type=int, default=20, help="batch requests")
    parser.add_argument("--warmup", type=int, default=20, help="requests before timing")
    parser.add_argument("--workers", type=int, default=1, help="the server's workers")
    parser.add_argument("--threads", type=int, default=None, help="the server's threads")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--concurrent-s", type=float, default=30.0, help="each concurrent run")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tests.support.scoring_server import ScoringServer, post_json

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        store, model, reviews = registered_champion(args.archive, tmp, args.per_label, args.epochs)
        singles = [{"inputs": [reviews[i % len(reviews)]]} for i in range(args.requests)]
        batches = [
            [reviews[(b * args.batch + i) % len(reviews)] for i in range(args.batch)]
            for b in range(args.batches)
        ]
        uri = f"models:/{MODEL_NAME}@champion"
        env = {"MLFLOW_TRACKING_URI": store}
        options = ["--threads", str(args.threads)] if args.threads else []
        log = tmp / "server.log"
        with ScoringServer(uri, env=env, log=log, workers=args.workers, options=options) as server:
            print(f"server ready in {server.startup_s:.1f} s", flush=True)
            url = f"{server.url}/invocations"
            time_requests(url, singles[: args.warmup] + [{"inputs": batches[0]}])
            latency = np.array(time_requests(url, singles)) * 1000
            batch_s = sum(time_requests(url, [{"inputs": b} for b in batches]))
            _, served = post_json(url, {"inputs": batches[0]})
            full, mixed = concurrent_runs(server.url, model, singles, batches, args)
        local = np.asarray(model.predict(np.array(batches[0], dtype=object), verbose=0))
        np.testing.assert_allclose(served["predictions"], local.reshape(-1), rtol=1e-4, atol=1e-5)
        inprocess_s = on_batch_s = 0.0
        model.predict_on_batch(np.array(batches[0], dtype=object))
        for batch in batches:
            texts = np.array(batch, dtype=object)
            t0 = time.perf_counter()
            model.predict(texts, verbose=0)
            t1 = time.perf_counter()
            model.predict_on_batch(texts)  # Keras without predict's per-call set-up
            on_batch_s += time.perf_counter() - t1
            inprocess_s += t1 - t0
    n = args.batch * args.batches
    p50, p99 = np.percentile(latency, [50, 99])
    c50, c99 = mixed.percentiles_ms(50, 99)
    print(
        f"one review a request: p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean {latency.mean():.1f} ms "
        f"over {len(latency)}; {args.batch} a request: {n / batch_s:.0f} reviews/s served, "
        f"{n / on_batch_s:.0f} in process (predict_on_batch; model.predict: {n / inprocess_s:.0f})",
        flush=True,
    )
    print(
        f"{args.clients} clients for {args.concurrent_s:g} s: {args.batch} a request "
        f"{full.reviews_per_s:.0f} reviews/s over {len(full.latencies_s)} requests; mixed "
        f"(1 and {args.batch}, four to one) p50 {c50:.1f} ms, p99 {c99:.1f} ms over "
        f"{len(mixed.latencies_s)} requests",
        flush=True,
    )
    print(
        f"p50_ms={p50:.1f} p99_ms={p99:.1f} batch_reviews_per_s={n / batch_s:.0f} "
        f"inprocess_reviews_per_s={n / on_batch_s:.0f} concurrent_p50_ms={c50:.1f} "
        f"concurrent_p99_ms={c99:.1f} concurrent_reviews_per_s={full.reviews_per_s:.0f}"
    )


def concurrent_runs(url: str, model, singles: list[dict], batches: list[list[str]], args):
    """``--clients`` clients for ``--concurrent-s`` s twice, every answer checked against
    ``predict_on_batch`` in this process: all ``--batch``-review requests, then the mix."""
    from tests.support.load_clients import Request, run_clients

    def request(reviews: list[str]) -> Request:
        return Request.of(reviews, model.predict_on_batch(np.array(reviews, dtype=object)))

    full_batches = [request(b) for b in batches]
    ones = [request(s["inputs"]) for s in singles[: 4 * len(batches)]]
    mix = [r for i, b in enumerate(full_batches) for r in (*ones[4 * i : 4 * i + 4], b)]
    runs = []
    for requests in (full_batches, mix):
        run_clients(url, requests, clients=args.clients, duration_s=min(args.concurrent_s, 5))
        result = run_clients(url, requests, clients=args.clients, duration_s=args.concurrent_s)
        if result.errors:
            sys.exit(f"{len(result.errors)} concurrent requests failed: {result.errors[:3]}")
        runs.append(result)
    return runs


if __name__ == "__main__":
    main()
