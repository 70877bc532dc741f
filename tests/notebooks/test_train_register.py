"""The train notebook's register_model: a real run through the runner registers its model
as a new version with its tags; `python -m runner predict` then finds it by alias."""

from __future__ import annotations

import json
import subprocess

import mlflow
import pytest
import scrapbook as sb

from lib.data import prep
from lib.tracking import registry
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import ROOT, error_traceback_shown
from tests.support.train_runs import run_train, train_runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("register-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=40, words=40)], root / "processed")
    return root / "processed"


def test_a_registered_train_run_is_a_tagged_version_found_by_alias(tmp_path, data):
    env = {"MLFLOW_HPTUNING_TAG": "1641159546"}
    name = "imdb-test-model"
    result, store = run_train(
        tmp_path, data, "-p", "register_model", "True", "-r", "registered_model_name", name, env=env
    )
    assert result.returncode == 0, result.stderr
    scraps = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps
    assert scraps["model_version"].data == "1"
    version = registry.resolve(name, version=1, tracking_uri=store)
    assert version.run_id == scraps["mlflow_run_id"].data
    manifest = json.loads((data / prep.MANIFEST).read_text())
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version.tags[registry.DATA_FINGERPRINT_TAG] == manifest["fingerprint"]
    assert version.tags[registry.GIT_COMMIT_TAG] == head
    assert version.tags[registry.HPTUNING_TAG] == "1641159546"
    for metric in ("test_accuracy", "test_loss"):
        assert float(version.tags[metric]) == pytest.approx(scraps[metric].data)
    run = mlflow.MlflowClient(store).get_run(version.run_id)
    assert run.data.params["data_path"] == str(data)  # what promotion evaluates on

    # predict by alias, as a user does after a promotion, against this local store.
    registry.set_alias(name, registry.CHAMPION, 1, tracking_uri=store)
    texts = ["A wonderful, superb film.", "Awful and boring."]
    out = train_runner(
        ["predict", "--model", f"models:/{name}@champion", *texts],
        tmp_path,
        {"MLFLOW_TRACKING_URI": store},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("positive") and lines[1].startswith("negative"), out.stdout
    # An unknown alias is one line naming what exists.
    out = train_runner(
        ["predict", "--model", f"models:/{name}@best", "x"],
        tmp_path,
        {"MLFLOW_TRACKING_URI": store},
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert f"registered model {name!r} has no alias 'best'" in last, out.stderr
    assert "its aliases: champion (version 1)" in last
    assert not error_traceback_shown(out.stderr)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["-p", "setup_mlflow", "False"],
            "register_model: True is not allowed: registering needs MLflow tracking",
        ),
        (["-r", "registered_model_name", "a/b"], "registered_model_name: 'a/b' is not allowed"),
    ],
)
def test_registering_without_tracking_or_with_a_bad_name_stops_before_training(
    tmp_path, data, extra, expected
):
    result, _ = run_train(tmp_path, data, "-p", "register_model", "True", *extra)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert expected in last, result.stderr
    assert not error_traceback_shown(result.stderr)
    assert not (tmp_path / "run" / "train.ipynb").exists()  # refused before any kernel
