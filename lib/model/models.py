"""The sentiment models: their hyperparameters, how they are built, and their export.

Each model is a ``ModelBundle``: a vectorising layer (cleaning + tokenising, fitted on the
training texts), a ``core`` Keras model trained with ``fit`` on the vectors (the texts are
vectorised once, outside ``fit``, which is much faster), and ``export_model()``, which
chains the two into one Keras model that takes raw review strings and returns P(positive).

Models (``MODEL_NAMES``, declared with their hyperparameters in :mod:`lib.model.train_spec`; the
first is the default):

- ``nbngram``: logistic regression on binary word 1-3-gram features scaled by their naive
  Bayes log-count ratios (NBSVM, Wang & Manning 2012), plus separate 1-2-gram features of
  the last 20 words (the verdict usually closes a review), trained with Adam and label
  smoothing. ``bench/model_search.py`` documents how it and its defaults were chosen.
- ``reference``: the benchmark baseline, TextVectorization(20000 tokens, 256 steps) ->
  trainable Embedding(128) -> GlobalAveragePooling1D -> Dense(16, relu) -> Dense(1).

With the ``data_cache`` speed trick (:mod:`lib.core.speedups`, on by default), a process keeps
the last vectoriser it fitted, keyed by the model, the hyperparameters that determine the
vectoriser and the training texts' fingerprint, with the vectors it gave for the last three
texts (training, validation, test) and the NB ratios: the next trial in the same kernel
builds its model in no time, with the very same vectors, so the very same weights.

Importing this module registers the custom objects that ``keras.models.load_model`` needs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lib.core import speedups
from lib.core.params import check_choice
from lib.model import features

# The models and their hyperparameters are declared without TensorFlow (lib.model.train_spec);
# every table below is keyed by MODEL_NAMES.
from lib.model.train_spec import MODEL_NAMES, check_model_params
from lib.model.train_spec import default_hparams as default_hparams  # part of this API

# Training defaults for each model (the notebook's optimiser, learning_rate, epochs, bs).
_TRAINING: dict[str, dict[str, Any]] = {
    "nbngram": {"optimiser": "adam", "learning_rate": 0.02, "epochs": 5, "bs": 256},
    "reference": {"optimiser": "adam", "learning_rate": 0.001, "epochs": 3, "bs": 32},
}

# Learning rate used when the notebook gives none, per model and optimiser; optimisers
# not listed use Keras' default. The NB model's weights are scaled by its NB ratios, so
# its rates are larger than usual (measured in bench/model_search.py).
_LEARNING_RATES: dict[str, dict[str, float]] = {
    "nbngram": {"adam": 0.02, "adamw": 0.02, "nadam": 0.02, "rmsprop": 0.3, "sgd": 1000.0},
    "reference": {"adam": 0.001, "adamw": 0.001, "nadam": 0.001, "rmsprop": 0.001},
}


def default_train_params(model_name: str) -> dict[str, Any]:
    """Default ``optimiser``, ``learning_rate``, ``epochs`` and ``bs`` for the model."""
    return dict(_TRAINING[check_choice("model", model_name, MODEL_NAMES)])


@keras.saving.register_keras_serializable(package=features.PACKAGE)
class NBLinear(keras.layers.Layer):
    """Logistic regression on sparse features scaled by fixed naive Bayes ratios.

    logit = sum_i x_i * r_i * scale * (w_i + prior) + b, with r the NB log-count ratios
    (a non-trainable weight, set with ``set_ratios``) and w trained from zero. ``scale``
    sets how far one optimiser step moves a coefficient, feature by feature in proportion
    to |r_i|; ``prior`` > 0 starts from the (scaled) naive Bayes solution instead of 0.
    ``dropout`` drops input features at random in training.
    """

    def __init__(
        self,
        scale: float = 0.05,
        prior: float = 0.0,
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scale, self.prior, self.dropout, self.seed = scale, prior, dropout, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        width = int(input_shape[-1])
        self.ratios = self.add_weight(
            name="ratios", shape=(width, 1), initializer="zeros", trainable=False
        )
        self.kernel = self.add_weight(name="kernel", shape=(width, 1), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")

    def set_ratios(self, ratios: np.ndarray) -> None:
        self.ratios.assign(np.asarray(ratios, dtype="float32").reshape(-1, 1))

    def call(self, inputs: Any, training: bool = False) -> tf.Tensor:
        coef = self.ratios * (self.scale * (self.kernel + self.prior))
        # The bias is scaled too, so that plain SGD can use the large rate the weights need.
        bias = self.scale * self.bias
        if not isinstance(inputs, tf.SparseTensor):
            return keras.ops.matmul(inputs, coef) + bias
        if training and self.dropout > 0:
            keep = keras.random.uniform(tf.shape(inputs.values), seed=self.seed_generator)
            inputs = tf.sparse.retain(inputs, keep >= self.dropout)
            inputs = inputs.with_values(inputs.values / (1.0 - self.dropout))
        return tf.sparse.sparse_dense_matmul(inputs, coef) + bias

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(scale=self.scale, prior=self.prior, dropout=self.dropout, seed=self.seed)
        return config


# The hyperparameters that determine each model's vectoriser: its vocabulary and output.
_VECTORISER_HPARAMS: dict[str, tuple[str, ...]] = {
    "nbngram": ("ngrams", "tail", "tail_ngrams", "min_count", "max_tokens"),
    "reference": ("max_tokens", "sequence_length"),
}
_KEPT_VECTORS = 3  # the training texts', the validation texts' and the test texts'


@dataclass
class _Fitted:
    """A vectoriser fitted on training texts, with what it computed from them, kept by the
    ``data_cache`` speed trick (:mod:`lib.core.speedups`) for the next model built from the same
    texts and vectoriser hyperparameters: its ``layer`` (never part of a model: each model
    gets a new layer that shares its vocabulary), the vectors of the last texts it
    vectorised (by the texts' fingerprint) and the NB ratios of the last labels."""

    layer: features.TextVectorization
    vectors: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    ratios: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)

    def vectorize(self, texts: features.Texts) -> Any:
        key = features.fingerprint(texts)
        if key not in self.vectors:
            while len(self.vectors) >= _KEPT_VECTORS:
                self.vectors.popitem(last=False)
            self.vectors[key] = features.vectorize(self.layer, texts)
        self.vectors.move_to_end(key)
        return self.vectors[key]

    def nb_ratios(self, texts: features.Texts, labels: np.ndarray, alpha: float) -> np.ndarray:
        key = (hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest(), alpha)
        if key not in self.ratios:
            self.ratios.clear()
            self.ratios[key] = features.nb_log_ratios(self.vectorize(texts), labels, alpha=alpha)
        return self.ratios[key]


