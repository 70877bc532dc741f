"""lib.models on tiny synthetic reviews whose words carry the label."""

from __future__ import annotations

import zipfile

import numpy as np
import pyarrow as pa
import pytest

from lib import features, models, training
from lib.cleaning import clean, clean_text
from lib.errors import ParameterError

NEUTRAL = (
    "film movie plot actor scene story director camera music script ending cast "
    "character minute time people watch seen saw year"
).split()
POSITIVE = "great superb wonderful brilliant loved enjoyable masterpiece".split()
NEGATIVE = "awful terrible boring waste worst dull horrible".split()


def synthetic_reviews(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` raw reviews (HTML, punctuation, capitals) and their 0/1 labels.

    Each has 6-14 neutral words and 1-3 words of its sentiment; one review in ten also
    has a word of the other sentiment, so the task is learnable but not trivial.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(NEUTRAL, rng.integers(6, 15)))
        words += list(rng.choice(own, rng.integers(1, 4)))
        if rng.random() < 0.1:
            words.append(str(rng.choice(other)))
        rng.shuffle(words)
        words[0] = words[0].capitalize()
        texts.append(" ".join(words[:4]) + ", <br /><br />" + " ".join(words[4:]).upper() + "!")
    return texts, labels


def split(texts: list[str], labels: np.ndarray, n_train: int) -> tuple:
    """(cleaned train texts as Arrow, train labels, raw rest, labels of the rest)."""
    cleaned = clean(pa.array(texts[:n_train], pa.large_string()))
    return cleaned, labels[:n_train], texts[n_train:], labels[n_train:]


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


def test_the_training_vectors_are_reused_once_then_recomputed(data) -> None:
    import tensorflow as tf

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
