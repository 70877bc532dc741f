"""lib.model.explain on real Keras models: the nbngram model's word contributions add up,
with its bias, to its logit exactly; every other model's are leave-one-out differences."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from lib.model import explain, models
from lib.model.explain import Explainer
from lib.model.explanation import EXACT, LEAVE_ONE_OUT
from tests.support.reviews import split, synthetic_reviews

pytestmark = pytest.mark.slow  # Keras models

TEXTS = [
    "A wonderful, moving film.<br /><br />I loved it!",
    "Dull plot and awful acting: a waste of time.",
    "great great great film, great film",  # one feature set by several n-grams
    "zyxw qwerty flibbertigibbet",  # out of the vocabulary only
    "superb",  # one word: its own tail
    "",
    " ".join(["film plot wonderful awful boring scene"] * 200),  # 1,200 words
]


def _logit(model, text: str) -> float:
    """The model's own logit: its vectoriser and NB layer, without the sigmoid."""
    vectoriser, linear = explain._ngram_parts(model)
    features = tf.cast(tf.sparse.to_dense(vectoriser(tf.constant([text]))), tf.float32)
    return float(np.asarray(linear(features))[0, 0])


@pytest.mark.parametrize("text", TEXTS)
def test_the_words_and_the_bias_add_up_to_the_logit(trained_model, text):
    explained = Explainer(trained_model)(text)
    assert explained.method == EXACT and explained.unit == "logit"
    assert len(explained.contributions) == len(explained.words)
    total = explained.contributions.sum() + explained.bias
    logit = _logit(trained_model, text)
    assert total == pytest.approx(logit, abs=1e-4 * max(1.0, abs(logit)))
    assert explained.probability == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)


def test_the_features_looked_up_are_those_the_model_sets(trained_model):
    explainer = Explainer(trained_model)
    vectoriser, _ = explain._ngram_parts(trained_model)
    for text in TEXTS[:5]:
        words = explainer(text).words
        ids, starts, widths = explainer._feature_ids(words)
        columns = tf.sparse.to_dense(vectoriser(tf.constant([text]))).numpy()[0]
        assert set(ids.tolist()) == set(np.flatnonzero(columns).tolist())
        assert (starts + widths <= len(words)).all()


def test_a_features_share_is_split_among_the_words_of_its_n_grams(trained_model):
    explainer = Explainer(trained_model)
    words = ["great", "film"]
    ids, starts, widths = explainer._feature_ids(words)
    assert len(ids) == 6  # 3 n-grams of the review, 3 of its tail
    expected = np.zeros(2)
    for feature, start, width in zip(ids, starts, widths, strict=True):
        share = explainer._coef[feature] / (ids == feature).sum() / width
        expected[start : start + width] += share
    got = explainer("Great film!").contributions
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_sentiment_words_push_their_way(trained_model):
    explained = explain.explain(trained_model, "The plot was wonderful but the acting awful.")
    by_word = dict(zip(explained.words, explained.contributions, strict=True))
    assert by_word["wonderful"] > 0 > by_word["awful"]
    positive, negative = explained.top_words(3)
    assert "wonderful" in [w for w, _ in positive] and "awful" in [w for w, _ in negative]
    assert all(v > 0 for _, v in positive) and all(v < 0 for _, v in negative)


def test_a_word_said_twice_is_listed_once_with_both_contributions(trained_model):
    explained = Explainer(trained_model)("wonderful film, wonderful music, dull end")
    positive, _ = explained.top_words(10)
    total = sum(
        v for w, v in zip(explained.words, explained.contributions, strict=True) if w == "wonderful"
    )
    assert [v for w, v in positive if w == "wonderful"] == [pytest.approx(total)]


@pytest.fixture(scope="module")
def reference_model():
    texts, labels = synthetic_reviews(120, seed=2)
    train_texts, train_labels, _, _ = split(texts, labels, 120)
    bundle = models.build_model(
        "reference", train_texts, train_labels, seed=2, max_tokens=200, sequence_length=16
    )
    return bundle.export_model()


def test_another_model_is_explained_by_leaving_each_word_out(reference_model):
    explainer = Explainer(reference_model)
    assert explainer.method == LEAVE_ONE_OUT
    text = "Superb film, <br />boring ending, brilliant cast!"
    explained = explainer(text)
    assert explained.unit == "probability" and explained.bias is None
    assert explained.words == ["superb", "film", "boring", "ending", "brilliant", "cast"]
    full = float(reference_model.predict_on_batch(np.array([text], dtype=object))[0, 0])
    without = float(
        reference_model.predict_on_batch(
            np.array(["superb film ending brilliant cast"], dtype=object)
        )[0, 0]
    )
    assert explained.probability == pytest.approx(full, abs=1e-6)
    assert explained.contributions[2] == pytest.approx(full - without, abs=1e-6)


def test_leave_one_out_takes_a_review_longer_than_one_batch(reference_model):
    text = " ".join(["superb boring film"] * (explain.LEAVE_ONE_OUT_BATCH // 2))
    explained = Explainer(reference_model)(text)
    assert len(explained.contributions) == len(explained.words) > explain.LEAVE_ONE_OUT_BATCH
    # The model reads 16 tokens: leaving out a word after them changes nothing.
    assert np.abs(explained.contributions[20:]).max() == 0


def test_a_model_built_around_the_linear_layer_is_explained_by_leaving_words_out(trained_model):
    from tests.support.logged_models import inverted

    explainer = Explainer(inverted(trained_model))
    assert explainer.method == LEAVE_ONE_OUT
    explained = explainer("A wonderful film, I loved it.")
    assert explained.probability < 0.5  # the inverted model's own


def test_explaining_calls_no_keras_predict_function(trained_model):
    """TensorFlow counts the tracings of every Keras model's predict function under one key:
    an explainer that traced one was warned of "retracing" in a notebook that had trained,
    evaluated and exported a few models before it (whatever shapes it used)."""
    from tests.support.logged_models import inverted

    exact = keras.Model(trained_model.inputs, trained_model.outputs)  # never predicted with
    for model, method in ((exact, EXACT), (inverted(trained_model), LEAVE_ONE_OUT)):
        explainer = Explainer(model)
        assert explainer.method == method
        for text in TEXTS:
            explainer(text)
        assert model.predict_function is None
    expected = trained_model.predict_on_batch(np.array(TEXTS[:2], dtype=object))[:, 0]
    found = [Explainer(exact)(text).probability for text in TEXTS[:2]]
    np.testing.assert_allclose(found, expected, atol=1e-6)  # the model's own probability


def test_a_logit_far_from_0_gives_0_or_1_without_an_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in exp"
        assert (explain._sigmoid(-1000.0), explain._sigmoid(1000.0)) == (0.0, 1.0)
    assert explain._sigmoid(-2.0) == pytest.approx(1 / (1 + np.exp(2.0)), rel=1e-12)