_FITTED: speedups.Memo[_Fitted] = speedups.Memo("models.vectoriser", size=1)


@dataclass
class ModelBundle:
    """A model in two parts: ``vectorizer`` (text -> vectors) and ``core`` (vectors -> P)."""

    name: str
    hparams: dict[str, Any]
    vectorizer: keras.layers.TextVectorization
    core: keras.Model
    loss: keras.losses.Loss
    learning_rates: dict[str, float] = field(default_factory=dict)
    # (texts, vectors) when build_model already vectorised the training texts.
    train_cache: tuple[Any, Any] | None = field(default=None, repr=False)
    # With the data_cache trick: the kept vectoriser, which vectorises for this model.
    fitted: _Fitted | None = field(default=None, repr=False)

    def vectorize(self, texts: features.Texts) -> Any:
        """Cleaned or raw texts -> what ``core`` takes (a ``tf.SparseTensor`` or ids).

        The very texts object given to ``build_model`` comes back from a cache, once; with
        the ``data_cache`` trick, the last few texts vectorised come back from its cache.
        """
        if self.fitted is not None:
            return self.fitted.vectorize(texts)
        if self.train_cache is not None and texts is self.train_cache[0]:
            vectors, self.train_cache = self.train_cache[1], None
            return vectors
        return features.vectorize(self.vectorizer, texts)

    def export_model(self) -> keras.Model:
        """Raw review strings in (shape (None,)), P(positive) out (shape (None, 1))."""
        text = keras.Input(shape=(), dtype="string", name="text")
        return keras.Model(text, self.core(self.vectorizer(text)), name=f"{self.name}_text")


def _nbngram_layer(hp: dict[str, Any]) -> features.TextVectorization:
    return features.TextVectorization(
        standardize=features.standardize,
        split=features.NgramSplit(hp["ngrams"], hp["tail"], hp["tail_ngrams"]),
        output_mode="multi_hot",
        sparse=True,
        name="ngrams",
    )


def _reference_layer(hp: dict[str, Any]) -> features.TextVectorization:
    return features.TextVectorization(
        max_tokens=hp["max_tokens"],
        standardize=features.standardize,
        output_mode="int",
        output_sequence_length=hp["sequence_length"],
        name="tokens",
    )


