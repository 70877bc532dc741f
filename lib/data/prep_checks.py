"""Checks of the prep notebook's parameters that need neither the raw data nor a kernel: the
runner makes them before it starts one (``runner.stages``), the notebook again (a user may
run it in JupyterLab or with plain papermill). Only light modules are imported here: the
pipeline counts every module a notebook imports as code the stage depends on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.core import paths
from lib.core.errors import ParameterError
from lib.core.params import as_list


def check_prep_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The prep notebook's parameters, ``raw_dirs`` as a list; ``processed_dir`` must not be
    the project's notebooks folder, inside it, or hold it (prep replaces it whole).
    ParameterError names the first bad one."""
    p = dict(params)
    p["raw_dirs"] = as_list("raw_dirs", p["raw_dirs"])
    if not p["raw_dirs"]:
        raise ParameterError("raw_dirs", "empty: give at least one raw folder")
    paths.check_output_dir("processed_dir", p["processed_dir"], replaced=True)
    return p
