"""What the train stage accepts, declared once and without TensorFlow: its optimisers, metrics
and models, and each model's hyperparameters with their defaults and checks.

:mod:`lib.model.training` and :mod:`lib.model.models` build from these tables (keyed by the names
declared here), and :mod:`lib.model.train_checks` checks the train notebook's parameters against
them, so the runner can refuse a bad value before any kernel starts, in a process that
never imports TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lib.core.errors import ParameterError
from lib.core.params import check_choice, check_float, check_int, did_you_mean, not_allowed

# Optimiser name (the notebook's ``optimiser``) -> its class in ``keras.optimizers``.
OPTIMISER_CLASSES: dict[str, str] = {
    "adam": "Adam",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
    "adamw": "AdamW",
    "nadam": "Nadam",
}
OPTIMISERS: tuple[str, ...] = tuple(OPTIMISER_CLASSES)
METRICS: tuple[str, ...] = ("accuracy", "auc")

Check = Callable[[str, Any], Any]  # (name, value) -> the clean value, or ParameterError

# The registered model that runner promote acts on when none is named.
DEFAULT_MODEL_NAME = "imdb-sentiment"


def check_model_name(name: Any) -> str:
    """A registered model name: a non-empty string without ``/``, ``@`` or ``:``."""
    text = str(name or "").strip()
    if not text or any(c in text for c in "/@:"):
        raise ParameterError(
            "registered_model_name",
            f"{name!r} is not allowed: a non-empty name without '/', '@' or ':', "
            f"e.g. {DEFAULT_MODEL_NAME!r}",
        )
    return text


def _int(minimum: int) -> Check:
    return lambda name, value: check_int(name, value, minimum)


def _float(low: float | None, high: float | None = None, inclusive: bool = False) -> Check:
    return lambda name, value: check_float(name, value, low, high, inclusive)


def _fraction(high: float) -> Check:
    """A check for a number in [0, high)."""

    def check(name: str, value: Any) -> float:
        number = check_float(name, value, 0.0, high, inclusive=True)
        if number >= high:
            raise not_allowed(name, value, f"a number in [0, {high})")
        return number

    return check


# Model name -> its hyperparameters: name -> (default, check). The first model is the default.
MODEL_HPARAMS: dict[str, dict[str, tuple[Any, Check]]] = {
    "nbngram": {
        "ngrams": (3, _int(1)),  # word 1..n-grams of the whole review
        "tail": (20, _int(0)),  # last words that get their own n-gram features; 0: none
        "tail_ngrams": (2, _int(1)),  # 1..n-grams of the tail
        "min_count": (2, _int(1)),  # keep terms seen this often in the training texts
        "max_tokens": (0, _int(0)),  # cap on the vocabulary (most frequent); 0: no cap
        "alpha": (1.0, _float(0.0)),  # smoothing of the NB ratios
        "nb_scale": (0.05, _float(0.0)),  # NB ratio multiplier: sets the weights' step size
        "nb_prior": (0.0, _float(0.0, None, inclusive=True)),  # start from NB weights x this
        "dropout": (0.0, _fraction(1.0)),  # of the input features, in training
        "label_smoothing": (0.1, _fraction(0.5)),
    },
    "reference": {
        "max_tokens": (20000, _int(3)),
        "sequence_length": (256, _int(1)),
        "embedding_dim": (128, _int(1)),
        "hidden": (16, _int(1)),
        "label_smoothing": (0.0, _fraction(0.5)),
    },
}
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_HPARAMS)


def _check_name(model_name: str) -> str:
    return check_choice("model", model_name, MODEL_NAMES)


def default_hparams(model_name: str) -> dict[str, Any]:
    """The model's own hyperparameters with their defaults."""
    return {key: default for key, (default, _) in MODEL_HPARAMS[_check_name(model_name)].items()}


def check_model_params(model_name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """All hyperparameters of the model: defaults updated with checked ``hparams``.

    Raises ``ParameterError`` naming the parameter for an unknown model, an unknown
    hyperparameter (with the closest known names) or a value out of range.
    """
    spec = MODEL_HPARAMS[_check_name(model_name)]
    checked = default_hparams(model_name)
    for key, value in hparams.items():
        if key not in spec:
            raise ParameterError(
                str(key),
                f"not a hyperparameter of model {model_name!r}; {did_you_mean(key, spec)}",
            )
        checked[key] = spec[key][1](key, value)
    return checked
