"""The compare notebook's parameters checked, then the two runs they name, before a kernel."""

from __future__ import annotations

import pytest

from lib.comparison.compare_checks import check_compare, check_compare_params
from lib.core.errors import ComparisonError, ParameterError
from lib.core.params import parameter_defaults
from lib.core.paths import notebooks_dir

DEFAULTS = parameter_defaults(notebooks_dir() / "compare.ipynb")


def test_the_notebooks_defaults_pass_and_values_are_normalised():
    checked = check_compare_params({**DEFAULTS, "run_a": " abc ", "mlflow_tags": None})
    assert checked["run_a"] == "abc" and checked["mlflow_tags"] == {}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("run_a", "", "run_a"),
        ("run_b", 3, "run_b"),
        ("stage", "prep", "stage"),
        ("experiment", " ", "experiment"),
        ("setup_mlflow", "maybe", "setup_mlflow"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(name, value, message):
    with pytest.raises(ParameterError, match=message) as caught:
        check_compare_params({**DEFAULTS, name: value})
    assert "\n" not in str(caught.value)


def test_the_runs_are_resolved_too(compare_store):
    ids = compare_store.ids
    given = {**DEFAULTS, "mlflow_tracking_uri": compare_store.uri}
    assert check_compare({**given, "run_a": ids["base"], "run_b": ids["param"]})["run_a"]
    with pytest.raises(ComparisonError, match="same run"):
        check_compare({**given, "run_a": ids["base"], "run_b": ids["base"]})
