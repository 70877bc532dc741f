"""Text features for the models: word n-grams, tail n-grams, vocabularies and NB ratios.

Everything here runs as TensorFlow ops so that the same code vectorises the training data
(once, outside ``fit``) and runs inside the exported model on raw review strings.

- ``standardize`` is ``lib.data.cleaning.tf_clean`` registered for Keras serialisation;
- ``TextVectorization`` is Keras's, saving its vocabulary file from numpy (seconds faster);
- ``NgramSplit`` turns texts into word 1..n-grams plus 1..m-grams of the last ``tail``
  words, marked so that they are separate features (reviews end with their verdict);
- ``build_vocabulary`` counts terms by fingerprint with ``tf.unique_with_counts`` (seconds,
  where ``TextVectorization.adapt`` on ~14M n-grams takes about half a minute on two cores);
- ``vectorize`` applies a vectorising layer chunk by chunk in two threads (TF string ops
  release the GIL) and joins the chunks;
- ``nb_log_ratios`` gives the naive Bayes log-count ratios of Wang & Manning (2012);
- ``fingerprint`` digests texts, for caches keyed by what they were computed from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import tensorflow as tf

from lib.core import speedups
from lib.data.cleaning import tf_clean

PACKAGE = "imdb"
# Cleaned text has no punctuation, so no cleaned token starts with this: tail n-grams
# cannot collide with n-grams of the whole review.
TAIL_MARK = "_"
# Fingerprints for counting terms: 2**63 - 1 buckets, so collisions are negligible.
_HASH_BUCKETS = 2**63 - 1

Texts = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str] | tf.Tensor


@keras.saving.register_keras_serializable(package=PACKAGE)
def standardize(texts: tf.Tensor) -> tf.Tensor:
    """``lib.data.cleaning.tf_clean`` as a Keras ``standardize`` callable (saved by name)."""
    return tf_clean(texts)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NgramSplit:
    """Split callable for ``TextVectorization``: word n-grams plus marked tail n-grams.

    ``texts`` (1-D strings) -> ragged ``[batch, (terms)]``: all 1..``ngrams``-grams of the
    whitespace tokens, then, if ``tail`` > 0, the 1..``tail_ngrams``-grams of the last
    ``tail`` tokens, each prefixed with ``TAIL_MARK``.
    """

    def __init__(self, ngrams: int = 3, tail: int = 0, tail_ngrams: int = 2) -> None:
        self.ngrams, self.tail, self.tail_ngrams = int(ngrams), int(tail), int(tail_ngrams)

    def __call__(self, texts: tf.Tensor) -> tf.RaggedTensor:
        tokens = tf.strings.split(texts)
        terms = tf.strings.ngrams(tokens, tuple(range(1, self.ngrams + 1)), separator=" ")
        if self.tail > 0 and self.tail_ngrams > 0:
            last = tokens[:, -self.tail :]
            tail = tf.strings.ngrams(last, tuple(range(1, self.tail_ngrams + 1)), separator=" ")
            tail = tail.with_flat_values(tf.strings.join([TAIL_MARK, tail.flat_values]))
            terms = tf.concat([terms, tail], axis=1)
        return terms

    def get_config(self) -> dict[str, Any]:
        return {"ngrams": self.ngrams, "tail": self.tail, "tail_ngrams": self.tail_ngrams}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NgramSplit:
        return cls(**config)


class _StringLookup(keras.layers.StringLookup):
    """``StringLookup`` that writes its vocabulary file (Keras's format) from numpy, and
    takes a vocabulary tensor as it is."""

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Keras's, but a string tensor of distinct terms without the special tokens (what
        ``build_vocabulary`` gives) goes into the table as it is: Keras decodes every term
        to a Python str first (3 s of the 4 for the default model's 800,000 n-grams). Any
        other vocabulary takes Keras's way, with its checks and errors."""
        specials = [t for t in (self.mask_token, self.oov_token) if t is not None]
        if (
            not speedups.enabled("direct_vocabulary")
            or not isinstance(vocabulary, tf.Tensor)
            or vocabulary.dtype != tf.string
            or vocabulary.shape.rank != 1
            or idf_weights is not None
            or self.output_mode == "tf_idf"
            or self.invert
        ):
            return super().set_vocabulary(vocabulary, idf_weights)
        size = int(tf.size(vocabulary))
        fits = self.max_tokens is None or self._token_start_index() + size <= self.max_tokens
        if (
            size == 0
            or not fits
            or int(tf.size(tf.unique(vocabulary).y)) != size
            or any(bool(tf.reduce_any(vocabulary == token)) for token in specials)
        ):
            return super().set_vocabulary(vocabulary, idf_weights)
        self.lookup_table = self._lookup_table_from_tokens(vocabulary)
        self._record_vocabulary_size()

    def save_assets(self, dir_path: str) -> None:
        if self.input_vocabulary is not None:  # Keras keeps it in the config instead
            return super().save_assets(dir_path)
        terms = np.full(self.vocabulary_size(), self.oov_token.encode(), dtype=object)
        if self.lookup_table.size() > 0:
            keys, values = self.lookup_table.export()
            terms[values.numpy()] = keys.numpy()
        if self.mask_token is not None and self.output_mode == "int":
            terms[0] = self.mask_token.encode()
        # Decoded and written in text mode, as Keras writes it and will read it.
        text = b"\n".join(terms.tolist()).decode("utf-8")
        with open(tf.io.gfile.join(dir_path, "vocabulary.txt"), "w") as f:
            f.write(text)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextVectorization(keras.layers.TextVectorization):
    """``keras.layers.TextVectorization`` that saves and loads its vocabulary quickly.

    Keras saves the vocabulary twice, for this layer and for the ``StringLookup`` inside
    it, each time with a Python loop over every term: 5.6 s of the 6 s it took to export
    the default model, whose vocabulary holds about 800,000 n-grams; and it loads both
    copies (1.9 s). Here only the lookup saves and loads it, and writes the file (Keras's
    format, which Keras reads back) from numpy arrays.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookup_layer = _StringLookup.from_config(self._lookup_layer.get_config())

    def save_assets(self, dir_path: str) -> None:
        """Nothing: Keras saves the lookup inside this layer, vocabulary and all."""

    def load_assets(self, dir_path: str) -> None:
        """Nothing: Keras loads the lookup inside this layer, vocabulary and all."""

    def share_vocabulary(self, other: TextVectorization) -> None:
        """Look terms up in ``other``'s table (shared, read-only): a layer made like
        ``other`` then gives the same vectors, without ``set_vocabulary``'s Python pass over
        every term (4 s for the default model's 800,000 n-grams). ValueError if the two
        are configured differently (their saved configurations, names aside, differ)."""
        mine, theirs = (
            keras.saving.serialize_keras_object(
                {**layer.get_config(), "name": None, "vocabulary_size": None}
            )
            for layer in (self, other)
        )
        if mine != theirs or self._lookup_layer.output_mode == "tf_idf":
            raise ValueError(f"{self.name} and {other.name} differ: they cannot share a table")
        self._lookup_layer.lookup_table = other._lookup_layer.lookup_table
        self._lookup_layer._record_vocabulary_size()


def whitespace_split(texts: tf.Tensor) -> tf.RaggedTensor:
    """The ``"whitespace"`` split of ``TextVectorization``, as a callable."""
    return tf.strings.split(texts)


def as_string_tensor(texts: Texts) -> tf.Tensor:
    """A 1-D ``tf.string`` tensor from Arrow, NumPy, a list of str or a tensor."""
    if isinstance(texts, tf.Tensor):
        return tf.reshape(texts, [-1])
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = texts.to_numpy(zero_copy_only=False)
    array = np.asarray(texts, dtype=object).reshape(-1)
    return tf.constant(array, dtype=tf.string)


def fingerprint(texts: Texts) -> str:
    """A digest of ``texts``: of every text's UTF-8 bytes, in order (equal texts, equal
    digests, whatever container holds them; 0.05 s for 25,000 reviews)."""
    if isinstance(texts, tf.Tensor):
        values = texts.numpy().reshape(-1)
    elif isinstance(texts, (pa.Array, pa.ChunkedArray)):
        values = texts.to_numpy(zero_copy_only=False)
    else:
        values = np.asarray(texts, dtype=object).reshape(-1)
    digest = hashlib.sha256()
    for value in values:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
        digest.update(len(data).to_bytes(8, "little"))  # lengths: ["ab", "c"] != ["a", "bc"]
        digest.update(data)
    return digest.hexdigest()


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _count_terms(terms: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Distinct terms as (64-bit fingerprints, counts, the terms), in order of appearance."""
    hashes = tf.strings.to_hash_bucket_fast(terms, _HASH_BUCKETS)
    unique, index, counts = tf.unique_with_counts(hashes)
    first = tf.math.unsorted_segment_min(tf.range(tf.size(index)), index, tf.size(unique))
    return unique, counts, tf.gather(terms, first)


def build_vocabulary(
    texts: Texts,
    split: Callable[[tf.Tensor], tf.RaggedTensor],
    *,
    min_count: int = 2,
    max_tokens: int | None = None,
    chunk: int = 2500,
) -> tf.Tensor:
    """Terms of ``texts`` (cleaned again) seen ``min_count`` times or more, most frequent first.

    At most ``max_tokens`` terms when given. Ties keep the order of first appearance, so
    the same texts always give the same vocabulary. Terms are counted chunk by chunk by
    their fingerprints, which keeps memory to the distinct terms of each chunk.
    """
    texts = as_string_tensor(texts)

    def count(bounds: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return _count_terms(split(standardize(texts[bounds[0] : bounds[1]])).flat_values)

    with ThreadPoolExecutor(_threads()) as pool:
        parts = list(pool.map(count, _chunks(int(texts.shape[0]), chunk)))
    hashes, counts, terms = (tf.concat(list(p), axis=0) for p in zip(*parts, strict=True))
    del parts
    unique, index = tf.unique(hashes)
    counts = tf.math.unsorted_segment_sum(counts, index, tf.size(unique))
    first = tf.math.unsorted_segment_min(tf.range(tf.size(index)), index, tf.size(unique))
    keep = counts >= min_count
    first, counts = tf.boolean_mask(first, keep), tf.boolean_mask(counts, keep)
    order = tf.argsort(-counts, stable=True)
    if max_tokens:
        order = order[:max_tokens]
    return tf.gather(terms, tf.gather(first, order))


def vectorize(layer: Callable[[tf.Tensor], Any], texts: Texts, *, chunk: int = 2048) -> Any:
    """``layer`` applied to ``texts`` in chunks (two threads); chunks joined along axis 0.

    Sparse outputs are joined row-wise by offsetting their indices (cheaper than
    ``tf.sparse.concat``); dense outputs come back as a NumPy array.
    """
    texts = as_string_tensor(texts)
    n = int(texts.shape[0])
    if n == 0:  # TextVectorization fails on an empty batch; one empty text gives the shape
        probe = layer(tf.constant([""]))
        if isinstance(probe, tf.SparseTensor):
            empty = np.zeros((0, 2), dtype="int64")
            return tf.SparseTensor(empty, tf.zeros([0], probe.dtype), [0, probe.dense_shape[1]])
        return np.zeros((0, *probe.shape[1:]), dtype=probe.dtype.as_numpy_dtype)
    bounds = _chunks(n, chunk)
    with ThreadPoolExecutor(_threads()) as pool:
        parts = list(pool.map(lambda b: layer(texts[b[0] : b[1]]), bounds))
    if isinstance(parts[0], tf.SparseTensor):
        indices = tf.concat(
            [p.indices + [[start, 0]] for (start, _), p in zip(bounds, parts, strict=True)], 0
        )
        values = tf.concat([p.values for p in parts], 0)
        return tf.SparseTensor(indices, values, [n, int(parts[0].dense_shape[1])])
    return np.concatenate([keras.ops.convert_to_numpy(p) for p in parts])


def nb_log_ratios(x: tf.SparseTensor, labels: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """Naive Bayes log-count ratios r = log((p/|p|_1) / (q/|q|_1)) per feature column.

    p and q are the smoothed (``alpha``) feature sums over positive and negative rows.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.float64)
    rows, cols = x.indices.numpy().T
    values = x.values.numpy().astype(np.float64)
    width = int(x.dense_shape[1])
    p = alpha + np.bincount(cols, weights=values * labels[rows], minlength=width)
    q = alpha + np.bincount(cols, weights=values * (1.0 - labels[rows]), minlength=width)
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
