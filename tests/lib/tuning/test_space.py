"""lib.tuning.space: parsing, sampling and the values a search parameter holds."""

import optuna
import pytest
import yaml

from lib.core.errors import ParameterError
from lib.tuning import space as sp


def test_all_supported_types_parse_and_sample_within_their_ranges():
    space = sp.parse_search_space(
        {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "bs": {"type": "int", "low": 32, "high": 512, "log": True},
            "epochs": {"type": "int", "low": 1, "high": 5},
            "val_split": {"type": "float", "low": 0.1, "high": 0.3},
            "model_name": {"type": "categorical", "choices": ["nbngram"]},
        }
    )
    trial = optuna.create_study().ask()
    values = sp.sample(trial, space)
    assert 1e-4 <= values["learning_rate"] <= 1e-1 and 32 <= values["bs"] <= 512
    assert isinstance(values["epochs"], int) and values["model_name"] == "nbngram"
    assert space["learning_rate"].edge_values() == [1e-4, 1e-1]
    assert space["epochs"].grid() == [1, 2, 3, 4, 5] and space["val_split"].grid() is None


def test_a_stepped_float_range_has_its_grid_and_last_point_in_decimal():
    split = sp.parse_param("val_split", {"type": "float", "low": 0.2, "high": 0.35, "step": 0.025})
    assert split.grid() == [0.2, 0.225, 0.25, 0.275, 0.3, 0.325, 0.35]
    assert split.edge_values() == [0.2, 0.35]
    assert split.describe() == "float [0.2, 0.35] step 0.025"


@pytest.mark.parametrize(
    "spec, value, inside",
    [
        ({"type": "float", "low": 0.2, "high": 0.35, "step": 0.025}, 0.325, True),
        ({"type": "float", "low": 0.2, "high": 0.35, "step": 0.025}, 0.33, False),
        ({"type": "float", "low": 0.2, "high": 0.35, "step": 0.025}, 0.9, False),
        ({"type": "float", "low": 0.1, "high": 1.0, "log": True}, 0.5, True),
        ({"type": "int", "low": 1, "high": 9, "step": 2}, 5, True),
        ({"type": "int", "low": 1, "high": 9, "step": 2}, 4, False),
        ({"type": "int", "low": 1, "high": 9}, 2.5, False),
        ({"type": "int", "low": 1, "high": 9}, "3", False),
        ({"type": "categorical", "choices": ["adam", "rmsprop"]}, "adam", True),
        ({"type": "categorical", "choices": ["adam", "rmsprop"]}, "sgd", False),
    ],
)
def test_contains_tells_the_values_a_study_could_sample(spec, value, inside):
    param = sp.parse_param("p", spec)
    assert param.contains(value) is inside
    if inside and spec["type"] != "categorical":  # agrees with Optuna's own distribution
        assert param.distribution()._contains(param.distribution().to_internal_repr(value))


@pytest.mark.parametrize(
    "spec, key, words",
    [
        ({"type": "floaty", "low": 0, "high": 1}, "search_space.p.type", "unknown type 'floaty'"),
        ({"low": 0, "high": 1}, "search_space.p.type", "unknown type None"),
        ({"type": "float", "low": 0.5, "high": 0.1}, "search_space.p.low", "above high"),
        ({"type": "int", "low": 5, "high": 1}, "search_space.p.low", "above high"),
        (
            {"type": "float", "low": 0.2, "high": 0.35, "step": 0.04},
            "search_space.p.step",
            "does not fit the range",
        ),
        ({"type": "int", "low": 1, "high": 10, "step": 4}, "search_space.p.step", "does not fit"),
        ({"type": "int", "low": 1, "high": 10, "step": 0}, "search_space.p.step", "positive"),
        ({"type": "int", "low": 1.5, "high": 10}, "search_space.p.low", "not an integer"),
        ({"type": "float", "low": "a", "high": 1}, "search_space.p.low", "not a number"),
        ({"type": "float", "high": 1}, "search_space.p.low", "missing"),
        (
            {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1},
            "search_space.p.step",
            "step and log",
        ),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "search_space.p.low", "above 0"),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"}, "search_space.p.log", "true or"),
        ({"type": "float", "low": 0, "high": 1, "stpe": 0.1}, "search_space.p.stpe", "unknown key"),
        ({"type": "categorical", "choices": []}, "search_space.p.choices", "non-empty list"),
        ({"type": "categorical", "choices": ["a", "a"]}, "search_space.p.choices", "duplicates"),
        ({"type": "categorical", "choices": [[1, 2]]}, "search_space.p.choices", "not allowed"),
        ("0.1..0.3", "search_space.p", "not a mapping"),
    ],
)
def test_bad_search_space_entries_name_the_key(spec, key, words):
    with pytest.raises(ParameterError) as info:
        sp.parse_search_space({"p": spec})
    assert info.value.name == key
    assert words in str(info.value) and str(info.value).startswith(f"{key}: ")


@pytest.mark.parametrize("space", [{}, None, ["val_split"]])
def test_an_empty_or_non_mapping_search_space_is_refused(space):
    with pytest.raises(ParameterError, match="^search_space: .*not a non-empty mapping"):
        sp.parse_search_space(space)


def test_is_number_takes_finite_reals_only():
    assert sp.is_number(1) and sp.is_number(0.5)
    assert not any(sp.is_number(v) for v in (True, float("nan"), float("inf"), "1", None))


def test_exponents_that_yaml_reads_as_text_are_numbers():
    # YAML 1.1 (PyYAML) reads 1e-5 (no dot) as the string "1e-5".
    spec = yaml.safe_load("{type: float, low: 1e-5, high: 1e-1, log: true}")
    assert spec["low"] == "1e-5"
    param = sp.parse_param("learning_rate", spec)
    assert (param.low, param.high, param.log) == (1e-5, 0.1, True)
    with pytest.raises(ParameterError, match="^search_space.p.low: .*not a number"):
        sp.parse_param("p", {"type": "float", "low": "inf", "high": 1})
