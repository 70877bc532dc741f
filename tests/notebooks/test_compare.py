"""The compare notebook, executed for real through ``python -m runner compare``: two real
train runs (champion and challenger, differing in one parameter), hand-made runs that differ
in the data, a lib module or a package version, an old run without provenance, two tune
parent runs; each comparison logged to the experiment ``comparisons``. The run against the
authenticated server with ``gs://`` artifacts is in test_compare_server.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import nbformat
import pytest
import scrapbook as sb

from lib.comparison import record
from lib.data import prep
from lib.tracking import registry
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import loud_lines
from tests.support.train_runs import run_train, train_runner

pytestmark = pytest.mark.slow


def compare(tmp_path: Path, run_a: str, run_b: str, *args: str, env: dict | None = None):
    """``python -m runner compare RUN_A RUN_B ARGS``: (the process, its scraps by name)."""
    run_dir = tmp_path / "compare-run"
    result = train_runner(
        ["compare", run_a, run_b, "--output-dir", str(run_dir), *args], tmp_path, env
    )
    notebook = run_dir / "compare.ipynb"
    scraps = sb.read_notebook(str(notebook)).scraps if notebook.is_file() else {}
    return result, {name: scrap.data for name, scrap in scraps.items()}


def outputs(tmp_path: Path) -> str:
    """Every text and HTML output of the executed compare notebook, joined."""
    notebook = nbformat.read(str(tmp_path / "compare-run" / "compare.ipynb"), as_version=4)
    return "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/html", ""))
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two train runs on one small data set, bs 16 then 32, registered as versions 1
    (champion) and 2 (challenger) of imdb-sentiment in an SQLite store."""
    root = tmp_path_factory.mktemp("compare-train")
    prep.prepare([make_raw_dir(root / "raw", per_label=40, words=30)], root / "processed")
    ids = []
    for bs in ("16", "32"):
        result, store = run_train(
            root, root / "processed", "-p", "register_model", "True", "-p", "bs", bs
        )
        assert result.returncode == 0, result.stderr[-3000:]
        ids.append(sb.read_notebook(str(root / "run" / "train.ipynb")).scraps["mlflow_run_id"].data)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1, tracking_uri=store)
    registry.set_alias("imdb-sentiment", registry.CHALLENGER, 2, tracking_uri=store)
    return SimpleNamespace(store=store, champion=ids[0], challenger=ids[1])


def test_champion_against_challenger_by_alias_shows_the_parameter_and_is_logged(tmp_path, trained):
    result, scraps = compare(
        tmp_path, "models:/imdb-sentiment@champion", "models:/imdb-sentiment@challenger",
        "-p", "mlflow_tracking_uri", trained.store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not loud_lines(result.stderr), loud_lines(result.stderr)
    assert (scraps["newer_run_id"], scraps["older_run_id"]) == (
        trained.challenger,
        trained.champion,
    )
    assert scraps["changed_params"] == ["bs"]  # model_dir and the run's name are where, not what
    assert scraps["same_data"] in (
        "same",
        "unknown",
    )  # unknown until the runs carry the fingerprint
    shown = outputs(tmp_path)
    assert "Learning curves of both runs: newer accuracy" in shown  # one figure, both runs
    assert "plots/confusion_matrix.png" in shown and "<th>newer</th><th>older</th>" in shown
    assert "# Parameters" in shown  # the cells table, the injected cell's code changed
    client = mlflow.MlflowClient(trained.store)
    comparison = client.get_run(scraps["mlflow_run_id"])
    assert client.get_experiment(comparison.info.experiment_id).name == "comparisons"
    assert comparison.data.tags[record.RUN_A_TAG] == trained.challenger
    assert comparison.data.tags[record.RUN_B_TAG] == trained.champion
    assert {a.path for a in client.list_artifacts(comparison.info.run_id, "notebook")} == {
        "notebook/compare.ipynb",
        "notebook/compare.html",
    }
    for run_id in (trained.champion, trained.challenger):
        tags = client.get_run(run_id).data.tags
        assert tags[record.COMPARISON_TAG] == comparison.info.run_id
    assert scraps["untagged_runs"] == []


@pytest.mark.parametrize(
    ("name", "scrap", "expected", "shown"),
    [
        ("data", "same_data", "different", "data set: different"),
        ("module", "changed_modules", ["lib/model/training.py"], "lib/model/training.py"),
        ("package", "changed_packages", ["tensorflow"], "2.18.0"),
        (
            "old",
            "missing",
            [
                "the older run {old} lacks its environment record "
                "(provenance/environment.json): compared on what it has",
                "the older run {old} lacks its tags stage, git_commit, git_dirty, "
                "data_fingerprint: compared on what it has",
            ],
            "not known: the older",
        ),
    ],
)
def test_a_run_that_differs_in_one_thing_shows_it(
    tmp_path, compare_store, name, scrap, expected, shown
):
    ids = compare_store.ids
    result, scraps = compare(
        tmp_path, ids[name], ids["base"], "-p", "mlflow_tracking_uri", compare_store.uri
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if name == "old":
        expected = [line.format(old=ids["old"][:8]) for line in expected]
        assert scraps["changed_params"] == [] and scraps["same_data"] == "unknown"
    assert scraps[scrap] == expected
    assert shown in outputs(tmp_path)


def test_two_tune_parent_runs_show_their_best_trials_and_importances(tmp_path, compare_store):
    ids = compare_store.ids
    result, scraps = compare(
        tmp_path, "latest", ids["tune_old"],
        "-p", "stage", "tune", "-p", "experiment", "test-exp",
        "-p", "mlflow_tracking_uri", compare_store.uri,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert scraps["newer_run_id"] == ids["tune_new"]
    assert "study_name" in scraps["changed_params"]
    shown = outputs(tmp_path)
    assert "params.learning_rate" in shown and "study/history.png" in shown
    assert shown.count("best_val_loss") >= 1
