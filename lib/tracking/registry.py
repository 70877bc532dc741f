"""The MLflow Model Registry: a logged model as a version of a registered model, and the
aliases (``champion``, ``challenger``) that name one version each.

Each version carries tags that say where it came from (:func:`version_tags`): the processed
data set's fingerprint, the project's git commit, the run's ``hptuning_tag`` and its test
metrics; its run (``version.run_id``) holds the train parameters, ``data_path`` among them.
A version's number (``version.version``) is an int from a database store and a string from
a server: compare ``str(version.version)``. Every lookup that finds nothing is a one-line
:class:`lib.core.errors.ModelError` saying what exists. The store is the runner's: the
``tracking_uri`` given, else $MLFLOW_TRACKING_URI, else the project's ``mlflow.db``; the
registry lives in the same store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lib.core import git
from lib.core.errors import ModelError, ParameterError, first_line

# The name check is the train parameters' too (lib.model sits below tracking): defined there.
from lib.model.train_spec import DEFAULT_MODEL_NAME, check_model_name
from lib.tracking.runs import resolve_tracking_uri, run_tags, server_errors
from lib.tracking.store_check import public_uri

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# What serves by default (the review page, python -m runner app): the default name's champion.
CHAMPION_URI = f"models:/{DEFAULT_MODEL_NAME}@{CHAMPION}"
DATA_FINGERPRINT_TAG = "data_fingerprint"
GIT_COMMIT_TAG = "git_commit"
HPTUNING_TAG = "hptuning_tag"
TEST_METRIC_PREFIX = "test_"  # test metrics as tags: test_accuracy, test_loss, ...
_SHOWN = 10  # names, versions or aliases listed in an error


def client(tracking_uri: str | None = None):
    """An MlflowClient on the store (tracking and registry) that the runner uses."""
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _store(mlflow_client) -> str:
    return public_uri(mlflow_client._registry_uri)


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def _listed(items: list[str]) -> str:
    if not items:
        return "none"
    more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def version_tags(
    *,
    data_fingerprint: str | None,
    hptuning_tag: str | None,
    metrics: Mapping[str, float],
    commit: str | None = None,
) -> dict[str, str]:
    """The tags of a new version: data fingerprint, git commit (``commit``, else the
    project's HEAD, else none), hptuning_tag, and every ``test_*`` metric."""
    tags = {
        DATA_FINGERPRINT_TAG: data_fingerprint,
        GIT_COMMIT_TAG: commit or git.head_commit(),
        HPTUNING_TAG: hptuning_tag,
    }
    tags.update({k: repr(float(v)) for k, v in metrics.items() if k.startswith(TEST_METRIC_PREFIX)})
    return {k: str(v) for k, v in tags.items() if v not in (None, "")}


def register(
    model_uri: str, name: str, tags: Mapping[str, str], tracking_uri: str | None = None
) -> ModelVersion:
    """A new version of registered model ``name`` (created if new) for ``model_uri`` (a
    ``runs:/<run>/<path>`` URI), with ``tags``."""
    import mlflow

    name = check_model_name(name)
    mlflow_client = client(tracking_uri)
    try:
        mlflow_client.create_registered_model(name)
        log.info("registered model %r created", name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise ModelError(
                f"cannot create registered model {name!r} at {_store(mlflow_client)}: "
                f"{first_line(exc)[:200]}"
            ) from None
    run_id, source = _source(mlflow_client, model_uri)
    with server_errors(f"registering {model_uri} as a version of {name!r}"):
        version = mlflow_client.create_model_version(
            name, source, run_id=run_id, tags={k: str(v) for k, v in tags.items()}
        )
    log.info("model %s version %s registered from %s", name, version.version, model_uri)
    return version


def register_run_model(
    model_uri: str,
    params: Mapping[str, Any],
    manifest: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> ModelVersion:
    """The train notebook's registration: ``model_uri`` as a new version of
    ``params["registered_model_name"]`` in the run's store, tagged with the processed data
    set's fingerprint (its ``manifest``), the git commit, the run's hptuning_tag and the
    test metrics."""
    tags = version_tags(
        data_fingerprint=manifest.get("fingerprint"),
        hptuning_tag=run_tags(params.get("hptuning_tag")).get(HPTUNING_TAG),
        metrics=metrics,
    )
    return register(
        model_uri, params["registered_model_name"], tags, params.get("mlflow_tracking_uri")
    )


def _source(mlflow_client, model_uri: str) -> tuple[str | None, str]:
    """The run and the artifact location of a ``runs:/`` model URI (any other URI as is)."""
    if not model_uri.startswith("runs:/"):
        return None, model_uri
    run_id, _, artifact_path = model_uri[len("runs:/") :].strip("/").partition("/")
    try:
        run = mlflow_client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001  (MLflow or the network: both one line)
        raise ModelError(
            f"run {run_id} of {model_uri} is not in {_store(mlflow_client)}: {first_line(exc)}"
        ) from None
    return run_id, f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"


def registered_names(mlflow_client) -> list[str]:
    """The registered models' names in the store."""
    return sorted(m.name for m in mlflow_client.search_registered_models(max_results=1000))


def resolve(
    name: str,
    alias: str | None = None,
    version: int | str | None = None,
    tracking_uri: str | None = None,
) -> ModelVersion:
    """The version of registered model ``name`` that ``alias`` or ``version`` names, else
    its latest version. ModelError, listing what exists, when there is no such model,
    version or alias; ParameterError for a version that is not a number."""
    import mlflow

    if alias is not None and version is not None:
        raise ParameterError("version", "give an alias or a version, not both")
    mlflow_client = client(tracking_uri)
    store = _store(mlflow_client)
    try:
        model = mlflow_client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if not _not_found(exc):
            raise ModelError(
                f"cannot read registered model {name!r} at {store}: {first_line(exc)[:200]}"
            ) from None
        raise ModelError(
            f"no registered model {name!r} at {store}; registered models: "
            f"{_listed(registered_names(mlflow_client))} (train with -p register_model True "
            "to register one, or set MLFLOW_TRACKING_URI to the store that holds it)"
        ) from None
    versions = sorted(
        (v for v in mlflow_client.search_model_versions(f"name='{name}'")),
        key=lambda v: int(v.version),
    )
    if alias is not None:
        aliases = dict(getattr(model, "aliases", {}) or {})
        if alias not in aliases:
            shown = [f"{a} (version {v})" for a, v in sorted(aliases.items())]
            raise ModelError(
                f"registered model {name!r} has no alias {alias!r}; its aliases: "
                f"{_listed(shown)} (set one with python -m runner promote, or pass --version)"
            )
        return mlflow_client.get_model_version(name, str(aliases[alias]))
    if version is None:
        if not versions:
            raise ModelError(f"registered model {name!r} has no versions yet at {store}")
        return versions[-1]
    number = str(version).strip()
    if not number.isdigit():
        raise ParameterError("version", f"{version!r} is not allowed: a version number, e.g. 3")
    found = [v for v in versions if str(v.version) == str(int(number))]
    if not found:
        raise ModelError(
            f"registered model {name!r} has no version {int(number)}; its versions: "
            f"{_listed([str(v.version) for v in versions])}"
        )
    return found[0]


REGISTRY_SCHEME = "models:/"


def resolve_uri(uri: str, tracking_uri: str | None = None) -> tuple[str, str | None, ModelVersion]:
    """What ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME`` (``/latest``:
    its latest version) names: (the model's name, the alias or None, the version). The one
    reading of a registry URI; ModelError for a stage (MLflow's Production, Staging), which
    this project does not use, and as :func:`resolve` for what is not there."""
    rest = uri[len(REGISTRY_SCHEME) :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, resolve(name, alias=alias, tracking_uri=tracking_uri)
    name, _, number = rest.partition("/")
    if number.isdigit():
        return name, None, resolve(name, version=number, tracking_uri=tracking_uri)
    if number in ("", "latest"):
        return name, None, resolve(name, tracking_uri=tracking_uri)
    raise ModelError(
        f"{uri} names neither a version nor an alias: write "
        f"models:/{name}/VERSION or models:/{name}@ALIAS"
    )


def set_alias(name: str, alias: str, version: int | str, tracking_uri: str | None = None):
    """Point ``alias`` of registered model ``name`` at ``version`` (which must exist); the
    version, as the registry now holds it."""
    resolved = resolve(name, version=version, tracking_uri=tracking_uri)
    mlflow_client = client(tracking_uri)
    with server_errors(f"setting the alias {alias!r} of {name!r}"):
        mlflow_client.set_registered_model_alias(name, alias, str(resolved.version))
    log.info("model %s: alias %s -> version %s", name, alias, resolved.version)
    return mlflow_client.get_model_version(name, str(resolved.version))
