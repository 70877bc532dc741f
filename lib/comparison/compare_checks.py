"""Checks of the compare notebook's parameters, and of the two runs they name, made before
anything is shown or logged.

:func:`check_compare_params` needs no tracking store; :func:`check_compare` also resolves
both runs and refuses a run or alias that is not there, one run twice and two runs of
different stages. The runner calls :func:`check_compare` before it starts a kernel
(``runner.stages``: exit 2 and nothing logged), the notebook again (a user may run it in
JupyterLab or with plain papermill).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.comparison import sources
from lib.core.params import as_bool, check_choice, not_allowed
from lib.core.secrets import check_parameter_names
from lib.tracking import registry
from lib.tracking.runs import resolve_tracking_uri
from lib.tracking.store_check import check_store

_REFERENCE = "a run id, models:/NAME@ALIAS, models:/NAME/VERSION or latest"


def _text(name: str, value: Any, allowed: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise not_allowed(name, value, allowed)
    return value.strip()


def check_compare_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The compare notebook's parameters, normalised; ParameterError (one line) names the
    first bad one."""
    check_parameter_names(params)  # secrets come from the environment, never parameters
    p = dict(params)
    for name in ("run_a", "run_b"):
        p[name] = _text(name, p[name], _REFERENCE)
    p["experiment"] = _text("experiment", p["experiment"], "the experiment that latest looks in")
    p["stage"] = check_choice("stage", p["stage"], sources.STAGES)
    p["setup_mlflow"] = as_bool("setup_mlflow", p["setup_mlflow"])
    p["mlflow_exp_name"] = _text("mlflow_exp_name", p["mlflow_exp_name"], "a non-empty name")
    p["mlflow_tags"] = dict(p.get("mlflow_tags") or {})
    return p


def check_compare(params: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`check_compare_params`, then both runs resolved and checked as a pair
    (ComparisonError, one line; TrackingError when the store does not answer)."""
    p = check_compare_params(params)
    uri = resolve_tracking_uri(p["mlflow_tracking_uri"])
    check_store(uri)
    sources.resolve_pair(p, registry.client(uri))
    return p
