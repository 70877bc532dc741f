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