_LAYERS = {"nbngram": _nbngram_layer, "reference": _reference_layer}


def _fit(model_name: str, texts: Any, hp: dict[str, Any]) -> features.TextVectorization:
    """The model's vectorising layer with its vocabulary from ``texts``."""
    layer = _LAYERS[model_name](hp)
    if model_name == "nbngram":
        split = features.NgramSplit(hp["ngrams"], hp["tail"], hp["tail_ngrams"])
        vocabulary = features.build_vocabulary(
            texts, split, min_count=hp["min_count"], max_tokens=hp["max_tokens"] or None
        )
    else:  # same vocabulary as TextVectorization.adapt (the most frequent tokens), faster
        vocabulary = features.build_vocabulary(
            texts, features.whitespace_split, min_count=1, max_tokens=hp["max_tokens"] - 2
        )
    layer.set_vocabulary(vocabulary)
    return layer


def _vectoriser(
    model_name: str, texts: Any, hp: dict[str, Any]
) -> tuple[features.TextVectorization, _Fitted | None]:
    """A new vectorising layer fitted on ``texts``, and the kept fit it shares (None when
    the ``data_cache`` trick is off: the layer is then fitted here)."""
    if not speedups.enabled("data_cache"):
        return _fit(model_name, texts, hp), None
    determined_by = tuple(hp[name] for name in _VECTORISER_HPARAMS[model_name])
    key = (model_name, determined_by, features.fingerprint(texts))
    fitted = _FITTED.get(key, lambda: _Fitted(_fit(model_name, texts, hp)))
    layer = _LAYERS[model_name](hp)
    layer.share_vocabulary(fitted.layer)
    return layer, fitted


def _nbngram(texts: Any, labels: np.ndarray, seed: int, hp: dict[str, Any]) -> ModelBundle:
    vectorizer, fitted = _vectoriser("nbngram", texts, hp)
    if fitted is None:
        vectors = features.vectorize(vectorizer, texts)
        ratios = features.nb_log_ratios(vectors, labels, alpha=hp["alpha"])
        train_cache = (texts, vectors)
    else:
        ratios, train_cache = fitted.nb_ratios(texts, labels, hp["alpha"]), None
    width = vectorizer.vocabulary_size()
    nb = NBLinear(hp["nb_scale"], hp["nb_prior"], hp["dropout"], seed=seed, name="nb_linear")
    inputs = keras.Input(shape=(width,), sparse=True, name="ngrams")
    core = keras.Model(inputs, keras.layers.Activation("sigmoid")(nb(inputs)), name="nbngram")
    nb.set_ratios(ratios)
    loss = keras.losses.BinaryCrossentropy(label_smoothing=hp["label_smoothing"])
    rates = _LEARNING_RATES["nbngram"]
    return ModelBundle("nbngram", hp, vectorizer, core, loss, rates, train_cache, fitted)


def _reference(texts: Any, labels: np.ndarray, seed: int, hp: dict[str, Any]) -> ModelBundle:
    vectorizer, fitted = _vectoriser("reference", texts, hp)
    inputs = keras.Input(shape=(hp["sequence_length"],), dtype="int64", name="tokens")
    x = keras.layers.Embedding(hp["max_tokens"], hp["embedding_dim"])(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(hp["hidden"], activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    core = keras.Model(inputs, outputs, name="reference")
    loss = keras.losses.BinaryCrossentropy(label_smoothing=hp["label_smoothing"])
    rates = _LEARNING_RATES["reference"]
    return ModelBundle("reference", hp, vectorizer, core, loss, rates, fitted=fitted)


_BUILDERS = {"nbngram": _nbngram, "reference": _reference}


def build_model(
    model_name: str, train_texts: features.Texts, train_labels: Any, *, seed: int, **hparams: Any
) -> ModelBundle:
    """A new, untrained model whose vocabulary (and NB ratios) come from the training texts.

    ``train_texts``: cleaned texts (Arrow string array, NumPy array of str or list of str);
    ``train_labels``: 0/1 per text. ``hparams`` override ``default_hparams(model_name)``.
    """
    hp = check_model_params(model_name, hparams)
    labels = np.asarray(train_labels).reshape(-1)
    if len(labels) != len(train_texts):
        raise ValueError(f"{len(train_texts)} texts but {len(labels)} labels")
    keras.utils.set_random_seed(seed)  # the core's initial weights
    return _BUILDERS[model_name](train_texts, labels, seed, hp)
