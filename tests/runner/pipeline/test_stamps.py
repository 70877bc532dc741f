"""The up-to-date decision on real files: each input changes it, a removed product and an
unreadable stamp make a stage outdated, and what does not matter (a markdown cell, a touched
file, a module the notebook does not import, when a data set was made) does not."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from lib.core import code_deps
from lib.data import prep
from runner.pipeline.plan import State, judge, plan
from runner.pipeline.stamps import FORMAT_VERSION
from tests.support.pipeline_project import RAW, prepared_project, stamp_as_if_run

TRAIN = {"train": {"epochs": 1}}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    root = prepared_project(tmp_path / "project")
    return root


def _stamp(stage: str, given: dict | None = None) -> None:
    stamp_as_if_run(stage, given or TRAIN)


def _why(stage: str, given: dict | None = None) -> list[str]:
    decision, _ = judge(plan([stage], given or TRAIN)[0], State(), State().digests())
    return decision.reasons


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _edit_cell(notebook: Path, kind: str, append: str) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == kind and c["source"])
    cell["source"] = "".join(cell["source"]) + append
    notebook.write_text(json.dumps(nb), encoding="utf-8")


def test_a_stage_just_stamped_is_up_to_date_and_says_since_which_run(project):
    _stamp("prep")
    _stamp("train")
    for stage in ("prep", "train"):
        decision, _ = judge(plan([stage], TRAIN)[0], State(), State().digests())
        assert decision.up_to_date, decision.reasons
        assert "unchanged since run 20261201T090559Z" in decision.line()
    assert (
        "prep: up to date: raw data sha256:"
        in judge(plan(["prep"], {})[0], State(), State().digests())[0].line()
    )
    # The default value given explicitly is the same resolved parameter.
    assert _why("train", {"train": {"epochs": 1, "bs": 256}}) == []


def test_notebook_code_cells_decide_not_markdown(project):
    _stamp("prep")
    _edit_cell(project / "notebooks" / "prep.ipynb", "markdown", "\nmore words")
    assert _why("prep") == []
    _edit_cell(project / "notebooks" / "prep.ipynb", "code", "\nprint('new')")
    assert _why("prep") == ["notebook changed: notebooks/prep.ipynb"]


def test_a_changed_parameter_is_named_with_both_values(project):
    _stamp("train")
    assert _why("train", {"train": {"epochs": 3}}) == ["parameters changed: epochs 1 -> 3"]


def test_raw_content_decides_not_timestamps(project):
    _stamp("prep")
    review = next((project / RAW / "train" / "pos").glob("*.txt"))
    later = time.time() + 100
    os.utime(review, (later, later))
    assert _why("prep") == []
    review.write_text(review.read_text() + " more")
    assert _why("prep") == ["raw data changed"]
    _stamp("prep")
    (project / RAW / "test" / "neg" / "99_2.txt").write_text("a new awful review")
    assert _why("prep") == ["raw data changed"]


def test_the_processed_data_sets_content_decides_for_train(project):
    _stamp("train")
    # The same reviews prepared again: a new manifest (time, seconds), the same data set.
    prep.prepare([project / RAW], project / "data" / "processed")
    assert _why("train") == []
    (project / RAW / "train" / "neg" / "98_1.txt").write_text("dull dull dull")
    prep.prepare([project / RAW], project / "data" / "processed")
    assert _why("train") == ["processed data changed"]


def test_code_the_notebook_imports_through_other_modules_decides(project):
    _stamp("prep")
    _stamp("train")
    # prep imports lib.data.prep, which imports lib.data.raw: a change there outdates prep.
    _edit(
        project / "lib" / "data" / "raw.py",
        "MIN_RATING, MAX_RATING = 1, 10",
        "MIN_RATING, MAX_RATING = 1, 9",
    )
    assert _why("prep") == ["code changed: lib/data/raw.py"]
    # lib.model.models is train's, not prep's.
    _edit(
        project / "lib" / "model" / "models.py",
        '"""',
        '"""Changed. ',
    )
    assert _why("prep") == ["code changed: lib/data/raw.py"]
    assert _why("train") == ["code changed: lib/data/raw.py, lib/model/models.py"]


