"""Training, evaluation and prediction for ``lib.models`` bundles, with Keras ``fit``.

The optimiser is chosen by name (a notebook parameter); a learning rate of None means the
model's own default for that optimiser (``ModelBundle.learning_rates``), else Keras'.
Runs are reproducible on CPU: ``set_seed`` seeds Python, NumPy and TensorFlow and turns
on TensorFlow's op determinism (every op used here is allowed under it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lib import features, progress
from lib.params import check_choice, check_float, check_int

OPTIMISERS: tuple[str, ...] = ("adam", "rmsprop", "sgd", "adamw", "nadam")
METRICS: tuple[str, ...] = ("accuracy", "auc")

_OPTIMISER_CLASSES: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
}


def make_optimizer(name: str, learning_rate: float | None) -> keras.optimizers.Optimizer:
    """A fresh Keras optimiser by name; ``learning_rate`` None: Keras' default."""
    check_choice("optimiser", name, OPTIMISERS)
    if learning_rate is None:
        return _OPTIMISER_CLASSES[name]()
    rate = check_float("learning_rate", learning_rate, 0.0)
    return _OPTIMISER_CLASSES[name](learning_rate=rate)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(check_int("seed", seed, 0))
    tf.config.experimental.enable_op_determinism()


def _metric(name: str) -> keras.metrics.Metric:
    check_choice("metric", name, METRICS)
    if name == "auc":
        return keras.metrics.AUC(name="auc")
    return keras.metrics.BinaryAccuracy(name="accuracy")


def _compile(bundle: Any, optimizer: keras.optimizers.Optimizer, metric: str) -> None:
    names = [metric] if metric == "accuracy" else [metric, "accuracy"]
    bundle.core.compile(optimizer=optimizer, loss=bundle.loss, metrics=[_metric(n) for n in names])


def _labels(labels: Any) -> np.ndarray:
    return np.asarray(labels, dtype="float32").reshape(-1, 1)


def _vectors(bundle: Any, x: Any) -> Any:
    """``x`` if it is already what ``bundle.core`` takes, else ``bundle.vectorize(x)``."""
    if isinstance(x, tf.SparseTensor) or (isinstance(x, np.ndarray) and x.dtype.kind in "iuf"):
        return x
    return bundle.vectorize(x)


def train(
    bundle: Any,
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    optimiser: str,
    learning_rate: float | None,
    epochs: int,
    bs: int,
    metric: str = "accuracy",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> keras.callbacks.History:
    """Fit ``bundle.core`` on the training data, validating on the validation data.

    ``x_train``/``x_val``: texts (cleaned or raw; vectorised here, once) or what
    ``bundle.vectorize`` returned. ``learning_rate`` None: the model's default for the
    optimiser. ``history.history`` has ``loss``, ``<metric>``, ``val_loss`` and
    ``val_<metric>`` per epoch (and ``accuracy``/``val_accuracy`` for another metric).
    """
    epochs = check_int("epochs", epochs, 1)
    bs = check_int("bs", bs, 1)
    check_choice("optimiser", optimiser, OPTIMISERS)
    check_choice("metric", metric, METRICS)
    if learning_rate is None:
        learning_rate = bundle.learning_rates.get(optimiser)
    _compile(bundle, make_optimizer(optimiser, learning_rate), metric)
    return bundle.core.fit(
        _vectors(bundle, x_train),
        _labels(y_train),
        validation_data=(_vectors(bundle, x_val), _labels(y_val)),
        epochs=epochs,
        batch_size=bs,
        shuffle=True,
        verbose=0,
        callbacks=[*callbacks, progress.epoch_callback()],  # epochs as they end
    )


def evaluate(bundle: Any, texts: Any, labels: Any, *, bs: int) -> dict[str, float]:
    """``{"loss": ..., "accuracy": ...}`` (and the training metric) of ``bundle.core``.

    ``texts``: cleaned or raw texts, or what ``bundle.vectorize`` already returned.
    """
    bs = check_int("bs", bs, 1)
    if not getattr(bundle.core, "compiled", False):
        _compile(bundle, make_optimizer("adam", None), "accuracy")
    x = _vectors(bundle, texts)
    result = bundle.core.evaluate(x, _labels(labels), batch_size=bs, verbose=0, return_dict=True)
    return {key: float(value) for key, value in result.items()}


def predict_proba(model_or_bundle: Any, texts: Any, bs: int = 1024) -> np.ndarray:
    """P(positive) per text, shape (n,), from a bundle or an exported/loaded Keras model."""
    bs = check_int("bs", bs, 1)
    if isinstance(model_or_bundle, keras.Model):
        strings = features.as_string_tensor(texts)
        if int(strings.shape[0]) == 0:
            return np.zeros(0, dtype="float32")
        probs = model_or_bundle.predict(strings, batch_size=bs, verbose=0)
    else:
        x = _vectors(model_or_bundle, texts)
        if int(x.shape[0]) == 0:
            return np.zeros(0, dtype="float32")
        probs = model_or_bundle.core.predict(x, batch_size=bs, verbose=0)
    return np.asarray(probs, dtype="float32").reshape(-1)
