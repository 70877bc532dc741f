import json

import pytest

from lib.core.errors import ParameterError
from lib.core.params import (
    as_bool,
    as_list,
    check_choice,
    check_float,
    check_int,
    did_you_mean,
    notebook_parameters,
    parameter_defaults,
    parameter_names,
    unknown_name,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (["a", "b"], ["a", "b"]),
        (("a",), ["a"]),
        (
            '["/data/aclImdb-set1", "/data/aclImdb-set2"]',
            ["/data/aclImdb-set1", "/data/aclImdb-set2"],
        ),
        ("[/data/a, /data/b]", ["/data/a", "/data/b"]),
        ("- /data/a\n- /data/b\n", ["/data/a", "/data/b"]),
        ("/data/only", ["/data/only"]),
    ],
)
def test_as_list_accepts_lists_and_json_or_yaml_strings(value, expected):
    assert as_list("raw_dirs", value) == expected


@pytest.mark.parametrize("value", ["", "[unclosed", '{"a": 1}', 3])
def test_as_list_rejects_with_the_parameter_named(value):
    with pytest.raises(ParameterError) as info:
        as_list("raw_dirs", value)
    assert info.value.name == "raw_dirs" and str(info.value).startswith("raw_dirs: ")
    assert "\n" not in str(info.value)  # a YAML error's own message spans lines


def test_as_bool():
    assert as_bool("x", "True") is True
    assert as_bool("x", "no") is False
    assert as_bool("x", 1) is True
    with pytest.raises(ParameterError, match="^x: 'maybe' is not allowed: true or false$"):
        as_bool("x", "maybe")


def test_checks_name_parameter_value_and_allowed():
    with pytest.raises(ParameterError, match=r"^optimiser: 'adamw' is .*'adam', 'rmsprop'$"):
        check_choice("optimiser", "adamw", ["adam", "rmsprop"])
    with pytest.raises(ParameterError, match=r"^bs: 0 is not allowed: an integer >= 1$") as info:
        check_int("bs", 0, minimum=1)
    assert info.value.name == "bs"
    with pytest.raises(ParameterError, match=r"^val_split: 1.0 is not allowed: .* \(0, 1\)$"):
        check_float("val_split", 1.0, 0, 1)
    assert check_int("epochs", 3.0, minimum=1) == 3
    assert check_float("val_split", "0.25", 0, 1) == 0.25


def _notebook(path, parameters_source, tags=("parameters",)):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# a notebook\n"]},
        {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": parameters_source},
        {"cell_type": "code", "metadata": {}, "source": "later = 1\n"},
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))
    return path


def test_notebook_parameters_are_the_parameter_cells_names_in_order(tmp_path):
    source = [
        "# defaults\n",
        "b = 2  # first\n",
        "a: int = 1\n",
        "c, (d, *e) = 3, (4, 5, 6)\n",
        "b = 7\n",
        "settings = {}\n",
        "settings['x'] = 1  # binds no new name\n",
        "import os\n",
        "def helper(): pass\n",
    ]
    path = _notebook(tmp_path / "nb.ipynb", source)
    namespace = {"a": 1, "b": 7, "c": 3, "d": 4, "e": [5, 6], "settings": {}, "later": 1, "os": 0}
    params = notebook_parameters(namespace, path)
    assert list(params) == ["b", "a", "c", "d", "e", "settings"]
    assert params == {k: namespace[k] for k in params}


def test_notebook_parameters_by_name_reads_the_project_notebooks(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "mine.ipynb", "x = 1\ny = 'two'\n")
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert notebook_parameters({"x": 10, "y": "b", "z": 0}, "mine") == {"x": 10, "y": "b"}


def test_notebook_parameters_of_the_train_notebook_start_with_its_data():
    names = parameter_names("train")
    assert names[:3] == ["data_path", "val_split", "bs"] and "hptuning_tag" in names


@pytest.mark.parametrize("tagged", [0, 2])
def test_notebook_parameters_need_exactly_one_parameters_cell(tmp_path, tagged):
    tags = ("parameters", "other") if tagged else ("other",)
    path = _notebook(tmp_path / "nb.ipynb", "x = 1\n", tags=tags)
    nb = json.loads(path.read_text())
    nb["cells"][2]["metadata"]["tags"] = ["parameters"] if tagged == 2 else []
    path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match=rf"nb.ipynb has {tagged} cells tagged 'parameters'"):
        notebook_parameters({"x": 1}, path)


def test_notebook_parameters_name_a_missing_notebook_or_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"notebook .*absent.ipynb not found"):
        notebook_parameters({}, tmp_path / "absent.ipynb")
    path = _notebook(tmp_path / "nb.ipynb", "x = 1\ny = 2\n")
    with pytest.raises(NameError, match=r"parameters y of .*nb.ipynb are not defined"):
        notebook_parameters({"x": 1}, path)


def test_parameter_defaults_are_the_literals_else_the_source(tmp_path):
    source = "b = 2\nc, d = 3, 4\npath = os.path.join('a', 'b')\nb = 7\nsettings = {'k': [1]}\n"
    path = _notebook(tmp_path / "nb.ipynb", source)
    assert parameter_defaults(path) == {
        "b": 7,  # the last assignment
        "c": "(3, 4)",
        "d": "(3, 4)",
        "path": "os.path.join('a', 'b')",
        "settings": {"k": [1]},
    }
    assert parameter_defaults("prep") == {
        "raw_dirs": ["data/raw/aclImdb"],
        "processed_dir": "data/processed",
    }


@pytest.mark.parametrize(
    "name, known, expected",
    [
        ("optimizer", parameter_names("train"), "did you mean 'optimiser'?"),
        ("raw_dir", ["raw_dirs", "processed_dir"], "did you mean 'raw_dirs'?"),
        # Only the near misses, not a name that merely shares a suffix (enqueue_trials).
        ("n_trails", ["n_trials", "n_jobs", "enqueue_trials"], "did you mean 'n_trials'?"),
        ("model", ["model_dir", "model_name", "seed"], "did you mean 'model_dir' or 'model_name'?"),
        ("zzz", ["epochs", "seed"], "known: epochs, seed"),
    ],
)
def test_did_you_mean_names_the_closest_known_names(name, known, expected):
    assert did_you_mean(name, known) == expected


def test_an_unknown_name_is_a_parameter_error_of_where_it_was_given():
    error = unknown_name("train", "optimizer", ["optimiser", "epochs"])
    assert isinstance(error, ParameterError) and error.name == "train"
    assert str(error) == "train: unknown parameter 'optimizer'; did you mean 'optimiser'?"
