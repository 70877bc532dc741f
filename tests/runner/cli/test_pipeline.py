"""``python -m runner pipeline`` (runner.cli.pipeline): parameters per stage, and the pipeline
run for real on small data (cold, warm, one parameter changed, raw data changed, a forced
stage, two pipelines at once). One cold run is shared: a test that would change what is up to
date works on its own copy of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lib.core.errors import ParameterError
from runner.cli.main import build_parser
from runner.cli.pipeline import stage_parameters
from tests.support.datagen import make_raw_dir
from tests.support.pipeline_project import (
    FAST,
    RAW,
    copy_project,
    popen_runner,
    project_env,
    runner_in,
    without_heavy_imports,
)


def _given(*argv: str) -> dict:
    return stage_parameters(build_parser().parse_args(["pipeline", *argv]).params)


def test_parameters_are_given_per_stage_in_order(tmp_path):
    conf = tmp_path / "p.yml"
    conf.write_text("train: {epochs: 4, bs: 8}\nprep:\n  raw_dirs: [a, b]\ntune.n_trials: 2\n")
    given = _given("-p", "train.epochs", "2", "-f", str(conf), "-r", "train.seed", "7")
    assert given == {
        "prep": {"raw_dirs": ["a", "b"]},
        "train": {"epochs": 4, "bs": 8, "seed": "7"},
        "tune": {"n_trials": 2},
        "infer": {},
    }
    assert _given("-f", str(conf), "-p", "train.epochs", "2")["train"]["epochs"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-p", "epochs", "2"], "-p epochs: the name lacks its stage: write prep.NAME"),
        (["-y", "{epochs: 2}"], "-y epochs: the name lacks its stage"),
        (["-p", "fit.epochs", "2"], "-p fit.epochs: the name lacks its stage"),
    ],
)
def test_a_parameter_without_its_stage_is_refused(argv, message):
    with pytest.raises(ParameterError, match=message):
        _given(*argv)


# -- the pipeline, executed ---------------------------------------------------------------


def _runs(root: Path, stage: str) -> list[Path]:
    return sorted((root / "runs").glob(f"*-{stage}"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory) -> tuple[Path, str]:
    """A project copy after one cold pipeline run (prep and train) on small data."""
    root = copy_project(tmp_path_factory.mktemp("pipeline") / "project")
    result = runner_in(root, ["pipeline", *FAST])
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result.stdout


@pytest.fixture
def project(cold, tmp_path) -> Path:
    """Its own copy of the cold run's project."""
    return Path(shutil.copytree(cold[0], tmp_path / "project", symlinks=True))


@pytest.mark.slow
def test_a_cold_pipeline_runs_prep_then_train_and_says_where_their_products_are(cold):
    root, out = cold
    lines = out.splitlines()
    assert (
        "prep: no earlier successful run" in lines and "train: no earlier successful run" in lines
    )
    assert lines.index("prep: no earlier successful run") < lines.index(
        "train: no earlier successful run"
    )
    assert "  processed data set: data/processed" in lines
    assert "  model: models/latest/model.keras" in lines
    assert any(line.startswith("  MLflow run ") for line in lines)
    assert any(
        line.startswith("  open it: mlflow ui --backend-store-uri sqlite:///")
        and "then http://127.0.0.1:5000/#/experiments/" in line
        for line in lines
    )
    assert (root / "models" / "latest" / "model.keras").is_file()
    assert len(_runs(root, "prep")) == len(_runs(root, "train")) == 1


