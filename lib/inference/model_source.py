"""The model that scores a batch: ``model_uri`` resolved to the model loaded, its name and the
version used, and the scoring callable.

- ``models:/NAME@ALIAS``: the alias is resolved to its version first, and that version
  (``models:/NAME/VERSION``) is loaded: an alias moved while the job runs does not change
  what it scores with, and the version recorded is the one used.
- ``models:/NAME/VERSION``, or ``models:/NAME`` (``/latest``): its latest version.
- anything else :func:`lib.tracking.model_io.local_model_file` takes (a ``.keras`` file or a
  folder holding one, local or ``gs://``, a ``runs:/RUN/PATH`` URI): named by the URI as
  given, versioned by the file's content (``sha256:`` and 12 hex digits), so that a file
  exported again under the same name is a new version.

A name, version or alias that the registry lacks is one line listing what it has
(:mod:`lib.tracking.registry`). TensorFlow is imported only to load the model.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib.core import progress
from lib.core.errors import ModelError
from lib.tracking import model_io, registry

REGISTRY_SCHEME = registry.REGISTRY_SCHEME
_DIGEST_SHOWN = 12  # hex digits of a file's sha256 in its version


@dataclass(frozen=True)
class ModelRef:
    """What ``uri`` names: the model's ``name``, the ``version`` used, and ``source``, what
    is loaded (``models:/NAME/VERSION`` for a registered model, else a local file)."""

    uri: str
    name: str
    version: str
    source: str
    alias: str | None = None

    def described(self) -> dict[str, str]:
        """The model as the run records it (parameters): URI, name, version, alias."""
        out = {"model_uri": self.uri, "model_name": self.name, "model_version": self.version}
        if self.alias:
            out["model_alias"] = self.alias
        return out


def _registered(uri: str, tracking_uri: str | None) -> ModelRef:
    name, alias, found = registry.resolve_uri(uri, tracking_uri)
    version = str(found.version)
    return ModelRef(uri, name, version, f"{REGISTRY_SCHEME}{name}/{version}", alias)


def file_version(path: str | Path) -> str:
    """A model file's version: ``sha256:`` and the first hex digits of its content's digest."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return f"sha256:{digest[:_DIGEST_SHOWN]}"


def resolve(model_uri: str, workdir: Path, tracking_uri: str | None = None) -> ModelRef:
    """The model that ``model_uri`` names now, without loading it: a registered model's
    version from the registry (store ``tracking_uri``, else the runner's), else the file,
    fetched into ``workdir`` when it is not local, and its content's version."""
    if model_uri.startswith(REGISTRY_SCHEME):
        return _registered(model_uri, tracking_uri)
    path = model_io.local_model_file(model_uri, workdir, tracking_uri)
    return ModelRef(model_uri, model_uri, file_version(path), str(path))


@dataclass
class LoadedModel:
    """A Keras model (raw review strings in, P(positive) out) and what it is."""

    ref: ModelRef
    keras_model: Any
    # Tokens the model reads of a review (None: all of it), and the layer that cuts there.
    sequence_length: int | None = None
    reader: Any = None

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def version(self) -> str:
        return self.ref.version

    def described(self) -> dict[str, Any]:
        """:meth:`ModelRef.described`, and the tokens it reads when it reads no more."""
        out: dict[str, Any] = self.ref.described()
        if self.sequence_length:
            out["model_sequence_length"] = self.sequence_length
        return out


def _sequence_reader(keras_model: Any) -> tuple[Any, int | None]:
    """The text layer that cuts each review at a number of tokens, and that number (a
    ``TextVectorization`` in ``int`` mode with ``output_sequence_length``), else (None,
    None). Its private attributes: ``get_config`` would copy the whole vocabulary."""
    import keras

    layers = list(keras_model.layers)
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, keras.layers.TextVectorization):
            length = getattr(layer, "_output_sequence_length", None)
            if getattr(layer, "_output_mode", None) == "int" and length:
                return layer, int(length)
        layers.extend(getattr(layer, "layers", []))
    return None, None


def load(model_uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """The model ``model_uri`` names, loaded, with its name and the version used."""
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        ref = resolve(model_uri, Path(tmp), tracking_uri)
        try:
            keras_model = model_io.load_model(ref.source, tracking_uri)
        except ModelError as exc:
            if ref.source.startswith(REGISTRY_SCHEME):
                raise
            # A file fetched into the temporary folder is named by the URI it came from.
            raise ModelError(str(exc).replace(ref.source, model_uri)) from None
    reader, length = _sequence_reader(keras_model)
    return LoadedModel(ref, keras_model, length, reader)


class Scorer:
    """``texts -> P(positive)`` with the model's fastest call, ``predict_on_batch``, on
    slices of ``batch_size`` (Keras's ``predict`` builds a data pipeline on every call).
    Slices of one size are traced once: keep ``batch_size`` a divisor of the chunks'.

    A review longer than the model reads is scored on what it reads: counted in
    :attr:`truncated`, and said once, as a notice, the first time one comes."""

    def __init__(self, model: LoadedModel, batch_size: int) -> None:
        self.model = model.keras_model
        self.batch_size = int(batch_size)
        self.sequence_length = model.sequence_length
        self.truncated = 0
        self._lengths = _token_counter(model.reader) if model.reader is not None else None

    def __call__(self, texts: list[str]) -> np.ndarray:
        probabilities = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            batch = np.array(texts[start : start + self.batch_size], dtype=object)
            out = np.asarray(self.model.predict_on_batch(batch))
            probabilities[start : start + len(batch)] = out.reshape(len(batch), -1)[:, -1]
            if self._lengths is not None:
                self._count_long(batch)
        return probabilities

    def _count_long(self, batch: np.ndarray) -> None:
        long = int((np.asarray(self._lengths(batch)) > self.sequence_length).sum())
        if long and not self.truncated:
            progress.emit(
                progress.notice_event(
                    f"reviews longer than the model reads ({self.sequence_length} tokens) "
                    f"are scored on their first {self.sequence_length}; they are counted "
                    "as truncated"
                )
            )
        self.truncated += long


def _token_counter(reader: Any):
    """Tokens per text as ``reader`` cuts them (its own standardisation and split), traced
    once for any number of texts."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lengths(texts):
        return reader._preprocess(texts).row_lengths()

    return lengths


def scorer(model: LoadedModel, batch_size: int) -> Scorer:
    """The scoring callable of :func:`lib.inference.batch.score_files` for ``model``."""
    return Scorer(model, batch_size)
