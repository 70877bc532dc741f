"""Saving an exported model, loading it from wherever it lives, and labelling raw texts."""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from lib.core import gcs, paths, tf_runtime
from lib.core.errors import ModelError, first_line, output_faults
from lib.tracking import registry
from lib.tracking.runs import public_uri, resolve_tracking_uri

MODEL_FILE_SUFFIX = ".keras"


def save_model(model, path: str | Path) -> Path:
    """Save ``model`` in Keras's native format at ``path``, atomically (temp file, rename)."""
    path = Path(path)
    with output_faults("model folder", path.parent), paths.atomic_write(path) as tmp:
        model.save(tmp)
    return path


def _find_model_file(path: Path, origin: str) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.rglob(f"*{MODEL_FILE_SUFFIX}"))
        if found:
            return found[0]
        raise ModelError(
            f"no {MODEL_FILE_SUFFIX} model file under {origin}: pass the folder or run that "
            "the train stage exported the model to"
        )
    raise ModelError(
        f"model {origin} does not exist; pass a .keras file, a folder holding one, "
        "a runs:/<run_id>/model or models:/ URI, or a gs:// path"
    )


def local_model_file(uri: str, workdir: Path, tracking_uri: str | None = None) -> Path:
    """A local ``.keras`` file for a path, a ``gs://`` path or an MLflow model/artifact URI
    (fetched from the store ``tracking_uri``, else the runner's)."""
    return _find_model_file(fetch(uri, workdir, tracking_uri), uri)


def fetch(uri: str, workdir: Path, tracking_uri: str | None = None) -> Path:
    """What ``uri`` names, on this machine: a local path as it is (unchecked), a ``gs://``
    path or an MLflow model/artifact URI downloaded into ``workdir`` (from the store
    ``tracking_uri``, else the runner's)."""
    if gcs.is_gcs_uri(uri):
        target = workdir / Path(gcs.split_gcs_uri(uri)[1] or "model").name
        gcs.download(uri, target)
        return target
    if "://" in uri or uri.startswith(("runs:/", "models:/")):
        import mlflow

        # The store given, else the runner's ($MLFLOW_TRACKING_URI, else the project's
        # mlflow.db), whatever MLflow's process-wide setting or the working directory.
        store = resolve_tracking_uri(tracking_uri)
        if uri.startswith("models:/"):
            _check_registered(uri, store)  # an unknown name, version or alias: what exists
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(workdir), tracking_uri=store, registry_uri=store
            )
        except mlflow.exceptions.MlflowException as exc:
            raise ModelError(
                f"model {uri} could not be fetched from MLflow at {public_uri(store)}: "
                f"{first_line(exc)} (set MLFLOW_TRACKING_URI to the store that holds the run)"
            ) from None
        return Path(local)
    return paths.resolve(uri)


def _check_registered(uri: str, store: str) -> None:
    """ModelError (listing what exists) unless the registry holds what ``models:/name@alias``
    or ``models:/name/version`` names; other ``models:/`` URIs are left to MLflow."""
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        registry.resolve(name, alias=alias, tracking_uri=store)
    elif "/" in rest and rest.rsplit("/", 1)[1].isdigit():
        name, version = rest.rsplit("/", 1)
        registry.resolve(name, version=version, tracking_uri=store)


def load_model(uri: str, tracking_uri: str | None = None):
    """The Keras model at ``uri`` (it takes raw review strings); an MLflow URI is fetched
    from the store ``tracking_uri``, else the runner's."""
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        # Found first: a wrong path is reported before TensorFlow's import (seconds).
        path = local_model_file(uri, Path(tmp), tracking_uri)
        # The file to name, unless it is a download into the temporary folder.
        shown = None if path.is_relative_to(tmp) or str(path) == uri else path
        if path.suffix == MODEL_FILE_SUFFIX and not zipfile.is_zipfile(path):
            # Keras would say "File not found" of a .keras file that is not a zip archive.
            raise _not_a_model(uri, shown, "not a zip archive: cut short or overwritten")

        tf_runtime.start()  # TensorFlow's C++ start-up lines logged, not printed
        import keras

        import lib.model.models  # noqa: F401  (registers the model's custom layers and functions)

        try:
            return keras.models.load_model(path)
        except (ValueError, TypeError, OSError, zipfile.BadZipFile, zlib.error) as exc:
            # What Keras raises for a damaged archive or a file that is not its model.
            why = f"{type(exc).__name__}: {first_line(exc)[:200]}"
            raise _not_a_model(uri, shown, why) from None


def _not_a_model(uri: str, path: Path | None, why: str) -> ModelError:
    where = f" (file {path})" if path else ""
    return ModelError(
        f"model {uri}{where} is not a readable Keras model ({why}): pass a .keras file that "
        "the train stage exported, or export it again"
    )


def predict_texts(uri: str, texts: Sequence[str]) -> list[tuple[str, str, float]]:
    """``(text, "positive"|"negative", P(positive))`` for each raw review text."""
    import numpy as np

    model = load_model(uri)
    probabilities = np.asarray(model.predict(np.array(list(texts), dtype=object), verbose=0))
    probabilities = probabilities.reshape(len(texts), -1)[:, -1]
    return [
        (text, "positive" if p >= 0.5 else "negative", float(p))
        for text, p in zip(texts, probabilities, strict=True)
    ]
