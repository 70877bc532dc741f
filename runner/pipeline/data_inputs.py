"""What a stage's data inputs are now, by the kind its record declares
(:class:`runner.stages.DataInput`): the digest its stamp records, and what a message shows.

- ``raw folders``: the review files prep reads (:meth:`FileDigests.raw_data`);
- ``data set``: a processed data set's files (:meth:`FileDigests.processed_data`);
- ``reviews``: a file of reviews, or a folder searched recursively as infer reads it; local
  by content, on ``gs://`` by the content hashes the store keeps (nothing is downloaded);
- ``model``: a model URI. A local ``.keras`` file (a folder: the file in it that loading
  takes) by content, ``gs://`` by the store's hashes; ``models:/NAME@ALIAS`` (and
  ``models:/NAME``, ``models:/NAME/VERSION``) by the version the registry gives it now, as
  infer resolves it (:func:`lib.inference.model_source.resolve`); ``runs:/RUN_ID/...`` by the
  URI (a run's artifacts do not change); another URI by itself.

Only a registry lookup imports MLflow (the store is asked: an alias moves). An input that
cannot be read now (a tracking store or a bucket that does not answer, an alias that is not
there) raises :class:`Unresolved`: ``status`` says so in the stage's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lib.core import gcs, paths
from lib.core.errors import ModelError, UserError
from lib.core.params import as_list
from lib.data import review_files
from lib.inference import model_source
from lib.tracking import model_io, runs, store_check
from runner.pipeline.digests import FileDigests, of_entries, of_text
from runner.stages import DataInput, Stage, get_parameter

RUN_SCHEME = "runs:/"
TRACKING_URI_PARAMETER = "mlflow_tracking_uri"  # a tracked stage's store (None: the default)
# A tracking server that does not answer is reported within this time (the runner's check
# waits 30 s before a stage runs; `status` should not).
STORE_DEADLINE_S = 5.0


class Unresolved(UserError):
    """A data input that cannot be read now; ``str()`` names it and why."""


def seen(data: DataInput, value: Any, files: FileDigests, params: Mapping[str, Any]):
    """``{"what": ..., "digest": ..., "shown": ...}`` of input ``data`` whose parameter
    is ``value``, ``params`` being the stage's notebook parameters (its tracking store)."""
    shown = None
    if data.kind == "raw folders":
        digest = files.raw_data(as_list(data.parameter, value))
    elif data.kind == "data set":
        digest = files.processed_data(value)
    elif data.kind == "reviews":
        digest = reviews(value, files)
    elif data.kind == "model":
        digest, shown = model(str(value), files, get_parameter(params, TRACKING_URI_PARAMETER))
    else:
        raise ValueError(f"unknown kind of data input {data.kind!r} ({data.what})")
    return {"what": data.what, "digest": digest, **({"shown": shown} if shown else {})}


def of_stage(stage: Stage, resolved: Mapping[str, Any], given: Mapping[str, Any], files):
    """The stage's data input (``{}`` if none) and its other inputs (by ``what``), read now;
    ``resolved``: the parameters its stamp records, ``given``: those its notebook gets."""
    data = seen(stage.data, stage.data_path(resolved), files, given) if stage.data else {}
    others = {}
    for other in stage.also_reads:
        entry = seen(other, get_parameter(resolved, other.parameter), files, given)
        others[entry.pop("what")] = entry
    return data, others


def reviews(path: Any, files: FileDigests) -> str | None:
    """The digest of a review file or folder (every file that infer may read in it, by its
    path in the folder and its content), or None when there is nothing there."""
    name = str(path)
    if gcs.is_gcs_uri(name):
        return objects(name)
    local = paths.resolve(name)
    if local.is_dir():
        return of_entries((f, files.file(local / f)) for f in review_files.listing(local))
    return files.maybe_file(local)


def objects(gs_uri: str) -> str | None:
    """The digest of the object or folder ``gs_uri`` from the content hashes the store
    keeps, or None when there is nothing there."""
    hashes = gcs.content_hashes(gs_uri)
    return of_entries(hashes.items()) if hashes else None


def model(uri: str, files: FileDigests, tracking_uri: str | None) -> tuple[str | None, str | None]:
    """The digest of the model that ``uri`` names now, and what to show of it (a
    registered model's version, a run's id), per the kinds in the module's docstring."""
    if uri.startswith(model_source.REGISTRY_SCHEME):
        ref = registered(uri, tracking_uri)
        return of_text(ref.source), f"version {ref.version}"  # source: models:/NAME/VERSION
    if uri.startswith(RUN_SCHEME):
        run_id = uri[len(RUN_SCHEME) :].strip("/").partition("/")[0]
        return of_text(uri), f"run {run_id}"
    if gcs.is_gcs_uri(uri):
        return objects(uri), None
    if "://" in uri:
        return of_text(uri), None
    path = paths.resolve(uri)
    if path.is_dir():
        found = sorted(path.rglob(f"*{model_io.MODEL_FILE_SUFFIX}"))  # the one loading takes
        return (files.maybe_file(found[0]) if found else None), None
    return files.maybe_file(path), None


def registered(uri: str, tracking_uri: str | None) -> model_source.ModelRef:
    """The registered version that the ``models:/`` URI ``uri`` names now, asked of the
    tracking store; Unresolved (one line) when the store does not answer within
    :data:`STORE_DEADLINE_S` or holds no such model, version or alias."""
    store = runs.resolve_tracking_uri(tracking_uri)
    try:
        db = paths.sqlite_path(store)
        if db is not None and not db.is_file():  # not created by asking
            raise ModelError(f"the MLflow store {store} does not exist yet")
        store_check.check_store(store, deadline_s=STORE_DEADLINE_S)
        # A registry URI is resolved without fetching a file: no working folder is used.
        return model_source.resolve(uri, Path(), store)
    except UserError as exc:
        raise Unresolved(f"cannot resolve {uri}: {exc}") from None