@pytest.mark.slow
def test_a_warm_pipeline_runs_nothing_and_imports_no_mlflow_tensorflow_or_papermill(
    project, tmp_path
):
    env = project_env(project, {"PYTHONPATH": without_heavy_imports(tmp_path / "blocked")})
    result = runner_in(project, ["pipeline", *FAST], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("prep: up to date: raw data sha256:")
    assert lines[0].endswith(
        f"notebook, parameters and code unchanged since run {_runs(project, 'prep')[0].name[:16]}"
    )
    assert any(line.startswith("train: up to date: processed data sha256:") for line in lines)
    assert lines[-1].startswith("pipeline: every stage is up to date")
    assert len(_runs(project, "prep")) == len(_runs(project, "train")) == 1


@pytest.mark.slow
def test_two_pipelines_after_one_train_parameter_changed_run_train_once(project):
    argv = ["pipeline", *FAST, "-p", "train.epochs", "2"]
    procs = [popen_runner(project, argv) for _ in range(2)]
    outs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert any(line.startswith("prep: up to date") for line in out.splitlines())
    ran = [
        i for i, (out, _) in enumerate(outs) if "train: parameters changed: epochs 1 -> 2" in out
    ]
    assert len(ran) == 1, outs
    waiter = 1 - ran[0]
    lines = outs[waiter][0].splitlines()
    assert any(line.startswith("train: up to date") for line in lines)
    for line in lines:  # if it had to wait, it said for whom
        if "waiting for another" in line:
            assert f"(pid {procs[ran[0]].pid})" in line
    assert len(_runs(project, "train")) == 2 and len(_runs(project, "prep")) == 1


# The next two re-run prep in the cold run's own project, not in a copy: the data set records
# the raw folders' absolute paths, so prep in a copy would write another data set. Neither
# changes what the data set holds, so each leaves the project up to date for the others.


@pytest.mark.slow
def test_raw_data_changed_reruns_prep_and_train_only_if_the_data_set_changed(cold):
    root = cold[0]
    preps, trains = len(_runs(root, "prep")), len(_runs(root, "train"))
    review = sorted((root / RAW / "train" / "pos").glob("*.txt"))[0]
    review.write_text(review.read_text() + " !!")  # cleans to the same text
    result = runner_in(root, ["pipeline", *FAST])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "prep: raw data changed" in lines
    assert any(line.startswith("train: up to date") for line in lines)
    assert len(_runs(root, "prep")) == preps + 1 and len(_runs(root, "train")) == trains


@pytest.mark.slow
def test_a_forced_stage_runs_again_and_a_bad_force_is_refused(cold):
    root = cold[0]
    preps, trains = len(_runs(root, "prep")), len(_runs(root, "train"))
    result = runner_in(root, ["pipeline", *FAST, "--force", "prep"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "prep: forced (--force)" in result.stdout.splitlines()
    assert any(line.startswith("train: up to date") for line in result.stdout.splitlines())
    assert len(_runs(root, "prep")) == preps + 1 and len(_runs(root, "train")) == trains
    bad = runner_in(root, ["pipeline", "--force", "tune"])
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --force: tune is not one of --stages prep,train: add it"


# -- with infer: prep, train, then infer scoring train's model -------------------------------

REVIEWS = "data/new-reviews"  # infer's default input_path; output_path data/scores.jsonl
WITH_INFER = ["pipeline", "--stages", "prep,train,infer", *FAST]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, str]:
    """A project copy after one cold pipeline prep,train,infer on small data."""
    root = copy_project(tmp_path_factory.mktemp("pipeline-infer") / "project")
    make_raw_dir(root / REVIEWS, per_label=3, seed=5, words=12)
    result = runner_in(root, WITH_INFER)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result.stdout


def _scores(root: Path) -> list[dict]:
    text = (root / "data" / "scores.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_a_cold_pipeline_with_infer_scores_the_reviews_with_the_model_train_exported(scored):
    root, out = scored
    lines = out.splitlines()
    ran = [lines.index(f"{name}: no earlier successful run") for name in ("prep", "train", "infer")]
    assert ran == sorted(ran)  # prep, train, infer: in that order
    assert "  scores: data/scores.jsonl" in lines
    rows = _scores(root)
    assert sorted(row["id"] for row in rows) == sorted(
        str(p.relative_to(root / REVIEWS)) for p in (root / REVIEWS).rglob("*.txt")
    )
    assert {row["model_name"] for row in rows} == {"models/latest/model.keras"}
    assert len(_runs(root, "infer")) == 1


@pytest.mark.slow
def test_a_second_pipeline_with_infer_runs_nothing_and_a_changed_review_reruns_infer_only(
    scored, tmp_path
):
    root = Path(shutil.copytree(scored[0], tmp_path / "project", symlinks=True))
    again = runner_in(root, WITH_INFER)
    assert again.returncode == 0, again.stderr[-3000:]
    lines = again.stdout.splitlines()
    assert any(line.startswith("infer: up to date: reviews sha256:") for line in lines)
    assert lines[-1].startswith("pipeline: every stage is up to date")
    before = _scores(root)
    review = sorted((root / REVIEWS / "test" / "neg").glob("*.txt"))[0]
    review.write_text("A wonderful, wonderful film: superb, brilliant, moving.")
    changed = runner_in(root, WITH_INFER)
    assert changed.returncode == 0, changed.stderr[-3000:]  # over its own earlier output
    lines = changed.stdout.splitlines()
    assert "infer: reviews changed" in lines
    assert [line.split(":")[0] for line in lines if ": up to date" in line] == ["prep", "train"]
    assert len(_runs(root, "infer")) == 2 and len(_runs(root, "train")) == 1
    after = {row["id"]: row["probability"] for row in _scores(root)}
    name = str(review.relative_to(root / REVIEWS))
    assert after[name] != {row["id"]: row["probability"] for row in before}[name]
