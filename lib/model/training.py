"""Training, evaluation and prediction for ``lib.model.models`` bundles, with Keras ``fit``.

The optimiser is chosen by name (a notebook parameter); a learning rate of None means the
model's own default for that optimiser (``ModelBundle.learning_rates``), else Keras'.
Runs are reproducible on CPU: ``set_seed`` seeds Python, NumPy and TensorFlow and turns
on TensorFlow's op determinism (every op used here is allowed under it).

``fit``, ``evaluate`` and ``predict`` get their batches from ``batches``, a tf.data pipeline
of row indices (``Dataset.range``, a seeded shuffle, ``batch``, a parallel gather of the
rows, ``prefetch``) rather than arrays. Keras's array adapter builds its partial last batch
with ``Dataset.from_tensors``; TensorFlow's op determinism does not count that TensorDataset
as deterministic, so its ``make_deterministic`` rewrite turned the adapter's parallel map
into a sequential ``MapDataset`` (dropping the prefetch) and kept an attribute the new op
lacks, and TensorFlow printed "NodeDef mentions attribute use_unbounded_threadpool which is
not in the op definition" on every run. This pipeline holds no TensorDataset, keeps its
parallelism and prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lib.core import progress
from lib.core.params import check_choice, check_float, check_int
from lib.model import features

# The choices are declared without TensorFlow, where the runner checks them before a kernel.
from lib.model.train_spec import METRICS, OPTIMISER_CLASSES, OPTIMISERS


def make_optimizer(name: str, learning_rate: float | None) -> keras.optimizers.Optimizer:
    """A fresh Keras optimiser by name (:data:`lib.model.train_spec.OPTIMISER_CLASSES` names its
    class); ``learning_rate`` None: Keras' default."""
    check_choice("optimiser", name, OPTIMISERS)
    optimiser_class = getattr(keras.optimizers, OPTIMISER_CLASSES[name])
    if learning_rate is None:
        return optimiser_class()
    rate = check_float("learning_rate", learning_rate, 0.0)
    return optimiser_class(learning_rate=rate)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(check_int("seed", seed, 0))
    tf.config.experimental.enable_op_determinism()


# Metric name -> the Keras metric it compiles; keyed by lib.model.train_spec.METRICS (a test holds
# them to each other).
METRIC_BUILDERS: dict[str, Callable[[], keras.metrics.Metric]] = {
    "accuracy": lambda: keras.metrics.BinaryAccuracy(name="accuracy"),
    "auc": lambda: keras.metrics.AUC(name="auc"),
}


def _metric(name: str) -> keras.metrics.Metric:
    return METRIC_BUILDERS[check_choice("metric", name, METRICS)]()


def _compile(bundle: Any, optimizer: keras.optimizers.Optimizer, metric: str) -> None:
    names = [metric] if metric == "accuracy" else [metric, "accuracy"]
    bundle.core.compile(optimizer=optimizer, loss=bundle.loss, metrics=[_metric(n) for n in names])


def _labels(labels: Any) -> np.ndarray:
    return np.asarray(labels, dtype="float32").reshape(-1, 1)


def _rows(x: Any) -> Callable[[tf.Tensor], Any]:
    """A function of a 1-D int64 tensor of row numbers -> those rows of ``x``.

    ``x``: a ``tf.SparseTensor`` or an array or tensor of numbers or strings. A sparse
    batch keeps each row's entries in their order, so its indices are in row order if
    those of ``x`` are (as ``features.vectorize`` gives them; others are reordered).
    The gather reads ``x``'s own indices and values, so no copy of them is kept.
    """
    if not isinstance(x, tf.SparseTensor):
        dense = tf.convert_to_tensor(x)
        return lambda rows: tf.gather(dense, rows)
    if not bool(tf.math.is_non_decreasing(x.indices[:, 0])):
        x = tf.sparse.reorder(x)
    n, width = x.dense_shape[0], int(x.dense_shape[1])  # a static width for Keras' input
    # Where each row's entries start and end in x.indices/x.values (CSR row splits).
    counts = tf.math.bincount(x.indices[:, 0], minlength=n, maxlength=n, dtype=tf.int64)
    splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(counts)], axis=0)
    indices, values = x.indices, x.values

    def take(rows: tf.Tensor) -> tf.SparseTensor:
        entries = tf.ragged.range(tf.gather(splits, rows), tf.gather(splits, rows + 1))
        positions = entries.flat_values
        batch_rows = tf.expand_dims(entries.value_rowids(), 1)
        batch_indices = tf.concat([batch_rows, tf.gather(indices, positions)[:, 1:]], axis=1)
        shape = [tf.size(rows, out_type=tf.int64), width]
        return tf.SparseTensor(batch_indices, tf.gather(values, positions), shape)

    return take


