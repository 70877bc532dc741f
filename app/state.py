"""The page's model, loaded once per process and shared by every visitor's session, and
what the page says of it (:class:`ModelInfo`: name, version, alias, its MLflow run with a
link to the run's page when the tracking server has a web address, when it was trained, its
test accuracy; what the store cannot tell is left out, never guessed).

``python -m runner app`` calls :func:`start` before the server starts (a model that cannot be
loaded is then one line and exit 2, never a page with a traceback); a page started by
Streamlit alone loads ``$REVIEW_PAGE_MODEL`` (else the champion) on its first visit. Keras
models are called under one lock: the sessions run in threads of one process.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
from mlflow.exceptions import MlflowException

from lib.core.errors import UserError
from lib.inference import model_source
from lib.inference.model_source import REGISTRY_SCHEME, ModelRef
from lib.model.explain import Explainer
from lib.model.explanation import Explanation
from lib.tracking import registry
from lib.tracking.registry import CHAMPION_URI, TEST_METRIC_PREFIX
from lib.tracking.runs import resolve_tracking_uri
from lib.tracking.store_check import public_uri

MODEL_ENV = "REVIEW_PAGE_MODEL"
SCORE_BATCH = 64  # reviews a model call scores in an upload
ACCURACY_TAG = f"{TEST_METRIC_PREFIX}accuracy"


@dataclass(frozen=True)
class ModelInfo:
    """What the page says of the model that answers."""

    uri: str
    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    trained: str | None = None  # the run's end, UTC
    test_accuracy: float | None = None


def _run_id(ref: ModelRef, tracking_uri: str) -> tuple[str | None, float | None]:
    """The run that logged the model, and the test accuracy its version was tagged with."""
    if ref.source.startswith(REGISTRY_SCHEME):
        found = registry.resolve(ref.name, version=ref.version, tracking_uri=tracking_uri)
        accuracy = (found.tags or {}).get(ACCURACY_TAG)
        return found.run_id or None, float(accuracy) if accuracy else None
    if ref.uri.startswith("runs:/"):
        return ref.uri[len("runs:/") :].strip("/").partition("/")[0] or None, None
    return None, None


def run_page(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on the tracking server's web UI; None for a store without one."""
    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return None
    base = public_uri(tracking_uri).rstrip("/")
    return f"{base}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"


def describe(ref: ModelRef, tracking_uri: str | None = None) -> ModelInfo:
    """What the page shows of ``ref``: the registry's and its run's facts, as far as the
    store holds them (a model file has neither)."""
    uri = resolve_tracking_uri(tracking_uri)
    info = ModelInfo(ref.uri, ref.name, ref.version, ref.alias)
    try:
        run_id, accuracy = _run_id(ref, uri)
        if run_id is None:
            return info
        run = registry.client(uri).get_run(run_id)
    except (UserError, MlflowException, OSError):  # a run gone, no access: shown without
        return info
    if accuracy is None and ACCURACY_TAG in run.data.metrics:
        accuracy = float(run.data.metrics[ACCURACY_TAG])
    ended = run.info.end_time or run.info.start_time
    trained = (
        dt.datetime.fromtimestamp(ended / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if ended
        else None
    )
    return ModelInfo(
        ref.uri,
        ref.name,
        ref.version,
        ref.alias,
        run_id,
        run_page(uri, run.info.experiment_id, run_id),
        trained,
        accuracy,
    )


@dataclass
class PageModel:
    """The model that answers: loaded, its explainer, and what the page says of it."""

    uri: str
    loaded: model_source.LoadedModel
    explainer: Explainer
    info: ModelInfo
    lock: threading.Lock = field(default_factory=threading.Lock)

    def explain(self, text: str) -> Explanation:
        """``text``'s probability and its words' contributions."""
        with self.lock:
            return self.explainer(text)

    def score(self, texts: list[str]) -> np.ndarray:
        """P(positive) of each text (the batch-scoring code's scorer)."""
        with self.lock:
            return self._scorer(texts)

    def __post_init__(self) -> None:
        self._scorer = model_source.scorer(self.loaded, SCORE_BATCH)


_lock = threading.Lock()
_current: PageModel | None = None


def load(uri: str) -> PageModel:
    """The model ``uri`` names (any URI the other commands take), loaded, with its facts.
    ModelError (one line) when it cannot be loaded."""
    loaded = model_source.load(uri)
    return PageModel(uri, loaded, Explainer(loaded.keras_model), describe(loaded.ref))


def start(uri: str) -> PageModel:
    """Load ``uri`` as the process's model (what the page shows from now on)."""
    global _current
    model = load(uri)
    with _lock:
        _current = model
    _freeze()
    return model


def _freeze() -> None:
    """What the process holds now (TensorFlow, Keras, MLflow, the model: half a million
    objects) left out of Python's cyclic garbage collection, which walked them all, 0.25 s of
    CPU, in each full collection: Streamlit's after each run of the page, and Python's own.
    Unfrozen and collected first: a model the alias replaced is not kept frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def current() -> PageModel:
    """The process's model: the one started, else ``$REVIEW_PAGE_MODEL`` or the champion,
    loaded now."""
    with _lock:
        if _current is not None:
            return _current
    return start(os.environ.get(MODEL_ENV) or CHAMPION_URI)


def reload_if_moved() -> tuple[bool, PageModel]:
    """Whether the alias the page was started with names another version now (which is
    then loaded, and answers from now on), and the model that answers."""
    model = current()
    if not model.info.alias:
        return False, model
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        ref = model_source.resolve(model.uri, Path(tmp))
    if ref.version == model.info.version:
        return False, model
    return True, start(model.uri)
