"""Checks of the infer notebook's parameters, made before any model or review is read.

:func:`check_infer_params` needs neither TensorFlow nor the reviews: the runner calls it
before it starts a kernel (``runner.stages``), the notebook again (a user may run it in
JupyterLab or with plain papermill). It looks at a local input only as far as existence and
extension; a ``gs://`` input or output is looked up by the notebook (one request, with the
bucket's own errors). What the input holds (its files, its columns) is the reading's to say.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lib.core import gcs, paths
from lib.core.errors import ParameterError
from lib.core.params import as_bool, check_float, check_int, not_allowed
from lib.core.secrets import check_parameter_names

# Where and how the run itself is recorded: settings of the run, not of the scoring.
RUN_SETTINGS = frozenset(
    {"mlflow_tracking_uri", "mlflow_artifact_location", "mlflow_run_name", "mlflow_tags"}
)


def _text(name: str, value: Any, allowed: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise not_allowed(name, value, allowed)
    return value.strip()


def _column(name: str, value: Any) -> str | None:
    if value is None:
        return None
    return _text(name, value, "None or a column name")


def _local(value: str) -> str | None:
    """The absolute local path of ``value`` (relative to the project root), or None for
    ``gs://``."""
    return None if gcs.is_gcs_uri(value) else str(paths.resolve(value))


def _check_input(value: str) -> None:
    # Imported here: the table readers' module imports pyarrow, which the runner's other
    # checks do without.
    from lib.data.review_files import TEXT_EXTENSION  # pyarrow, as above
    from lib.data.review_tables import TABLE_EXTENSIONS  # pyarrow, as above

    accepted = f"a folder of {TEXT_EXTENSION} reviews or a {', '.join(TABLE_EXTENSIONS)} file"
    local = _local(value)
    if local is not None and not os.path.exists(local):
        raise ParameterError("input_path", f"{value} does not exist: pass {accepted}")
    if local is not None:
        is_file = os.path.isfile(local)
    else:  # a name with an extension, not a folder's prefix (gs://b/reviews, gs://b/x.v2/)
        is_file = not value.endswith("/") and "." in value.rsplit("/", 1)[-1]
    extension = os.path.splitext(value.rstrip("/"))[1].lower()
    if is_file and extension not in TABLE_EXTENSIONS:
        raise ParameterError(
            "input_path",
            f"{value} has the extension {extension or '(none)'!r}, not one accepted: "
            f"pass {accepted}",
        )


def _check_output(value: str, input_path: str, overwrite: bool) -> None:
    from lib.inference import writers  # numpy and pyarrow: see _check_input

    writers.output_extension(value)
    local = _local(value)
    if local is None:
        return  # its bucket is asked by the notebook, before anything is read
    writers.check_output(local, overwrite)
    paths.check_output_dir("output_path", os.path.dirname(value) or ".")
    # A read-only or full folder: said now, not once the reviews are scored.
    paths.check_writable("output_path", os.path.dirname(local))
    source = _local(input_path)
    if source is not None and (local == source or local.startswith(source.rstrip("/") + "/")):
        # A later run would read its own earlier output as reviews.
        raise ParameterError(
            "output_path", f"{value} is inside input_path {input_path}: write it elsewhere"
        )


def check_infer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The infer notebook's parameters, normalised; ParameterError (one line) names the
    first bad one: an input that is not there or has an extension not accepted, an output
    with an extension not accepted or already there (without ``overwrite``), a threshold
    outside (0, 1), a batch size that is not a positive whole number. A local output's
    folder that cannot be written is an OutputError."""
    check_parameter_names(params)  # secrets come from the environment, never parameters
    p = dict(params)
    p["model_uri"] = _text(
        "model_uri",
        p["model_uri"],
        "a model: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/PATH, a .keras file "
        "or its folder",
    )
    p["input_path"] = _text("input_path", p["input_path"], "a folder of reviews or a table")
    p["output_path"] = _text("output_path", p["output_path"], "a .jsonl, .parquet or .csv file")
    p["text_column"] = _text("text_column", p["text_column"], "the name of the text column")
    p["id_column"] = _column("id_column", p.get("id_column"))
    p["label_column"] = _column("label_column", p.get("label_column"))
    p["threshold"] = check_float("threshold", p["threshold"], 0, 1)
    p["batch_size"] = check_int("batch_size", p["batch_size"], minimum=1)
    for flag in ("overwrite", "include_text", "setup_mlflow"):
        p[flag] = as_bool(flag, p[flag])
    if p["setup_mlflow"] and not str(p.get("mlflow_exp_name") or "").strip():
        raise not_allowed("mlflow_exp_name", p.get("mlflow_exp_name"), "a non-empty name")
    _check_input(p["input_path"])
    _check_output(p["output_path"], p["input_path"], p["overwrite"])
    # Local paths absolute, from the project root as in every stage (the kernel's working
    # folder need not be the root).
    for name in ("input_path", "output_path"):
        p[name] = _local(p[name]) or p[name]
    return p


def logged_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters an MLflow run of the infer notebook logs: all but RUN_SETTINGS."""
    return {name: value for name, value in params.items() if name not in RUN_SETTINGS}
