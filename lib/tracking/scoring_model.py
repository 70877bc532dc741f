"""The logged model: an MLflow pyfunc model around the exported ``.keras`` file.

MLflow's Keras loader cannot load the exported model by itself: its custom layers
(``NBLinear``, the vectoriser subclasses) are registered only when :mod:`lib.model.models` is
imported. So the model is logged as this pyfunc model, with :data:`MODEL_MODULES` (the part
of ``lib`` that loading and scoring import, nothing else) as its ``code_paths``: MLflow
copies them into the model's ``code/`` folder and puts that folder first on ``sys.path``
before it unpickles this class, so the model loads in any process with the pinned
requirements, whether or not this project is installed there (``mlflow models serve``, a
serving image).

The signature declares one unnamed string column (a named one would refuse a plain list of
strings, the simplest request), and ``predict`` is hinted ``list[str]``, so MLflow checks each
value of a request before anything casts it: the scoring server answers anything that is not
a string with a 400 naming it.
"""

from __future__ import annotations

import contextvars
import logging
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from lib.core import tf_runtime

log = logging.getLogger(__name__)

# The artifact that holds the exported model.
KERAS_ARTIFACT = "keras_model"
# Reviews per predict_on_batch call.
CHUNK = 1024
# When a served prediction must have ended (a time.monotonic() value), or None: the scoring
# server (lib.inference.limits) sets it for each request, and MLflow runs predict in a thread
# that inherits it (asyncio.to_thread copies the context). predict checks it before each
# chunk, so a prediction answered 504 stops within one chunk instead of running on.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "imdb_prediction_deadline", default=None
)


class PredictionTimeout(TimeoutError):
    """A served prediction went past :data:`DEADLINE` (its answer, a 504, is given already)."""


# What the model's code needs: this module, lib.model.models and everything it imports
# (tests/lib/tracking/test_scoring_model.py holds this list equal to the static import closure).
MODEL_MODULES = (
    "lib/__init__.py",
    "lib/core/__init__.py",
    "lib/core/errors.py",
    "lib/core/params.py",
    "lib/core/paths.py",
    "lib/core/speedups.py",
    "lib/core/tf_runtime.py",
    "lib/data/__init__.py",
    "lib/data/cleaning.py",
    "lib/model/__init__.py",
    "lib/model/features.py",
    "lib/model/models.py",
    "lib/model/train_spec.py",
    "lib/tracking/__init__.py",
    "lib/tracking/scoring_model.py",
)


def code_folder(target: Path) -> Path:
    """Copy :data:`MODEL_MODULES` into ``target/lib`` (the package a model's ``code_paths``
    names) and return that folder."""
    import shutil

    package_root = Path(__file__).resolve().parents[2]  # lib/tracking/ -> the project
    folder = target / "lib"
    for module in MODEL_MODULES:
        destination = target / module
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_root / module, destination)
    return folder


def signature():
    """Raw review strings in (one string column), P(positive) out (one double column)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("double")]))


def review_texts(model_input: Any) -> list[str]:
    """The review strings of a list, a pandas Series or a one-column DataFrame."""
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != 1:
            raise ValueError(
                f"expected one column of review strings, got {model_input.shape[1]} columns"
            )
        model_input = model_input.iloc[:, 0]
    values = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"expected review strings, got {type(bad).__name__} {bad!r:.60}")
    return values


class ScoringModel(mlflow.pyfunc.PythonModel):
    """P(positive) for raw review strings, from the exported Keras model."""

    def __getstate__(self) -> dict[str, Any]:
        """What is pickled: never the loaded Keras model (MLflow runs load_context on this
        instance to check the hinted predict before it pickles it)."""
        return {k: v for k, v in self.__dict__.items() if k != "_model"}

    def load_context(self, context) -> None:
        """Load the exported model; lib.model.models (from the model's code) registers its
        layers."""
        # TensorFlow starts as in the stages: its C++ start-up lines logged, not printed.
        tf_runtime.start()
        import keras

        import lib.model.models  # noqa: F401  (registers the custom layers the file names)

        self._model = keras.models.load_model(context.artifacts[KERAS_ARTIFACT])

    # The hint makes MLflow check a request's raw JSON against list[str] first (the scoring
    # server's parser would cast [1, 2] to strings): a 400 naming what is not a string. It
    # also turns a one-column DataFrame into a list; the schema it infers is signature()'s.
    def predict(self, context, model_input: list[str], params=None) -> list[float]:
        """P(positive) for each review, as floats (a list of strings, or a one-column
        DataFrame, which MLflow turns into a list)."""
        import numpy as np

        texts = review_texts(model_input)
        deadline = DEADLINE.get()
        # predict_on_batch, not predict: Keras's predict builds a tf.data pipeline on every
        # call (about 90 ms, whatever the batch); chunks bound the memory of a large input
        # and how long a prediction runs past its deadline.
        chunks = []
        for i in range(0, len(texts), CHUNK):
            if deadline is not None and time.monotonic() > deadline:
                message = f"prediction stopped after {i} of {len(texts)} reviews: past its time"
                log.warning(message)  # its answer, a 504, is given: only the log says so
                raise PredictionTimeout(message)
            batch = np.array(texts[i : i + CHUNK], dtype=object)
            chunks.append(np.asarray(self._model.predict_on_batch(batch)))
        if not chunks:
            return []
        probabilities = np.concatenate(chunks).astype(np.float64)
        return probabilities.reshape(len(texts), -1)[:, -1].tolist()
