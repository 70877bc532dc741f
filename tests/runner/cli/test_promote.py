"""``python -m runner promote`` against real registered models in a real local store (SQLite)
and, once, the real auth MLflow server with GCS artifacts: the first version becomes
champion, a better candidate moves it, a worse or an equal one does not, --force does, and
every bad input is one line that changes nothing.

The good model is the session's tiny trained model (tests/conftest.py), the worse one the
same model inverted (1 - p, a Keras layer), which is deterministically worse; each test
registers what it needs under a model name of its own."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest

from lib.data import prep
from lib.tracking import promotion, registry
from lib.tracking import runs as tracking
from runner.cli.main import main
from tests.support import logged_models, services
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import error_traceback_shown, loud_lines, run_runner
from tests.support.services import BUCKET

pytestmark = pytest.mark.slow  # trains and loads models


@dataclass
class World:
    root: Path
    store: str
    processed: Path
    fingerprint: str
    good: object  # the Keras models
    worse: object
    uris: dict[str, str]  # logged models: good, worse, no_data (no data_path), other_signature


@pytest.fixture(scope="module")
def world(tmp_path_factory, trained_model) -> World:
    root = tmp_path_factory.mktemp("promote")
    store = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROJECT_ROOT", str(root))  # artifacts under root/mlartifacts
        prep.prepare([make_raw_dir(root / "raw", per_label=40)], root / "processed")
        good = trained_model
        worse = logged_models.inverted(good)
        params = {"data_path": str(root / "processed")}
        uris = {
            "good": logged_models.log_model(store, good, experiment="promote-tests", params=params),
            "worse": logged_models.log_model(
                store, worse, experiment="promote-tests", params=params
            ),
            "no_data": logged_models.log_model(store, good, experiment="promote-tests"),
            "other_signature": logged_models.log_other_signature(store, "promote-tests"),
        }
        mlflow.set_tracking_uri(store)
        tracking.setup_experiment(promotion.EXPERIMENT)  # its artifacts under root too
    manifest = prep.read_manifest(root / "processed")
    return World(root, store, root / "processed", manifest["fingerprint"], good, worse, uris)


@pytest.fixture(autouse=True)
def _runner_logs(runner_logs):
    """main() sets up the runner's logging (tests/conftest.py's runner_logs undoes it)."""


def _register(world: World, name: str, *kinds: str) -> None:
    for kind in kinds:
        registry.register(world.uris[kind], name, {}, tracking_uri=world.store)


def _promote(world: World, capsys, name: str, *args: str) -> tuple[int, str, str]:
    """``python -m runner promote`` in this process; (exit status, last stdout line, stderr)."""
    code = main(["promote", "--tracking-uri", world.store, "--model-name", name, *args])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, lines[-1] if lines else "", err


def _client(world: World):
    return mlflow.MlflowClient(tracking_uri=world.store, registry_uri=world.store)


def _aliases(world: World, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in _client(world).get_registered_model(name).aliases.items()}


def _tags(world: World, name: str, version: int) -> dict[str, str]:
    return _client(world).get_model_version(name, str(version)).tags


def _promotion_runs(world: World, name: str) -> list:
    experiment = _client(world).get_experiment_by_name(promotion.EXPERIMENT)
    return _client(world).search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.model_name = '{name}'",
        order_by=["attributes.start_time DESC"],
    )


def test_the_first_version_becomes_champion_from_the_command_line(world):
    name = "first"
    _register(world, name, "worse")
    registry.set_alias(name, registry.CHALLENGER, 1, tracking_uri=world.store)
    env = dict(  # the store as users give it; no TF_* settings from this process
        {k: v for k, v in os.environ.items() if not k.startswith("TF_")},
        MLFLOW_TRACKING_URI=world.store,
        LOG_DIR=str(world.root / "logs"),
    )
    result = run_runner(["promote", "--model-name", name], env)
    assert result.returncode == 0, result.stderr
    # Nothing at WARNING or above: TensorFlow's C++ lines (oneDNN's, cuInit's) are logged.
    assert loud_lines(result.stdout + result.stderr) == [], result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        f"promoted {name} v1 to champion: test_accuracy 0.0000, no champion before"
    )
    assert _aliases(world, name) == {"challenger": "1", "champion": "1"}
    tags = _tags(world, name, 1)
    (run,) = _promotion_runs(world, name)
    assert tags["promotion_decision"] == "promoted" and tags["promotion_forced"] == "false"
    assert tags["promotion_champion_score"] == tags["promotion_champion_version"] == "none"
    assert tags["promotion_candidate_score"] == "0.0"
    assert tags["promotion_data_fingerprint"] == world.fingerprint
    assert tags["promotion_data_path"] == str(world.processed)
    assert tags["promotion_run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["candidate_version"] == "1"
    assert run.data.params["champion_version"] == "none"
    assert run.data.params["data_fingerprint"] == world.fingerprint
    assert run.data.metrics == {"candidate_score": 0.0}


def test_a_better_candidate_moves_the_champion_and_a_worse_one_does_not(world, capsys):
    name = "better-worse"
    _register(world, name, "worse", "good", "worse")
    registry.set_alias(name, registry.CHAMPION, 1, tracking_uri=world.store)
    registry.set_alias(name, registry.CHALLENGER, 2, tracking_uri=world.store)

    code, line, _ = _promote(world, capsys, name)  # the challenger by default
    assert code == 0
    assert line == (
        f"promoted {name} v2 to champion: test_accuracy 1.0000 vs 0.0000 (v1), +1.0000 >= 0.002"
    )
    assert _aliases(world, name)["champion"] == "2"
    assert _tags(world, name, 2)["promotion_decision"] == "promoted"

    code, line, _ = _promote(world, capsys, name, "--version", "3")
    assert code == 0  # a kept candidate is no error
    assert line == (
        f"kept {name} v2 as champion over v3: test_accuracy 0.0000 vs 1.0000 (v2), -1.0000 < 0.002"
    )
    assert _aliases(world, name)["champion"] == "2"
    tags = _tags(world, name, 3)
    assert tags["promotion_decision"] == "kept"
    assert tags["promotion_candidate_score"] == "0.0"
    assert tags["promotion_champion_score"] == "1.0"
    assert tags["promotion_champion_version"] == "2"
    assert tags["promotion_margin"] == "-1.0"
    assert tags["promotion_forced"] == "false"
    assert tags["promotion_data_fingerprint"] == world.fingerprint
    kept_run, promoted_run = _promotion_runs(world, name)
    assert tags["promotion_run_id"] == kept_run.info.run_id
    assert kept_run.info.status == "FINISHED"
    assert kept_run.data.metrics == {"candidate_score": 0.0, "champion_score": 1.0, "margin": -1.0}
    assert kept_run.data.tags["promotion_decision"] == "kept"
    assert kept_run.data.tags["line"] == line
    # One child run per model, each with MLflow's evaluation of the same test reviews.
    children = _client(world).search_runs(
        [kept_run.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{kept_run.info.run_id}'",
    )
    by_role = {run.data.tags["role"]: run for run in children}
    assert set(by_role) == {"candidate", "champion"}
    assert by_role["candidate"].data.tags["model_version"] == "3"
    assert by_role["candidate"].data.metrics["accuracy_score"] == 0.0
    assert by_role["champion"].data.metrics["accuracy_score"] == 1.0
    for run in children:
        assert run.data.metrics["example_count"] == 80
        assert {"roc_auc", "log_loss", "f1_score"} <= run.data.metrics.keys()
        (dataset,) = run.inputs.dataset_inputs
        assert str(world.processed) in dataset.dataset.source

    # On the loss (lower is better) the worse model loses too, with a negative margin.
    code, line, _ = _promote(world, capsys, name, "--version", "3", "--metric", "loss")
    assert code == 0 and line.startswith(f"kept {name} v2 as champion over v3: test_loss ")
    tags = _tags(world, name, 3)
    assert float(tags["promotion_candidate_score"]) > float(tags["promotion_champion_score"])
    assert float(tags["promotion_margin"]) < 0
    assert tags["promotion_metric"] == "test_loss"


def test_an_equal_candidate_needs_the_gain_and_force_moves_it_anyway(world, capsys):
    name = "equal-force"
    _register(world, name, "good", "good", "worse")
    registry.set_alias(name, registry.CHAMPION, 1, tracking_uri=world.store)

    code, line, _ = _promote(world, capsys, name, "--version", "2")
    assert code == 0 and line.endswith("test_accuracy 1.0000 vs 1.0000 (v1), +0.0000 < 0.002")
    assert line.startswith(f"kept {name} v1 as champion over v2")
    code, line, _ = _promote(world, capsys, name, "--version", "2", "--min-gain", "0")
    assert code == 0 and line == (
        f"promoted {name} v2 to champion: test_accuracy 1.0000 vs 1.0000 (v1), +0.0000 >= 0"
    )
    assert _aliases(world, name)["champion"] == "2"

    code, line, _ = _promote(world, capsys, name, "--version", "3", "--force")
    assert code == 0 and line == (
        f"promoted {name} v3 to champion (forced): test_accuracy 0.0000 vs 1.0000 (v2), "
        "-1.0000 < 0.002"
    )
    assert _aliases(world, name)["champion"] == "3"
    tags = _tags(world, name, 3)
    assert (tags["promotion_decision"], tags["promotion_forced"]) == ("promoted", "true")
    (forced_run, *_) = _promotion_runs(world, name)
    assert forced_run.data.params["force"] == "true"

    # Rolled back to a known-good version by version number; asking again moves nothing.
    code, line, _ = _promote(world, capsys, name, "--version", "2")
    assert code == 0 and line.startswith(f"promoted {name} v2 to champion: test_accuracy 1.0000")
    runs = len(_promotion_runs(world, name))
    code, line, _ = _promote(world, capsys, name, "--version", "2")
    assert code == 0 and line == f"{name} v2 is already champion: nothing moved"
    assert len(_promotion_runs(world, name)) == runs


def test_force_moves_the_champion_away_from_one_that_cannot_be_loaded(world, capsys):
    name = "broken-champion"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROJECT_ROOT", str(world.root))
        uri = logged_models.log_model(world.store, world.worse, experiment="promote-tests")
    broken = registry.register(uri, name, {}, tracking_uri=world.store)
    _register(world, name, "good")
    registry.set_alias(name, registry.CHAMPION, 1, tracking_uri=world.store)
    shutil.rmtree(urlsplit(broken.source).path)  # its artifacts are gone

    code, _, err = _promote(world, capsys, name, "--version", "2")
    assert code == 2 and not error_traceback_shown(err), err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"{name} v1 cannot be loaded" in error and "give --force to move champion" in error
    assert _aliases(world, name) == {"champion": "1"} and _promotion_runs(world, name) == []

    code, line, _ = _promote(world, capsys, name, "--version", "2", "--force")
    assert code == 0 and line == (
        f"promoted {name} v2 to champion (forced): test_accuracy 1.0000, champion v1 could "
        "not be scored"
    )
    assert _aliases(world, name) == {"champion": "2"}
    tags = _tags(world, name, 2)
    assert tags["promotion_champion_version"] == "1"
    assert tags["promotion_champion_score"] == tags["promotion_margin"] == "none"
    assert (tags["promotion_decision"], tags["promotion_forced"]) == ("promoted", "true")


@pytest.fixture(scope="module")
def bad_inputs(world) -> str:
    """A registered model: v1 champion, v2 another signature, v3 without data_path, v4 worse."""
    name = "bad-inputs"
    _register(world, name, "good", "other_signature", "no_data", "worse")
    registry.set_alias(name, registry.CHAMPION, 1, tracking_uri=world.store)
    fake = world.root / "fake-processed"  # prep's files, another manifest
    fake.mkdir()
    for file in ("train.parquet", "test.parquet"):
        (fake / file).write_bytes((world.processed / file).read_bytes())
    (fake / prep.MANIFEST).write_text(json.dumps({"format": "other"}))
    (world.root / "notes").mkdir()
    (world.root / "notes" / "a.txt").write_text("not data")
    return name


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model-name", "imdb-sentimnet"], "no registered model 'imdb-sentimnet'"),
        (["--version", "9"], "has no version 9; its versions: 1, 2, 3, 4"),
        (["--alias", "nope"], "has no alias 'nope'; its aliases: champion (version 1)"),
        (["--alias", "challenger"], "has no alias 'challenger'"),  # the default candidate
        (["--version", "2"], "v2's signature (inputs ['text': string (required)]"),
        (["--version", "3"], "--data: bad-inputs v3 has no run with a data_path parameter"),
        (["--version", "4", "--data", "{root}/missing"], "--data: {root}/missing does not exist"),
        (["--version", "4", "--data", "{root}/notes"], "is not a processed data set"),
        (["--version", "4", "--data", "{root}/fake-processed"], "manifest.json is not one"),
        (["--version", "4", "--metric", "bleu"], "--metric: unknown metric 'bleu'"),
        (["--version", "4", "--min-gain", "-1"], "--min-gain: -1.0 is not allowed"),
        (["--version", "4", "--min-gain", "x"], "argument --min-gain: invalid float value"),
        (["--version", "0"], "argument --version: '0' is not a version number"),
        (["--version", "4", "--alias", "champion"], "not allowed with argument --version"),
        (["--model-name", "a/b"], "--model-name: 'a/b' is not allowed"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix_and_changes_nothing(
    world, bad_inputs, capsys, args, expected
):
    name = bad_inputs
    before = (
        _aliases(world, name),
        [_tags(world, name, v) for v in (1, 2, 3, 4)],
        len(_promotion_runs(world, name)),
    )
    args = [arg.format(root=world.root) for arg in args]
    try:
        code, _, err = _promote(world, capsys, name, *args)
    except SystemExit as exc:  # argparse's usage errors exit from inside the parser
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert expected.format(root=world.root) in errors[0]
    assert not error_traceback_shown(err)
    after = (
        _aliases(world, name),
        [_tags(world, name, v) for v in (1, 2, 3, 4)],
        len(_promotion_runs(world, name)),
    )
    assert after == before


@pytest.mark.services
def test_promotion_against_the_auth_server_with_gcs_artifacts(
    world, mlflow_server, gcs_emulator, monkeypatch, capsys
):
    for key, value in services.mlflow_env(mlflow_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    experiment = f"promote-{uuid.uuid4().hex[:8]}"
    location = f"gs://{BUCKET}/mlflow-tracking-server/{experiment}"
    params = {"data_path": str(world.processed)}
    uris = []
    for model in (world.worse, world.good):
        tracking.start_run(
            tracking_uri=mlflow_server.url, experiment_name=experiment, artifact_location=location
        )
        try:
            tracking.log_params(params)
            uris.append(tracking.log_keras_model(model, logged_models.EXAMPLES))
        finally:
            mlflow.end_run()
    name = f"imdb-{uuid.uuid4().hex[:8]}"
    for uri in uris:
        assert registry.register(uri, name, {}).source.startswith(f"gs://{BUCKET}/")
    registry.set_alias(name, registry.CHAMPION, 1)
    registry.set_alias(name, registry.CHALLENGER, 2)
    code = main(["promote", "--model-name", name])  # the server from $MLFLOW_TRACKING_URI
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[-1] == (
        f"promoted {name} v2 to champion: test_accuracy 1.0000 vs 0.0000 (v1), +1.0000 >= 0.002"
    )
    client = registry.client()
    assert str(client.get_registered_model(name).aliases["champion"]) == "2"
    tags = client.get_model_version(name, "2").tags
    run = client.get_run(tags["promotion_run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["margin"] == 1.0
    assert mlflow_server.password not in json.dumps(
        {"tags": run.data.tags, "params": run.data.params, "version": tags}
    )