def _count(x: Any) -> int:
    return int(x.dense_shape[0] if isinstance(x, tf.SparseTensor) else x.shape[0])


def batches(x: Any, y: Any = None, *, bs: int, seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``bs`` rows of ``x`` (and of the labels ``y``: elements ``(x, y)``).

    In row order, the last batch partial; with ``seed``, in a new order every epoch (each
    iteration of the data set), the same orders for the same seed. ``x``: what
    ``bundle.core`` or an exported model takes (see ``_rows``). Built from row indices
    (``Dataset.range``), so that op determinism leaves its parallel gather and prefetch
    alone (see the module's docstring).
    """
    bs = check_int("bs", bs, 1)
    n = _count(x)
    take_x = _rows(x)
    if y is None:
        take = take_x
    else:
        labels = tf.constant(_labels(y))
        if int(labels.shape[0]) != n:
            raise ValueError(f"{n} rows but {int(labels.shape[0])} labels")

        def take(rows: tf.Tensor) -> tuple[Any, tf.Tensor]:
            return take_x(rows), tf.gather(labels, rows)

    rows = tf.data.Dataset.range(n)
    if seed is not None:
        rows = rows.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    rows = rows.batch(bs).map(take, num_parallel_calls=tf.data.AUTOTUNE)
    return rows.prefetch(tf.data.AUTOTUNE)


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
    early_stopping_patience: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> keras.callbacks.History:
    """Fit ``bundle.core`` on the training data, validating on the validation data.

    ``x_train``/``x_val``: texts (cleaned or raw; vectorised here, once) or what
    ``bundle.vectorize`` returned. ``learning_rate`` None: the model's default for the
    optimiser. ``history.history`` has ``loss``, ``<metric>``, ``val_loss`` and
    ``val_<metric>`` per epoch (and ``accuracy``/``val_accuracy`` for another metric).
    The training rows are shuffled every epoch, in orders drawn from NumPy's global
    generator (which ``set_seed`` seeds), so the same seed gives the same weights.
    ``early_stopping_patience``: stop once ``val_loss`` has not improved for that many
    epochs, and keep the weights of its best epoch (None: train every epoch).
    """
    epochs = check_int("epochs", epochs, 1)
    stopping = []
    if early_stopping_patience is not None:
        patience = check_int("early_stopping_patience", early_stopping_patience, 1)
        stopping.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            )
        )
    bs = check_int("bs", bs, 1)
    check_choice("optimiser", optimiser, OPTIMISERS)
    check_choice("metric", metric, METRICS)
    if learning_rate is None:
        learning_rate = bundle.learning_rates.get(optimiser)
    _compile(bundle, make_optimizer(optimiser, learning_rate), metric)
    seed = int(np.random.randint(0, 2**31 - 1))
    return bundle.core.fit(
        batches(_vectors(bundle, x_train), y_train, bs=bs, seed=seed),
        validation_data=batches(_vectors(bundle, x_val), y_val, bs=bs),
        epochs=epochs,
        shuffle=False,  # batches shuffles; Keras warns that it ignores its default True
        verbose=0,
        callbacks=[*callbacks, *stopping, progress.epoch_callback()],  # epochs as they end
    )


def evaluate(bundle: Any, texts: Any, labels: Any, *, bs: int) -> dict[str, float]:
    """``{"loss": ..., "accuracy": ...}`` (and the training metric) of ``bundle.core``.

    ``texts``: cleaned or raw texts, or what ``bundle.vectorize`` already returned.
    """
    bs = check_int("bs", bs, 1)
    if not getattr(bundle.core, "compiled", False):
        _compile(bundle, make_optimizer("adam", None), "accuracy")
    x = _vectors(bundle, texts)
    result = bundle.core.evaluate(batches(x, labels, bs=bs), verbose=0, return_dict=True)
    return {key: float(value) for key, value in result.items()}


def predict_proba(model_or_bundle: Any, texts: Any, bs: int = 1024) -> np.ndarray:
    """P(positive) per text, shape (n,), from a bundle or an exported/loaded Keras model."""
    bs = check_int("bs", bs, 1)
    if isinstance(model_or_bundle, keras.Model):
        strings = features.as_string_tensor(texts)
        if int(strings.shape[0]) == 0:
            return np.zeros(0, dtype="float32")
        probs = model_or_bundle.predict(batches(strings, bs=bs), verbose=0)
    else:
        x = _vectors(model_or_bundle, texts)
        if int(x.shape[0]) == 0:
            return np.zeros(0, dtype="float32")
        probs = model_or_bundle.core.predict(batches(x, bs=bs), verbose=0)
    return np.asarray(probs, dtype="float32").reshape(-1)
