"""lib.model.training: optimisers by name, fit/evaluate/predict, determinism, on synthetic data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from lib.core.errors import ParameterError
from lib.model import models, train_spec, training
from tests.support.reviews import split, synthetic_reviews

pytestmark = pytest.mark.slow  # every test imports TensorFlow

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data() -> tuple:
    texts, labels = synthetic_reviews(500, seed=1)
    return split(texts, labels, 400)


def fit(data, model_name="nbngram", seed=7, texts_to_train=False, **train_kw) -> tuple:
    """build + vectorise + train; (bundle, history, val vectors, val labels).

    With ``texts_to_train``, ``train`` gets the texts and vectorises them itself.
    """
    texts, labels, val_texts, val_labels = data
    training.set_seed(seed)
    bundle = models.build_model(model_name, texts, labels, seed=seed)
    params = models.default_train_params(model_name) | {"learning_rate": None} | train_kw
    if texts_to_train:
        history = training.train(bundle, texts, labels, val_texts, val_labels, **params)
        return bundle, history, bundle.vectorize(val_texts), val_labels
    x_train, x_val = bundle.vectorize(texts), bundle.vectorize(val_texts)
    history = training.train(bundle, x_train, labels, x_val, val_labels, **params)
    return bundle, history, x_val, val_labels


def test_make_optimizer_by_name() -> None:
    for name in training.OPTIMISERS:
        opt = training.make_optimizer(name, 0.05)
        assert isinstance(opt, keras.optimizers.Optimizer)
        assert float(opt.learning_rate) == pytest.approx(0.05)
    assert {"adam", "rmsprop", "sgd"} <= set(training.OPTIMISERS)
    assert isinstance(training.make_optimizer("rmsprop", None), keras.optimizers.RMSprop)


def test_the_declared_choices_are_what_training_builds() -> None:
    """The optimisers and metrics are declared without TensorFlow (lib.model.train_spec, checked
    by the runner before a kernel starts); each one builds here, and no other."""
    assert training.OPTIMISERS == train_spec.OPTIMISERS
    for name, class_name in train_spec.OPTIMISER_CLASSES.items():
        optimiser = training.make_optimizer(name, None)
        assert type(optimiser) is getattr(keras.optimizers, class_name)
    assert training.METRICS == train_spec.METRICS
    assert set(training.METRIC_BUILDERS) == set(train_spec.METRICS)
    for name in train_spec.METRICS:
        assert isinstance(training._metric(name), keras.metrics.Metric)


def test_unknown_optimiser_or_bad_rate_raises() -> None:
    with pytest.raises(ParameterError) as info:
        training.make_optimizer("adamax_typo", 0.01)
    assert info.value.name == "optimiser" and "adam" in str(info.value)
    with pytest.raises(ParameterError) as info:
        training.make_optimizer("adam", -1.0)
    assert info.value.name == "learning_rate"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"optimiser": "nope"}, "optimiser"),
        ({"epochs": 0}, "epochs"),
        ({"bs": 0}, "bs"),
        ({"metric": "f1"}, "metric"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
    ],
)
def test_train_parameter_errors(data, kwargs, name) -> None:
    texts, labels, _, _ = data
    bundle = models.build_model("nbngram", texts, labels, seed=1)
    x = bundle.vectorize(texts)
    args = {"optimiser": "adam", "learning_rate": None, "epochs": 1, "bs": 32} | kwargs
    with pytest.raises(ParameterError) as info:
        training.train(bundle, x, labels, x, labels, **args)
    assert info.value.name == name


def test_default_model_learns_the_synthetic_task(data) -> None:
    bundle, history, x_val, y_val = fit(data)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == models.default_train_params("nbngram")["epochs"]
    assert history.history["val_accuracy"][-1] > 0.9
    texts, labels, val_texts, _ = data
    scores = training.evaluate(bundle, val_texts, y_val, bs=64)
    assert set(scores) == {"loss", "accuracy"}
    assert scores["accuracy"] == pytest.approx(history.history["val_accuracy"][-1])
    assert training.evaluate(bundle, x_val, y_val, bs=64) == scores
    probs = training.predict_proba(bundle, val_texts)
    assert probs.shape == (len(val_texts),)
    assert ((probs > 0.5) == y_val).mean() == pytest.approx(scores["accuracy"])


def test_same_seed_gives_identical_metrics(data) -> None:
    # The second run also checks that train() vectorising texts itself changes nothing.
    first = fit(data, seed=11, epochs=2)
    second = fit(data, seed=11, epochs=2, texts_to_train=True)
    assert first[1].history == second[1].history
    np.testing.assert_array_equal(
        training.predict_proba(first[0], first[2]), training.predict_proba(second[0], second[2])
    )


def test_early_stopping_stops_when_val_loss_stalls_and_keeps_the_best_weights(data) -> None:
    # Validation labels flipped: the better the model learns, the worse its val_loss, so
    # the first epoch is the best and training stops one epoch later.
    texts, labels, val_texts, val_labels = data
    flipped = (texts, labels, val_texts, 1 - np.asarray(val_labels))
    bundle, history, x_val, y_val = fit(flipped, epochs=6, early_stopping_patience=1)
    losses = history.history["val_loss"]
    assert len(losses) == 2 and losses[1] > losses[0]
    restored = training.evaluate(bundle, x_val, y_val, bs=64)["loss"]
    assert restored == pytest.approx(losses[0], rel=1e-4)  # the best epoch's weights
    _, full, _, _ = fit(flipped, epochs=3)
    assert len(full.history["val_loss"]) == 3  # without it, every epoch runs


def test_other_metric_is_logged_with_accuracy(data) -> None:
    _, history, _, _ = fit(data, epochs=1, metric="auc")
    assert {"auc", "val_auc", "accuracy", "val_accuracy", "loss"} <= set(history.history)


@pytest.mark.parametrize("optimiser", training.OPTIMISERS)
def test_every_optimiser_trains(data, optimiser) -> None:
    bundle, history, _, _ = fit(data, optimiser=optimiser, epochs=3, bs=32)
    kernel = bundle.core.get_layer("nb_linear").kernel.numpy()
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(kernel).max() > 0
    # Each optimiser's default learning rate for this model learns the easy task.
    assert history.history["val_accuracy"][-1] > 0.8


def test_reference_model_trains(data) -> None:
    bundle, history, x_val, y_val = fit(data, "reference", epochs=3)
    assert x_val.shape == (len(y_val), 256)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_inputs_of_every_kind_and_empty(data) -> None:
    import pyarrow as pa

    bundle, _, _, _ = fit(data, epochs=1)
    texts = ["Great film!", "An awful, boring waste.", "<i>wonderful</i>"]
    expected = training.predict_proba(bundle, texts)
    chunked = pa.chunked_array([pa.array(texts[:1]), pa.array(texts[1:])])
    for kind in (np.array(texts), np.array(texts, dtype=object), pa.array(texts), chunked):
        np.testing.assert_array_equal(training.predict_proba(bundle, kind), expected)
    assert expected[0] > 0.5 > expected[1]
    assert training.predict_proba(bundle, []).shape == (0,)
    assert training.predict_proba(bundle.export_model(), []).shape == (0,)


def epoch(dataset) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """(batch sizes, dense rows, labels) of one pass over a ``training.batches`` data set."""
    sizes, rows, labels = [], [], []
    for x, y in dataset:
        dense = tf.sparse.to_dense(x) if isinstance(x, tf.SparseTensor) else x
        sizes.append(int(dense.shape[0]))
        rows.extend(dense.numpy())
        labels.extend(y.numpy().reshape(-1))
    return sizes, rows, labels


def as_row_tuples(rows) -> list[tuple]:
    return [tuple(np.asarray(r).tolist()) for r in rows]


@pytest.mark.parametrize("sparse", [True, False])
def test_batches_give_every_row_once_an_epoch_in_seeded_orders(sparse) -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((37, 6)) < 0.3) * np.arange(1, 7, dtype="float32")
    dense[0] = 0  # an empty row
    dense[:, 5] = np.arange(37)  # every row distinct, so that a row tells its number
    x = tf.sparse.from_dense(dense) if sparse else dense
    labels = np.arange(37) % 2

    sizes, rows, got_labels = epoch(training.batches(x, labels, bs=8))
    assert sizes == [8, 8, 8, 8, 5]  # in row order, the last batch partial
    np.testing.assert_array_equal(rows, dense)
    np.testing.assert_array_equal(got_labels, labels)

    shuffled = training.batches(x, labels, bs=8, seed=5)
    first, second = epoch(shuffled), epoch(shuffled)
    for sizes, rows, got_labels in (first, second):
        assert sizes == [8, 8, 8, 8, 5]
        order = np.asarray(rows)[:, 5].astype(int)
        assert sorted(order) == list(range(37))  # each row once, with its label
        np.testing.assert_array_equal(rows, dense[order])
        np.testing.assert_array_equal(got_labels, labels[order])
    assert as_row_tuples(first[1]) != as_row_tuples(second[1])  # a new order each epoch
    assert as_row_tuples(first[1]) != as_row_tuples(dense)
    again = training.batches(x, labels, bs=8, seed=5)
    assert as_row_tuples(epoch(again)[1]) == as_row_tuples(first[1])  # same seed, same orders
    assert as_row_tuples(epoch(again)[1]) == as_row_tuples(second[1])


def test_batches_of_inputs_alone_keep_their_kind_and_width() -> None:
    x = tf.sparse.from_dense(np.eye(5, 9, dtype="float32"))
    dataset = training.batches(x, bs=2)
    assert dataset.element_spec == tf.SparseTensorSpec([None, 9], tf.float32)
    batches = list(dataset)
    assert [tuple(b.dense_shape.numpy()) for b in batches] == [(2, 9), (2, 9), (1, 9)]
    strings = list(training.batches(np.array(["a", "b", "c"], dtype=object), bs=2))
    assert [b.numpy().tolist() for b in strings] == [[b"a", b"b"], [b"c"]]
    # Indices out of row order (valid for a SparseTensor) give the same rows.
    order = np.random.default_rng(1).permutation(int(x.values.shape[0]))
    shuffled = tf.SparseTensor(tf.gather(x.indices, order), tf.gather(x.values, order), x.shape)
    for got, want in zip(training.batches(shuffled, bs=2), batches, strict=True):
        np.testing.assert_array_equal(tf.sparse.to_dense(got), tf.sparse.to_dense(want))
    with pytest.raises(ValueError, match="5 rows but 4 labels"):
        training.batches(x, [0, 1, 0, 1], bs=2)
    with pytest.raises(ParameterError):
        training.batches(x, bs=0)


@pytest.mark.slow
def test_training_under_op_determinism_prints_no_tensorflow_lines() -> None:
    # In a fresh process: TensorFlow prints a given line once per process. Keras's own
    # array batching made TF print "NodeDef mentions attribute use_unbounded_threadpool"
    # once op determinism was on (see lib.model.training's docstring).
    code = """
import logging
from lib.core import tf_runtime
tf_runtime.start()
import numpy as np
from lib.model import models, training
from tests.support.reviews import split, synthetic_reviews
texts, labels, val_texts, val_labels = split(*synthetic_reviews(120, seed=3), 100)
for name in models.MODEL_NAMES:
    training.set_seed(1)
    bundle = models.build_model(name, texts, labels, seed=1)
    training.train(bundle, texts, labels, val_texts, val_labels, optimiser="adam",
                   learning_rate=None, epochs=2, bs=16)
    training.evaluate(bundle, val_texts, val_labels, bs=16)
    training.predict_proba(bundle, val_texts, bs=16)
    training.predict_proba(bundle.export_model(), val_texts, bs=16)
print("done")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CUDA_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["done"]
    absl_line = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\]", re.MULTILINE)
    assert not absl_line.search(result.stderr), result.stderr
    assert "NodeDef" not in result.stderr, result.stderr
