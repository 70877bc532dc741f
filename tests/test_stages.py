"""runner.stages: the one table of stage names and their notebooks."""

import nbformat
import pytest

from runner.stages import STAGES, get_stage


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_names_a_notebook_with_one_parameters_cell(name):
    stage = get_stage(name)
    assert stage.name == name and stage.description
    nb = nbformat.read(stage.path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_the_stages_are_prep_train_tune():
    assert list(STAGES) == ["prep", "train", "tune"]


def test_an_unknown_stage_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown stage 'evaluate'; known stages: prep, train, tune"
    ):
        get_stage("evaluate")


def test_an_absolute_notebook_path_wins(tmp_path):
    from runner.stages import Stage

    assert Stage("x", str(tmp_path / "x.ipynb"), "").path == tmp_path / "x.ipynb"


def test_a_name_the_notebook_lacks_is_refused_with_the_closest_names():
    from lib.errors import ParameterError

    with pytest.raises(ParameterError) as info:
        get_stage("train").check_parameters({"epochs": 2, "optimizer": "sgd"})
    assert str(info.value) == "train: unknown parameter 'optimizer'; did you mean 'optimiser'?"
    get_stage("train").check_parameters({"epochs": 2, "optimiser": "sgd"})


@pytest.mark.parametrize(
    "stage, given, message",
    [
        ("prep", {"raw_dirs": "[]"}, "raw_dirs: empty"),
        ("prep", {"processed_dir": "notebooks"}, "processed_dir: notebooks is the project's"),
        ("train", {"bs": 0}, "bs: 0 is not allowed: an integer >= 1"),
        ("train", {"metric": "f1"}, "metric: 'f1' is not allowed: one of 'accuracy', 'auc'"),
        ("tune", {"n_jobs": "two"}, "n_jobs: 'two' is not allowed: an integer"),
        ("tune", {"train_params": {"bs": 0}}, "train_params.bs: the train notebook refuses it"),
    ],
)
def test_each_stage_checks_its_values_with_the_notebooks_defaults_for_the_rest(
    stage, given, message
):
    from lib.errors import ParameterError

    assert all(s.check is not None for s in STAGES.values())  # every stage has its checks
    get_stage(stage).check_parameters({})  # the defaults pass
    with pytest.raises(ParameterError) as info:
        get_stage(stage).check_parameters(given)
    assert str(info.value).startswith(message)
