"""Why a model decided: the contribution of each word of a review.

- The default model (``nbngram``) is linear in its n-gram features: its logit is
  ``bias + sum_f x_f * w_f`` over the features present (``x_f = 1``, multi-hot). Each feature's
  term is shared equally among the occurrences of the n-grams that set it, and each
  occurrence's share equally among the words it spans (tail n-grams and the out-of-vocabulary
  feature included), so that the words' contributions plus the bias equal the logit,
  exactly (in float32 arithmetic). Cost: one vocabulary look-up and no model call: P(positive)
  is the sigmoid of that logit (the model's output checked to be so once per explainer).
- Any other model (``reference``, or a model whose layers this does not know): each word's
  contribution is the change in P(positive) when it is left out (``p(review) - p(review
  without the word)``). Cost: the model called on ``n + 1`` reviews for a review of ``n``
  words (in batches of :data:`LEAVE_ONE_OUT_BATCH`).

:class:`Explainer` reads a model's weights once; calling it explains one review. The model is
called eagerly (``model(x)``), never through Keras's ``predict`` functions: each model's
predict function is a ``tf.function`` whose tracing TensorFlow counts under one key for every
Keras model of the process, so a notebook that has trained, evaluated and exported a few models
was warned of "retracing" by the explainer's first call, whatever the shapes it used.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lib.data.cleaning import tf_clean
from lib.data.word_spans import word_spans
from lib.model.explanation import EXACT, LEAVE_ONE_OUT, Explanation
from lib.model.features import TAIL_MARK, NgramSplit
from lib.model.models import NBLinear

LEAVE_ONE_OUT_BATCH = 256


def _layers(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included."""
    found, queue = [], list(getattr(model, "layers", []))
    while queue:
        layer = queue.pop(0)
        found.append(layer)
        queue.extend(getattr(layer, "layers", []))
    return found


def _ngram_parts(model: Any) -> tuple[Any, NBLinear] | None:
    """The n-gram vectoriser (multi-hot) and the NB linear layer of an ``nbngram`` model,
    else None. Private attributes: ``get_config`` would copy the whole vocabulary."""
    layers = _layers(model)
    linear = [layer for layer in layers if isinstance(layer, NBLinear)]
    vectorisers = [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.TextVectorization)
        and isinstance(getattr(layer, "_split", None), NgramSplit)
        and getattr(layer, "_output_mode", None) == "multi_hot"
    ]
    if len(linear) != 1 or len(vectorisers) != 1:
        return None
    return vectorisers[0], linear[0]


def _sigmoid(logit: float) -> float:
    """The logistic function, without the overflow of ``exp`` for a logit far below 0."""
    return float(0.5 * (1.0 + np.tanh(0.5 * logit)))


def _terms(words: list[str], split: NgramSplit) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``NgramSplit``'s terms of one review's words, with each term's first word and width."""
    terms, starts, widths = [], [], []
    spans = [(0, words, "")]
    if split.tail > 0 and split.tail_ngrams > 0:
        first = max(len(words) - split.tail, 0)
        spans.append((first, words[first:], TAIL_MARK))
    for offset, part, mark in spans:
        most = split.ngrams if not mark else split.tail_ngrams
        for width in range(1, most + 1):
            for i in range(len(part) - width + 1):
                terms.append(mark + " ".join(part[i : i + width]))
                starts.append(offset + i)
                widths.append(width)
    return terms, np.asarray(starts, dtype=np.int64), np.asarray(widths, dtype=np.int64)


