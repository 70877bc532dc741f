"""What a run was made of, recorded when it starts, so that two runs can be compared later.

Each train run, tune parent run (and its trials, which are train runs) and batch-scoring
run carries the tags of :func:`run_tags`: ``stage`` (the stage's name), ``git_commit`` and
``git_dirty`` (absent outside a git checkout) and ``data_fingerprint`` (the processed data
set's, from its ``manifest.json``; absent when unknown). One artifact,
:data:`ENVIRONMENT_ARTIFACT` (:func:`environment`), holds Python, the installed versions of
the packages that the training role's lock pins, TensorFlow and the GPU it sees, the
machine's CPU count and memory, and the sha256 of each project module of the notebook's code
closure (:mod:`lib.core.code_deps`, as the pipeline's stamps follow it), so that code can be
compared without git history or with a dirty tree.

Only names, versions, digests, paths relative to the project root and the machine's figures
are recorded: never an environment variable's value, so never a secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from lib.core import code_deps, git, paths
from lib.core.errors import first_line
from lib.core.pins import TRAIN_LOCK, normalized, read_lock
from lib.tracking.registry import DATA_FINGERPRINT_TAG, GIT_COMMIT_TAG
from lib.tracking.runs import server_errors

log = logging.getLogger(__name__)

STAGE_TAG = "stage"
GIT_DIRTY_TAG = "git_dirty"
ENVIRONMENT_ARTIFACT = "provenance/environment.json"
SCHEMA = 1


def data_fingerprint(data_path: str | os.PathLike[str] | None) -> str | None:
    """The fingerprint that prep wrote in the processed data set's manifest, None when
    ``data_path`` is not a readable data set (the run itself says why, later)."""
    if not data_path:
        return None
    # Here, not at the top: lib.data.prep imports pyarrow, which a tune's parent needs not.
    from lib.data import prep

    try:
        return prep.read_manifest(paths.resolve(data_path)).get("fingerprint") or None
    except (OSError, ValueError, AttributeError):
        return None


def run_tags(
    stage: str, data_path: str | os.PathLike[str] | None = None, fingerprint: str | None = None
) -> dict[str, str]:
    """The tags a run of ``stage`` starts with: the stage, the git commit and whether the
    tree is dirty (both absent outside a checkout), and the data set's fingerprint
    (``fingerprint``, else the one of the data set at ``data_path``; absent when unknown)."""
    tags = {STAGE_TAG: stage}
    commit = git.head_commit()
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        dirty = git.tree_dirty()
        if dirty is not None:
            tags[GIT_DIRTY_TAG] = "true" if dirty else "false"
    fingerprint = fingerprint or data_fingerprint(data_path)
    if fingerprint:
        tags[DATA_FINGERPRINT_TAG] = fingerprint
    return tags


def _installed() -> dict[str, str]:
    """Every installed distribution's version by normalised name, the first on ``sys.path``
    winning (as an import does)."""
    installed: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, or gone
            continue
        for name in names:
            # A wheel's ``NAME-VERSION.dist-info`` (NAME escaped: no "-" in it) says both without
            # opening its METADATA: 0.3 s saved for a run's 200 packages.
            stem = name.removesuffix(".dist-info")
            if stem != name and stem.count("-") == 1:
                project, version = stem.split("-")
                installed.setdefault(normalized(project), version)
    return installed


def installed_versions(lock: Path | None = None) -> dict[str, str | None]:
    """The installed version of each package ``lock`` pins (None: not installed), by its
    normalised name; every installed package when the lock is missing."""
    installed = _installed()
    lock = lock or paths.project_root() / TRAIN_LOCK
    if not lock.is_file():
        log.warning("%s is missing: the run records every installed package", lock)
        return dict(sorted(installed.items()))
    return {name: installed.get(name) or _version(name) for name in sorted(read_lock(lock))}


def gpu_name() -> str | None:
    """The GPUs TensorFlow sees in this process (their device names), None on the CPU or
    when TensorFlow is not imported here (a tune's parent: its trials record their own)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name") or device.name)
    return ", ".join(names) or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def module_digests(notebooks: Iterable[Path], extra_modules: Iterable[str] = ()) -> dict[str, str]:
    """``{path relative to the project root: sha256 hex}`` of each project module of the
    notebooks' code closure (plus ``extra_modules``, reached without an import)."""
    root = paths.project_root()
    sources = [source for notebook in notebooks for source in code_deps.code_cells(notebook)]
    found = code_deps.closure(sources, extra_modules, root)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in found.values()
    }


def environment(
    stage: str, also_runs: Iterable[str] = (), extra_modules: Iterable[str] = ()
) -> dict[str, Any]:
    """What :data:`ENVIRONMENT_ARTIFACT` holds for a run of ``stage`` (whose notebook also
    executes the notebooks of the stages ``also_runs``: a tune's trials run train's)."""
    notebook = paths.notebook_path(stage)
    notebooks = [notebook] + [paths.notebook_path(name) for name in also_runs]
    packages = installed_versions()
    return {
        "schema": SCHEMA,
        "python": platform.python_version(),
        "packages": packages,
        "tensorflow": packages.get("tensorflow") or _version("tensorflow"),
        "gpu": gpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "modules": module_digests(notebooks, extra_modules),
        "notebook": notebook.relative_to(paths.project_root()).as_posix(),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def log_environment(
    run_id: str,
    stage: str,
    *,
    tracking_uri: str | None = None,
    also_runs: Iterable[str] = (),
    extra_modules: Iterable[str] = (),
) -> dict[str, Any]:
    """Log :func:`environment` to run ``run_id`` as :data:`ENVIRONMENT_ARTIFACT`; returns it."""
    import mlflow

    found = environment(stage, also_runs, extra_modules)
    client = mlflow.MlflowClient(tracking_uri)
    with server_errors("logging the run's environment"):
        client.log_text(run_id, json.dumps(found, indent=1), ENVIRONMENT_ARTIFACT)
    return found


def set_tags(run_id: str, tags: Mapping[str, str], tracking_uri: str | None = None) -> None:
    """Add ``tags`` to run ``run_id`` (a batch-scoring run learns its model's data set late)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    with server_errors("tagging the run"):
        for name, value in tags.items():
            client.set_tag(run_id, name, value)


def model_tags(source: str, tracking_uri: str | None = None) -> dict[str, str]:
    """The data set tag of a run that scores with the model at ``source``: the fingerprint
    of the data set the model was trained on, from its registered version's tags
    (``models:/NAME/VERSION``), else its run's (``runs:/RUN/...`` or the version's run);
    none for a model file, or when the store does not say."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri, tracking_uri)
    run_id = found = None
    try:
        if source.startswith("models:/"):
            name, _, number = source.removeprefix("models:/").strip("/").partition("/")
            version = client.get_model_version(name, number)
            found, run_id = version.tags.get(DATA_FINGERPRINT_TAG), version.run_id
        elif source.startswith("runs:/"):
            run_id = source.removeprefix("runs:/").partition("/")[0]
        if not found and run_id:
            found = client.get_run(run_id).data.tags.get(DATA_FINGERPRINT_TAG)
    except mlflow.exceptions.MlflowException as exc:
        log.warning("the data set of model %s is unknown: %s", source, first_line(exc)[:200])
    return {DATA_FINGERPRINT_TAG: found} if found else {}
