"""lib.model.models on tiny synthetic reviews whose words carry the label."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from lib.core.errors import ParameterError
from lib.data.cleaning import clean_text
from lib.model import features, models, train_spec, training
from tests.support.reviews import NEGATIVE, POSITIVE, split, synthetic_reviews

pytestmark = pytest.mark.slow  # lib.model imports Keras


@pytest.fixture(scope="module")
def data() -> tuple:
    texts, labels = synthetic_reviews()
    return split(texts, labels, 300)


# -- hyperparameters ------------------------------------------------------------------


def test_model_names_and_defaults() -> None:
    assert models.MODEL_NAMES[0] == "nbngram"
    assert "reference" in models.MODEL_NAMES
    for name in models.MODEL_NAMES:
        assert models.check_model_params(name, {}) == models.default_hparams(name)
        train = models.default_train_params(name)
        assert set(train) == {"optimiser", "learning_rate", "epochs", "bs"}
        assert train["optimiser"] in training.OPTIMISERS
    assert models.default_train_params("reference") == {
        "optimiser": "adam",
        "learning_rate": 0.001,
        "epochs": 3,
        "bs": 32,
    }
    ref = models.default_hparams("reference")
    assert (ref["max_tokens"], ref["sequence_length"], ref["embedding_dim"]) == (20000, 256, 128)


def test_every_table_of_the_models_is_keyed_by_the_declared_names() -> None:
    """The models are declared without TensorFlow (lib.model.train_spec, which the runner checks
    before a kernel starts): a model added there and not here, or here and not there, fails."""
    declared = set(train_spec.MODEL_NAMES)
    assert models.MODEL_NAMES == train_spec.MODEL_NAMES
    for table in (
        models._BUILDERS,
        models._LAYERS,
        models._VECTORISER_HPARAMS,
        models._TRAINING,
        models._LEARNING_RATES,
    ):
        assert set(table) == declared
    for name in declared:
        assert set(models._VECTORISER_HPARAMS[name]) <= set(train_spec.default_hparams(name))
        assert set(models._LEARNING_RATES[name]) <= set(train_spec.OPTIMISERS)
        assert models.default_train_params(name)["optimiser"] in train_spec.OPTIMISERS


def test_check_model_params_coerces_strings() -> None:
    hp = models.check_model_params("nbngram", {"ngrams": "2", "nb_scale": "0.1"})
    assert hp["ngrams"] == 2 and hp["nb_scale"] == 0.1


@pytest.mark.parametrize(
    ("model", "hparams", "name"),
    [
        ("nope", {}, "model"),
        ("nbngram", {"ngrams": 0}, "ngrams"),
        ("nbngram", {"tail": -1}, "tail"),
        ("nbngram", {"alpha": 0}, "alpha"),
        ("nbngram", {"dropout": 1.0}, "dropout"),
        ("nbngram", {"label_smoothing": 0.5}, "label_smoothing"),
        ("nbngram", {"min_count": "many"}, "min_count"),
        ("nbngram", {"sequence_length": 10}, "sequence_length"),
        ("reference", {"max_tokens": 2}, "max_tokens"),
        ("reference", {"embedding_dim": 1.5}, "embedding_dim"),
    ],
)
def test_check_model_params_errors_name_the_parameter(model, hparams, name) -> None:
    with pytest.raises(ParameterError) as info:
        models.check_model_params(model, hparams)
    assert info.value.name == name
    assert name in str(info.value)


def test_build_model_rejects_bad_input(data) -> None:
    texts, labels, _, _ = data
    with pytest.raises(ValueError, match="labels"):
        models.build_model("nbngram", texts, labels[:-1], seed=1)
    with pytest.raises(ParameterError):
        models.build_model("nbngram", texts, labels, seed=1, ngrams=0)


# -- vectors and NB ratios --------------------------------------------------------------


def test_the_training_vectors_are_reused_once_then_recomputed(data, monkeypatch) -> None:
    import tensorflow as tf

    monkeypatch.setenv("IMDB_SPEEDUPS", "-data_cache")  # the plain path
    texts, labels, _, _ = data
    bundle = models.build_model("nbngram", texts, labels, seed=3)
    cached = bundle.train_cache[1]
    first = bundle.vectorize(texts)
    assert first is cached and bundle.train_cache is None
    second = bundle.vectorize(texts)
    assert second is not first
    assert tf.reduce_all(tf.sparse.to_dense(first) == tf.sparse.to_dense(second))


def test_nb_ratios_carry_the_label(data) -> None:
    texts, labels, _, _ = data
    bundle = models.build_model("nbngram", texts, labels, seed=3)
    vocab = bundle.vectorizer.get_vocabulary()
    ratios = bundle.core.get_layer("nb_linear").ratios.numpy().ravel()
    assert all(ratios[vocab.index(w)] > 1 for w in POSITIVE)
    assert all(ratios[vocab.index(w)] < -1 for w in NEGATIVE)
    assert abs(ratios[vocab.index("film")]) < 0.5


# -- export -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", models.MODEL_NAMES)
def test_export_save_load_predicts_identically_on_raw_text(data, tmp_path, model_name) -> None:
    import keras

    texts, labels, raw_rest, rest_labels = data
    training.set_seed(5)
    # Synthetic reviews are short: a short sequence keeps the reference's average useful.
    hparams = {"sequence_length": 24} if model_name == "reference" else {}
    bundle = models.build_model(model_name, texts, labels, seed=5, **hparams)
    x_train = bundle.vectorize(texts)
    x_val = bundle.vectorize(raw_rest)
    training.train(
        bundle,
        x_train,
        labels,
        x_val,
        rest_labels,
        optimiser="adam",
        learning_rate=None,
        epochs=2 if model_name == "nbngram" else 10,
        bs=32,
    )
    exported = bundle.export_model()
    assert exported.output_shape == (None, 1)
    path = tmp_path / "model.keras"
    exported.save(path)
    loaded = keras.models.load_model(path)

    raw = raw_rest + ["<p>GREAT... simply GREAT!!!</p>", "", "Worst.   film,   EVER?!"]
    cleaned = [clean_text(t) for t in raw]
    on_raw = training.predict_proba(loaded, raw)
    assert on_raw.shape == (len(raw),)
    assert ((on_raw >= 0) & (on_raw <= 1)).all()
    np.testing.assert_array_equal(on_raw, training.predict_proba(exported, raw))
    np.testing.assert_allclose(on_raw, training.predict_proba(loaded, cleaned), rtol=0, atol=1e-6)
    np.testing.assert_allclose(on_raw, training.predict_proba(bundle, raw), rtol=0, atol=1e-6)
    assert ((on_raw[: len(raw_rest)] > 0.5) == rest_labels).mean() > 0.85


@pytest.mark.parametrize("model_name", models.MODEL_NAMES)
def test_the_exported_model_keeps_one_copy_of_its_vocabulary(data, tmp_path, model_name) -> None:
    import keras

    texts, labels, _, _ = data
    bundle = models.build_model(model_name, texts, labels, seed=5)
    layer = bundle.vectorizer
    assert isinstance(layer, features.TextVectorization)  # the layer that saves it quickly
    path = tmp_path / "model.keras"
    bundle.export_model().save(path)
    with zipfile.ZipFile(path) as archive:
        copies = [n for n in archive.namelist() if n.endswith("vocabulary.txt")]
    assert len(copies) == 1
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer(layer.name).get_vocabulary() == layer.get_vocabulary()


# -- the data_cache trick: a kept vectoriser, the same model ----------------------------


def _train_and_predict(model_name, texts, labels, rest, rest_labels, tmp_path, name) -> dict:
    """Build, train 2 epochs, predict and export as the train notebook does; then what a
    pooled kernel's reset does (runner.kernels.inside.reset: Keras's session cleared)."""
    import keras

    from runner.kernels.inside import reset

    training.set_seed(11)
    hparams = {"sequence_length": 24} if model_name == "reference" else {}
    bundle = models.build_model(model_name, texts, labels, seed=11, **hparams)
    history = training.train(
        bundle, texts, labels, rest, rest_labels, optimiser="adam", learning_rate=None,
        epochs=2, bs=32,
    )  # fmt: skip
    result = {
        "weights": [w.numpy().copy() for w in bundle.core.weights],
        "history": history.history,
        "val": training.predict_proba(bundle, rest),
        "train": training.predict_proba(bundle, texts),
        "layer": bundle.vectorizer,
    }
    path = tmp_path / f"{name}.keras"
    bundle.export_model().save(path)
    result["loaded"] = training.predict_proba(keras.models.load_model(path), rest)
    reset()
    return result


@pytest.mark.parametrize("model_name", models.MODEL_NAMES)
def test_a_kept_vectoriser_gives_the_very_same_model(data, tmp_path, monkeypatch, model_name):
    texts, labels, rest, rest_labels = data
    args = (model_name, texts, labels, rest, rest_labels, tmp_path)
    monkeypatch.setenv("IMDB_SPEEDUPS", "-data_cache")
    plain = _train_and_predict(*args, "plain")
    monkeypatch.delenv("IMDB_SPEEDUPS")
    misses, hits = models._FITTED.misses, models._FITTED.hits
    first = _train_and_predict(*args, "first")  # fits and keeps the vectoriser
    again = _train_and_predict(*args, "again")  # reuses it, after a kernel's reset
    assert (models._FITTED.misses, models._FITTED.hits) == (misses + 1, hits + 1)
    for cached in (first, again):
        for mine, theirs in zip(cached["weights"], plain["weights"], strict=True):
            np.testing.assert_array_equal(mine, theirs)
        assert cached["history"] == plain["history"]
        for key in ("val", "train", "loaded"):
            np.testing.assert_array_equal(cached[key], plain[key])
    # Each model has its own layer (a model never holds the kept one), sharing its table.
    assert again["layer"] is not first["layer"]
    assert again["layer"].get_vocabulary() == plain["layer"].get_vocabulary()


def test_other_texts_or_vectoriser_settings_fit_anew(data, monkeypatch) -> None:
    monkeypatch.delenv("IMDB_SPEEDUPS", raising=False)
    texts, labels, rest, _ = data
    models.build_model("nbngram", texts, labels, seed=1)
    misses = models._FITTED.misses
    models.build_model("nbngram", texts, labels, seed=2, nb_scale=0.1)  # not the vectoriser's
    assert models._FITTED.misses == misses
    bigger = models.build_model("nbngram", texts, labels, seed=1, min_count=1)
    other = models.build_model("nbngram", rest, labels[: len(rest)], seed=1)
    assert models._FITTED.misses == misses + 2
    assert bigger.vectorizer.vocabulary_size() > other.vectorizer.vocabulary_size()
    # Other labels on the same texts: other NB ratios, from the same kept vectors.
    flipped = models.build_model("nbngram", texts, 1 - labels, seed=1, min_count=1)
    ratios = [b.core.get_layer("nb_linear").ratios.numpy() for b in (bigger, flipped)]
    np.testing.assert_allclose(ratios[0], -ratios[1], rtol=1e-5, atol=1e-6)
