"""lib.model.features: n-grams, vocabularies, vectorising in chunks, NB ratios, the saved layer."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from lib.data.cleaning import clean_text
from lib.model import features
from tests.support.reviews import split, synthetic_reviews

pytestmark = pytest.mark.slow  # every test builds Keras layers

SAMPLES = ["A GREAT film!<br /><br />I loved it, 10/10.", "  Awful... a  b c waste ", ""]


@pytest.fixture(scope="module")
def texts() -> pa.Array:
    """300 cleaned synthetic reviews (Arrow), as build_model gets them."""
    raw_texts, labels = synthetic_reviews(300, seed=2)
    return split(raw_texts, labels, 300)[0]


def _ngram_layer(texts, name="ngrams", **kwargs) -> features.TextVectorization:
    """The n-gram layer as the nbngram model makes it: multi-hot, sparse (texts None: no
    vocabulary yet)."""
    ngrams = features.NgramSplit(ngrams=2, tail=3)
    layer = features.TextVectorization(
        standardize=features.standardize,
        split=ngrams,
        output_mode="multi_hot",
        sparse=True,
        name=name,
        **kwargs,
    )
    if texts is not None:
        layer.set_vocabulary(features.build_vocabulary(texts, ngrams, min_count=2))
    return layer


def _token_layer(texts, name="tokens") -> features.TextVectorization:
    """The token-id layer as the reference model makes it: dense ids, fixed length (texts
    None: no vocabulary yet)."""
    layer = features.TextVectorization(
        standardize=features.standardize,
        output_mode="int",
        output_sequence_length=12,
        name=name,
    )
    if texts is not None:
        layer.set_vocabulary(
            features.build_vocabulary(texts, features.whitespace_split, min_count=1)
        )
    return layer


LAYERS = {"ngrams": _ngram_layer, "tokens": _token_layer}


# -- text in ----------------------------------------------------------------------------


def test_standardize_cleans_as_prep_does():
    out = features.standardize(tf.constant(SAMPLES)).numpy().tolist()
    assert [t.decode() for t in out] == [clean_text(t) for t in SAMPLES]
    assert out[0] == b"great film loved it 10 10"


def test_as_string_tensor_takes_every_kind_of_texts():
    expected = [b"one", b"two", b""]
    large = pa.large_string()
    chunked = pa.chunked_array([pa.array(["one"], large), pa.array(["two", ""], large)])
    kinds = [
        ["one", "two", ""],
        np.array(["one", "two", ""]),
        np.array(["one", "two", ""], dtype=object),
        pa.array(["one", "two", ""]),
        chunked,
        tf.constant([["one"], ["two"], [""]]),  # a column: flattened
    ]
    for kind in kinds:
        tensor = features.as_string_tensor(kind)
        assert tensor.dtype == tf.string and tensor.shape.rank == 1
        assert tensor.numpy().tolist() == expected


def test_whitespace_split_splits_on_any_whitespace():
    terms = features.whitespace_split(tf.constant(["aa  bb\tcc", ""]))
    assert terms.to_list() == [[b"aa", b"bb", b"cc"], []]


# -- n-grams and vocabularies -------------------------------------------------------------


def test_ngram_split_whole_review_and_marked_tail() -> None:
    terms = features.NgramSplit(ngrams=2, tail=2, tail_ngrams=2)(tf.constant(["aa bb cc"]))
    assert [t.decode() for t in terms[0].numpy()] == [
        "aa",
        "bb",
        "cc",
        "aa bb",
        "bb cc",
        "_bb",
        "_cc",
        "_bb cc",
    ]
    no_tail = features.NgramSplit(ngrams=1, tail=0)(tf.constant(["aa bb"]))
    assert no_tail.to_list() == [[b"aa", b"bb"]]


def test_ngram_split_is_saved_by_name_with_its_settings():
    ngrams = features.NgramSplit(ngrams=3, tail=5, tail_ngrams=1)
    config = keras.saving.serialize_keras_object(ngrams)
    assert config["registered_name"] == f"{features.PACKAGE}>NgramSplit"
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is features.NgramSplit and clone.get_config() == ngrams.get_config()
    texts = tf.constant(["one two three four five six", "short"])
    assert clone(texts).to_list() == ngrams(texts).to_list()


def test_build_vocabulary_counts_orders_and_caps() -> None:
    texts = ["bb aa", "aa cc", "aa bb dd", "ee"]
    ngrams = features.NgramSplit(ngrams=1)
    vocab = features.build_vocabulary(texts, ngrams, min_count=2, chunk=1)
    assert [t.decode() for t in vocab.numpy()] == ["aa", "bb"]
    assert features.build_vocabulary(texts, ngrams, min_count=1, max_tokens=1).numpy() == [b"aa"]
    # Raw text is cleaned before counting.
    vocab = features.build_vocabulary(["<b>AA</b>, aa!"], ngrams, min_count=2)
    assert vocab.numpy().tolist() == [b"aa"]


def test_build_vocabulary_ties_keep_the_order_of_first_appearance_whatever_the_chunks(texts):
    ties = ["dd cc", "bb aa", "aa bb cc dd"]  # each term twice
    vocab = features.build_vocabulary(ties, features.whitespace_split, min_count=1, chunk=1)
    assert vocab.numpy().tolist() == [b"dd", b"cc", b"bb", b"aa"]
    ngrams = features.NgramSplit(ngrams=2, tail=3)
    whole = features.build_vocabulary(texts, ngrams, min_count=2, chunk=10_000)
    assert features.build_vocabulary(texts, ngrams, min_count=2, chunk=7).numpy().tolist() == (
        whole.numpy().tolist()
    )
    counts = {}
    for terms in ngrams(features.standardize(features.as_string_tensor(texts))).to_list():
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
    assert set(whole.numpy().tolist()) == {t for t, n in counts.items() if n >= 2}
    frequencies = [counts[t] for t in whole.numpy().tolist()]
    assert frequencies == sorted(frequencies, reverse=True)


# -- vectorising --------------------------------------------------------------------------


def test_vectorize_in_chunks_equals_one_call_for_sparse_and_dense_layers(texts) -> None:
    sparse_layer, dense_layer = _ngram_layer(texts), _token_layer(texts)
    whole = sparse_layer(features.as_string_tensor(texts))
    chunked = features.vectorize(sparse_layer, texts, chunk=7)
    assert isinstance(chunked, tf.SparseTensor)
    assert chunked.dense_shape.numpy().tolist() == whole.dense_shape.numpy().tolist()
    assert tf.reduce_all(tf.sparse.to_dense(chunked) == tf.sparse.to_dense(whole))
    ids = features.vectorize(dense_layer, texts, chunk=7)
    assert isinstance(ids, np.ndarray) and ids.shape == (len(texts), 12)
    np.testing.assert_array_equal(ids, dense_layer(features.as_string_tensor(texts)).numpy())


def test_vectorize_nothing_gives_an_empty_batch_of_the_layers_width(texts):
    sparse_layer, dense_layer = _ngram_layer(texts), _token_layer(texts)
    empty = features.vectorize(sparse_layer, [])
    assert isinstance(empty, tf.SparseTensor)
    assert empty.dense_shape.numpy().tolist() == [0, sparse_layer.vocabulary_size()]
    ids = features.vectorize(dense_layer, [])
    assert isinstance(ids, np.ndarray) and ids.shape == (0, 12)


def test_nb_log_ratios_are_the_smoothed_log_count_ratios():
    # Rows 0 and 1 are positive, row 2 negative; three features.
    x = tf.SparseTensor([[0, 0], [0, 1], [1, 0], [2, 1], [2, 2]], [1.0, 1.0, 1.0, 1.0, 1.0], [3, 3])
    ratios = features.nb_log_ratios(x, np.array([1, 1, 0]), alpha=1.0)
    p = np.array([1 + 2, 1 + 1, 1 + 0])  # alpha + the feature's sum over positive rows
    q = np.array([1 + 0, 1 + 1, 1 + 1])
    expected = np.log((p / p.sum()) / (q / q.sum()))
    assert ratios.dtype == np.float32
    np.testing.assert_allclose(ratios, expected, rtol=1e-6)
    assert ratios[0] > 0 > ratios[2]  # seen with the positive, with the negative review


# -- saving -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_the_vocabulary_file_is_the_one_keras_writes(texts, tmp_path, kind) -> None:
    layer = LAYERS[kind](texts)
    (tmp_path / "keras").mkdir()
    (tmp_path / "ours").mkdir()
    keras.layers.StringLookup.save_assets(layer._lookup_layer, str(tmp_path / "keras"))
    layer._lookup_layer.save_assets(str(tmp_path / "ours"))
    ours = (tmp_path / "ours" / "vocabulary.txt").read_bytes()
    assert ours == (tmp_path / "keras" / "vocabulary.txt").read_bytes()
    assert ours.count(b"\n") + 1 == layer.vocabulary_size()
    # Keras reads it back into the same vocabulary.
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is features.TextVectorization
    clone._lookup_layer.load_assets(str(tmp_path / "ours"))
    assert clone.get_vocabulary() == layer.get_vocabulary()
    # A saved model keeps one copy, the lookup's, and loads it back.
    text = keras.Input(shape=(), dtype="string")
    path = tmp_path / "layer.keras"
    keras.Model(text, layer(text)).save(path)
    with zipfile.ZipFile(path) as archive:
        copies = [n for n in archive.namelist() if n.endswith("vocabulary.txt")]
    assert len(copies) == 1
    loaded = keras.saving.load_model(path).get_layer(layer.name)
    assert type(loaded) is features.TextVectorization
    assert loaded.get_vocabulary() == layer.get_vocabulary()
    batch = tf.constant(SAMPLES)
    if kind == "ngrams":
        assert tf.reduce_all(tf.sparse.to_dense(loaded(batch)) == tf.sparse.to_dense(layer(batch)))
    else:
        np.testing.assert_array_equal(loaded(batch).numpy(), layer(batch).numpy())


# -- fingerprints and shared vocabularies (the data_cache trick) -------------------------


def test_fingerprint_is_of_the_texts_not_their_container(texts) -> None:
    as_list = texts.to_pylist()
    digest = features.fingerprint(texts)
    assert digest == features.fingerprint(as_list)
    assert digest == features.fingerprint(np.asarray(as_list, dtype=object))
    assert digest == features.fingerprint(tf.constant(as_list))
    assert digest != features.fingerprint(as_list[::-1])
    assert digest != features.fingerprint([*as_list[:-1], as_list[-1] + " "])
    # Where one text ends and the next begins counts, not only their characters.
    assert features.fingerprint(["ab", "c"]) != features.fingerprint(["a", "bc"])
    assert features.fingerprint([]) != features.fingerprint([""])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_layer_sharing_a_vocabulary_vectorises_and_saves_as_the_fitted_one(
    texts, tmp_path, kind
) -> None:
    fitted, shared = LAYERS[kind](texts), LAYERS[kind](None, name="shared")
    shared.share_vocabulary(fitted)
    assert shared.vocabulary_size() == fitted.vocabulary_size()
    assert shared.get_vocabulary() == fitted.get_vocabulary()
    expected, got = fitted(tf.constant(SAMPLES)), shared(tf.constant(SAMPLES))
    if isinstance(expected, tf.SparseTensor):
        expected, got = tf.sparse.to_dense(expected), tf.sparse.to_dense(got)
    np.testing.assert_array_equal(expected.numpy(), got.numpy())
    text = keras.Input(shape=(), dtype="string")
    keras.Model(text, shared(text)).save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("shared").get_vocabulary() == fitted.get_vocabulary()


def test_layers_made_differently_cannot_share_a_vocabulary(texts) -> None:
    other = features.TextVectorization(
        standardize=features.standardize, output_mode="int", output_sequence_length=13
    )
    with pytest.raises(ValueError, match="cannot share a table"):
        other.share_vocabulary(_token_layer(texts))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_vocabulary_tensor_sets_what_keras_sets_from_a_list(texts, kind) -> None:
    fast = LAYERS[kind](texts)  # build_vocabulary's tensor: the layer's own way in
    terms = fast.get_vocabulary()
    first = 2 if kind == "tokens" else 1  # the mask and OOV tokens, or the OOV token
    keras_way = LAYERS[kind](None, name="keras_way")
    keras_way.set_vocabulary(terms[first:])  # a list: Keras's way
    assert keras_way.get_vocabulary() == terms
    expected, got = keras_way(tf.constant(SAMPLES)), fast(tf.constant(SAMPLES))
    if isinstance(expected, tf.SparseTensor):
        expected, got = tf.sparse.to_dense(expected), tf.sparse.to_dense(got)
    np.testing.assert_array_equal(expected.numpy(), got.numpy())
    # What Keras refuses or handles specially still takes its way.
    with pytest.raises(ValueError, match="repeated"):
        LAYERS[kind](None).set_vocabulary(tf.constant(["a", "b", "a"]))
    with_specials = LAYERS[kind](None)
    with_specials.set_vocabulary(tf.constant(terms))  # the special tokens first, as Keras allows
    assert with_specials.get_vocabulary() == terms
