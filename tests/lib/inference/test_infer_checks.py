"""lib.inference.infer_checks: the infer notebook's parameters checked without a model or the
reviews, each bad one refused in one line that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.core.errors import OutputError, ParameterError
from lib.core.params import parameter_defaults
from lib.inference.infer_checks import check_infer_params, logged_params

DEFAULTS = parameter_defaults("infer")


@pytest.fixture()
def given(tmp_path: Path) -> dict:
    """The notebook's defaults with a folder of reviews that is there and a free output."""
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "a.txt").write_text("Good.")
    (tmp_path / "table.csv").write_text("text\nGood.\n")
    return {
        **DEFAULTS,
        "input_path": str(tmp_path / "reviews"),
        "output_path": str(tmp_path / "out" / "scores.jsonl"),
    }


def test_the_defaults_with_an_input_that_is_there_pass_normalised(given):
    checked = check_infer_params({**given, "batch_size": "256", "overwrite": "yes"})
    assert checked["batch_size"] == 256 and checked["overwrite"] is True
    assert checked["threshold"] == 0.5 and checked["id_column"] is None


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"threshold": 1}, "threshold: 1 is not allowed: a number in (0, 1)"),
        ({"threshold": 0}, "threshold: 0 is not allowed: a number in (0, 1)"),
        ({"threshold": "half"}, "threshold: 'half' is not allowed: a number"),
        ({"batch_size": 0}, "batch_size: 0 is not allowed: an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size: 2.5 is not allowed: an integer"),
        ({"overwrite": "maybe"}, "overwrite: 'maybe' is not allowed: true or false"),
        ({"text_column": ""}, "text_column: '' is not allowed: the name of the text column"),
        ({"id_column": 3}, "id_column: 3 is not allowed: None or a column name"),
        ({"model_uri": " "}, "model_uri: ' ' is not allowed: a model: models:/NAME@ALIAS"),
        ({"mlflow_exp_name": ""}, "mlflow_exp_name: '' is not allowed: a non-empty name"),
        ({"mlflow_password": "x"}, "mlflow_password: this name looks like a secret"),
        (
            {"input_path": "{tmp}/none"},
            "input_path: {tmp}/none does not exist: pass a folder of .txt reviews or a .csv, "
            ".parquet, .jsonl file",
        ),
        (
            {"input_path": "{tmp}/reviews/a.txt"},
            "input_path: {tmp}/reviews/a.txt has the extension '.txt', not one accepted",
        ),
        (
            {"input_path": "gs://bucket/reviews.xlsx"},
            "input_path: gs://bucket/reviews.xlsx has the extension '.xlsx', not one accepted",
        ),
        (
            {"output_path": "{tmp}/scores.txt"},
            "output_path: {tmp}/scores.txt has the extension '.txt': write scores to a file "
            "ending in .jsonl, .parquet, .csv",
        ),
        (
            {"output_path": "gs://bucket/scores"},
            "output_path: gs://bucket/scores has the extension '(none)'",
        ),
        (
            {"output_path": "{tmp}/table.csv"},
            "output_path: {tmp}/table.csv already exists: choose another output or set "
            "overwrite to True",
        ),
        (
            {"output_path": "{tmp}/reviews/scores.jsonl"},
            "output_path: {tmp}/reviews/scores.jsonl is inside input_path {tmp}/reviews",
        ),
        (
            {"output_path": "notebooks/scores.jsonl"},
            "output_path: ",  # beside the notebooks: refused as every stage's outputs are
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_it(given, tmp_path, change, expected):
    change = {
        k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in change.items()
    }
    with pytest.raises(ParameterError) as info:
        check_infer_params({**given, **change})
    message = str(info.value)
    assert message.startswith(expected.replace("{tmp}", str(tmp_path))), message
    assert "\n" not in message


def test_an_existing_output_is_taken_with_overwrite_and_a_table_is_an_input(given, tmp_path):
    check_infer_params(
        {**given, "input_path": str(tmp_path / "table.csv"), "output_path": str(tmp_path / "x.csv")}
    )
    (tmp_path / "x.csv").write_text("id\n")
    check_infer_params({**given, "output_path": str(tmp_path / "x.csv"), "overwrite": True})


def test_gs_paths_are_left_to_the_notebook_to_look_up(given):
    # No request here: the bucket is asked by the notebook, with its own errors.
    check_infer_params(
        {**given, "input_path": "gs://bucket/reviews/", "output_path": "gs://bucket/out.parquet"}
    )


def test_the_run_logs_the_scoring_parameters_not_its_own_settings(given):
    logged = logged_params({**given, "mlflow_tracking_uri": "http://x", "mlflow_tags": {"a": 1}})
    assert "mlflow_tracking_uri" not in logged and "mlflow_tags" not in logged
    assert logged["model_uri"] == "models:/imdb-sentiment@champion"
    assert logged["threshold"] == 0.5


def test_a_read_only_output_folder_is_one_line_before_anything_is_read(given, read_only_dir):
    with pytest.raises(OutputError) as info:
        check_infer_params({**given, "output_path": str(read_only_dir / "scores.jsonl")})
    assert str(info.value).startswith(f"output_path {read_only_dir} cannot be written: ")
