"""Each stage's checks of its parameters that need neither data nor TensorFlow.

The runner makes them before it starts a kernel (``runner.stages.Stage.check``), so a bad
value costs a second, not a kernel and TensorFlow's start; the notebooks make the same
checks again (a user may run them in JupyterLab or with plain papermill). Each function
takes every parameter of its notebook (the defaults with the values given over them) and
raises :class:`lib.errors.ParameterError` naming the first bad one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lib import paths
from lib.errors import ParameterError
from lib.params import as_list


def check_prep_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The prep notebook's parameters, ``raw_dirs`` as a list; ``processed_dir`` must not be
    the project's notebooks folder, inside it, or hold it (prep replaces it whole)."""
    p = dict(params)
    p["raw_dirs"] = as_list("raw_dirs", p["raw_dirs"])
    if not p["raw_dirs"]:
        raise ParameterError("raw_dirs", "empty: give at least one raw folder")
    paths.check_output_dir("processed_dir", p["processed_dir"], replaced=True)
    return p


def check_train_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The train notebook's parameters (:func:`lib.train_checks.check_train_values`)."""
    from lib.train_checks import check_train_values

    return check_train_values(params)


def check_tune_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The tune notebook's configuration (:func:`lib.tuning.config.load_config`), and the
    train parameters of its trials at both ends of every searched range (the checks of
    :func:`lib.train_checks.check_train_values`; the tune makes them again, with the data
    set's, in a trial kernel)."""
    from lib.train_checks import check_train_values
    from lib.tuning.config import load_config
    from lib.tuning.trials import preflight_cases, preflight_error

    config = load_config(params, params.get("config_file"))
    cases = preflight_cases(config, Path(params.get("trials_dir") or "runs") / "trial-check")
    for index, case in enumerate(cases):
        try:
            check_train_values(case["params"])
        except ParameterError as exc:
            found = {"index": index, "varied": case["varied"], "name": exc.name}
            error = f"ParameterError: {exc}"
            raise preflight_error(config, cases, {**found, "error": error}) from None
    return dict(params)