class Explainer:
    """Explains reviews with ``model`` (raw review strings in, P(positive) out): exactly
    for an ``nbngram`` model, else by leaving each word out."""

    def __init__(self, model: Any) -> None:
        self.model = model
        parts = _ngram_parts(model)
        self.method = EXACT if parts is not None else LEAVE_ONE_OUT
        if parts is not None:
            vectoriser, linear = parts
            self._split: NgramSplit = vectoriser._split
            self._table = vectoriser._lookup_layer.lookup_table
            # NBLinear.call's own arithmetic, in float32: coef = r * scale * (w + prior).
            scale = np.float32(linear.scale)
            ratios = np.asarray(linear.ratios.numpy(), dtype=np.float32).reshape(-1)
            kernel = np.asarray(linear.kernel.numpy(), dtype=np.float32).reshape(-1)
            self._coef = ratios * (scale * (kernel + np.float32(linear.prior)))
            self._bias = float(scale * np.asarray(linear.bias.numpy(), np.float32)[0])
            if not self._is_linear():
                self.method = LEAVE_ONE_OUT

    def _is_linear(self) -> bool:
        """Whether the model's output is the sigmoid of the linear layer's logit (and not,
        say, a model built around one that changes it), on reviews of known words."""
        probes = [" ".join(self._known_words(8)), ""]
        expected = [_sigmoid(self._exact(p.split()).sum() + self._bias) for p in probes]
        return bool(np.allclose(self.probabilities(probes), expected, rtol=1e-4, atol=1e-5))

    def _known_words(self, count: int) -> list[str]:
        """Words of the vocabulary (its first, most frequent, unigrams)."""
        terms = [t.decode() for t in self._table.export()[0][: 50 * count].numpy().tolist()]
        return [t for t in terms if t and " " not in t and not t.startswith(TAIL_MARK)][:count]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """P(positive) of each text: the model called eagerly (nothing traced, whatever the
        shapes) on :data:`LEAVE_ONE_OUT_BATCH` texts at a time."""
        found = [
            np.asarray(self.model(tf.constant(texts[i : i + LEAVE_ONE_OUT_BATCH]), training=False))
            for i in range(0, len(texts), LEAVE_ONE_OUT_BATCH)
        ]
        return np.concatenate(found).reshape(len(texts), -1)[:, -1].astype(np.float64)

    def __call__(self, text: str) -> Explanation:
        """``text`` explained: one contribution per word the model reads."""
        cleaned = tf_clean(tf.constant([text]))[0].numpy().decode("utf-8")
        placed = word_spans(text, cleaned)
        if self.method == EXACT:
            contributions = self._exact(placed.words)
            bias: float | None = self._bias
            probability = _sigmoid(contributions.sum() + bias)
        else:
            contributions, probability = self._leave_one_out(text, placed.words)
            bias = None
        return Explanation(
            text, placed.words, placed.spans, contributions, probability, self.method, bias
        )

    def _feature_ids(self, words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The feature column of each n-gram of ``words`` (the out-of-vocabulary column for
        an unknown one), with each n-gram's first word and width."""
        terms, starts, widths = _terms(words, self._split)
        if not terms:
            return np.zeros(0, np.int64), starts, widths
        ids = self._table.lookup(tf.constant(terms, dtype=tf.string)).numpy().astype(np.int64)
        return ids, starts, widths

    def _exact(self, words: list[str]) -> np.ndarray:
        ids, starts, widths = self._feature_ids(words)
        contributions = np.zeros(len(words), dtype=np.float64)
        if not len(ids):
            return contributions
        # A multi-hot feature counts once however many n-grams set it: its term is shared
        # among them, then each n-gram's share among its words.
        occurrences = np.bincount(ids)[ids]
        shares = self._coef[ids].astype(np.float64) / occurrences / widths
        for width in np.unique(widths).tolist():
            chosen = widths == width
            for step in range(width):
                np.add.at(contributions, starts[chosen] + step, shares[chosen])
        return contributions

    def _leave_one_out(self, text: str, words: list[str]) -> tuple[np.ndarray, float]:
        # Cleaning is idempotent: the cleaned words less one are that review without it.
        texts = [text] + [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
        probabilities = self.probabilities(texts)
        return probabilities[0] - probabilities[1:], float(probabilities[0])


def explain(model: Any, text: str) -> Explanation:
    """``text`` explained with ``model`` (see :class:`Explainer`, which reads the model's
    weights once: keep one to explain many reviews)."""
    return Explainer(model)(text)