# Modules of lib.tuning that only the tune uses; the train notebook imports lib.tuning.pruning.
TUNE_ONLY = ("summary", "loop", "study", "registration", "parent_run", "config", "trials")


def test_a_tuning_only_module_edited_leaves_train_up_to_date(project):
    _stamp("prep")
    _stamp("train")
    for name in TUNE_ONLY:
        _edit(project / "lib" / "tuning" / f"{name}.py", '"""', '"""Changed. ')
    assert _why("train") == []
    tune = code_deps.closure(code_deps.code_cells(project / "notebooks" / "tune.ipynb"))
    assert {f"lib.tuning.{name}" for name in TUNE_ONLY} <= set(tune)  # the tune's, still
    # What the train notebook does import still decides.
    _edit(project / "lib" / "tuning" / "pruning.py", '"""', '"""Changed. ')
    assert _why("train") == ["code changed: lib/tuning/pruning.py"]


def test_the_lock_of_the_stages_role_decides(project):
    _stamp("prep")
    _stamp("train")
    with (project / "requirements-train.txt").open("a") as f:
        f.write("# a comment\n")
    assert _why("prep") == [] and _why("train") == []
    # A locked package's version (as scripts/lock.py writes after an upgrade) in train's lock.
    _edit(project / "requirements.lock", "\nwheel==", "\nwheel==1")
    assert _why("prep") == []
    assert _why("train") == ["changed: requirements.lock"]


@pytest.mark.parametrize(
    "stage, product", [("prep", "data/processed"), ("train", "models/latest/model.keras")]
)
def test_a_removed_or_changed_product_outdates_its_stage(project, stage, product):
    _stamp(stage)
    path = project / product
    if path.is_dir():
        (path / "test.parquet").unlink()
    else:
        path.write_bytes(b"another model")
        assert _why(stage) == [f"{'model'} {product} was changed since"]
        path.unlink()
    name = "processed data set" if stage == "prep" else "model"
    assert f"{name} {product} is gone" in _why(stage)


@pytest.mark.parametrize(
    "text, why",
    [
        ("{not json", "not valid JSON"),
        (
            json.dumps({"format": "imdb-sentiment-stamp", "format_version": FORMAT_VERSION + 1}),
            "format version",
        ),
        (
            json.dumps({"format": "imdb-sentiment-stamp", "format_version": FORMAT_VERSION}),
            "incomplete",
        ),
    ],
)
def test_an_unreadable_stamp_is_outdated_with_a_warning(project, caplog, text, why):
    _stamp("prep")
    State().stamp_path("prep").write_text(text)
    with caplog.at_level(logging.WARNING):
        reasons = _why("prep")
    assert len(reasons) == 1 and reasons[0].startswith("stamp unreadable (") and why in reasons[0]
    assert any("unreadable" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def test_a_forced_stage_is_outdated(project):
    _stamp("prep")
    decision, _ = judge(plan(["prep"], {})[0], State(), State().digests(), force=True)
    assert not decision.up_to_date and decision.reasons == ["forced (--force)"]


def test_tune_reads_the_train_notebook_its_trial_backend_and_its_configuration(project):
    (project / "runs" / "x" / "study").mkdir(parents=True)
    (project / "runs" / "x" / "study" / "trials.csv").write_text("number,state\n")
    tune = {"tune": {"n_trials": 1}}
    stamp_as_if_run("tune", tune)
    assert _why("tune", tune) == []
    _edit_cell(project / "notebooks" / "train.ipynb", "code", "\nprint('new')")
    assert _why("tune", tune) == ["notebook changed: notebooks/train.ipynb"]
    stamp_as_if_run("tune", tune)
    _edit(project / "runner" / "trial_backend.py", '"""', '"""Changed. ')
    _edit(project / "conf" / "hptuning.yml", "n_trials: 3", "n_trials: 4")
    assert _why("tune", tune) == [
        "code changed: runner/trial_backend.py",
        "changed: conf/hptuning.yml",
    ]
