"""lib.tracking.registry against a real local store (SQLite) and the real auth MLflow server with
GCS artifacts: registering, resolving by version and alias, and the one-line errors."""

from __future__ import annotations

import os
import subprocess
import uuid

import mlflow
import numpy as np
import pytest

from lib.core import git
from lib.core.errors import ModelError, ParameterError
from lib.tracking import registry
from lib.tracking import runs as tracking
from tests.support import logged_models, services
from tests.support.runner_process import run_runner
from tests.support.services import BUCKET

pytestmark = pytest.mark.slow  # the logged-model helpers import lib.model (Keras)


@pytest.fixture(scope="module")
def model(trained_model):
    return trained_model


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _register(store, model, name="imdb-sentiment", **tags):
    uri = logged_models.log_model(store, model, params={"data_path": "/data/processed"})
    return registry.register(uri, name, tags)


@pytest.mark.slow  # trains a model (once for the module)
def test_register_creates_the_model_then_new_versions_with_their_tags_and_run(store, model):
    first = _register(store, model, data_fingerprint="abc", test_accuracy="0.9")
    second = _register(store, model)
    assert (str(first.version), str(second.version)) == ("1", "2")
    assert first.tags == {"data_fingerprint": "abc", "test_accuracy": "0.9"}
    client = mlflow.MlflowClient(store)
    assert client.get_run(first.run_id).data.params["data_path"] == "/data/processed"
    assert first.source.endswith(f"{first.run_id}/artifacts/model")
    assert str(registry.resolve("imdb-sentiment").version) == "2"  # the latest
    assert registry.resolve("imdb-sentiment", version=1).run_id == first.run_id
    assert registry.resolve("imdb-sentiment", version="2").run_id == second.run_id


@pytest.mark.slow  # trains a model (once for the module)
def test_aliases_name_one_version_and_move(store, model):
    _register(store, model)
    _register(store, model)
    moved = registry.set_alias("imdb-sentiment", registry.CHAMPION, 1)
    assert str(moved.version) == "1" and registry.CHAMPION in moved.aliases
    assert str(registry.resolve("imdb-sentiment", alias="champion").version) == "1"
    registry.set_alias("imdb-sentiment", registry.CHAMPION, "2")
    assert str(registry.resolve("imdb-sentiment", alias="champion").version) == "2"
    # The registered version loads by alias, as the scoring server loads it.
    loaded = mlflow.pyfunc.load_model("models:/imdb-sentiment@champion")
    assert np.asarray(loaded.predict(["A wonderful film."])).shape == (1,)


@pytest.mark.slow  # trains a model (once for the module)
def test_unknown_names_versions_and_aliases_are_one_line_errors_listing_what_exists(store, model):
    _register(store, model)
    registry.set_alias("imdb-sentiment", registry.CHALLENGER, 1)
    with pytest.raises(ModelError) as name:
        registry.resolve("imdb-sentimnet")
    assert "no registered model 'imdb-sentimnet'" in str(name.value)
    assert "registered models: imdb-sentiment" in str(name.value)
    with pytest.raises(ModelError) as version:
        registry.resolve("imdb-sentiment", version=7)
    assert "has no version 7; its versions: 1" in str(version.value)
    with pytest.raises(ModelError) as alias:
        registry.resolve("imdb-sentiment", alias="champion")
    assert "has no alias 'champion'; its aliases: challenger (version 1)" in str(alias.value)
    assert "runner promote" in str(alias.value)
    with pytest.raises(ModelError, match="has no version 3"):
        registry.set_alias("imdb-sentiment", "champion", 3)
    with pytest.raises(ParameterError, match="version: 'latest' is not allowed"):
        registry.resolve("imdb-sentiment", version="latest")
    with pytest.raises(ParameterError, match="registered_model_name"):
        registry.register("runs:/x/model", "a/b", {})
    for error in (name, version, alias):
        assert "\n" not in str(error.value)


def test_version_tags_hold_the_fingerprint_commit_tag_and_test_metrics(monkeypatch, tmp_path):
    metrics = {"test_accuracy": 0.875, "test_loss": 0.31, "val_loss": 0.3}
    tags = registry.version_tags(data_fingerprint="fp", hptuning_tag="t1", metrics=metrics)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags == {
        "data_fingerprint": "fp",
        "git_commit": head,  # the project is a git checkout
        "hptuning_tag": "t1",
        "test_accuracy": "0.875",
        "test_loss": "0.31",
    }
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))  # not a git checkout: no commit tag
    assert git.head_commit() is None
    assert "git_commit" not in registry.version_tags(
        data_fingerprint="fp", hptuning_tag=None, metrics={}
    )


@pytest.mark.slow
@pytest.mark.services
def test_the_auth_server_with_gcs_artifacts(mlflow_server, gcs_emulator, model, monkeypatch):
    for key, value in services.mlflow_env(mlflow_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    experiment = f"registry-{uuid.uuid4().hex[:8]}"
    location = f"gs://{BUCKET}/mlflow-tracking-server/{experiment}"
    store = mlflow_server.url
    tracking.start_run(tracking_uri=store, experiment_name=experiment, artifact_location=location)
    try:
        uri = tracking.log_keras_model(model, logged_models.EXAMPLES)
    finally:
        mlflow.end_run()
    name = f"imdb-{uuid.uuid4().hex[:8]}"
    version = registry.register(uri, name, {"data_fingerprint": "fp"})
    assert version.source.startswith(f"gs://{BUCKET}/")
    registry.set_alias(name, registry.CHAMPION, version.version)
    assert registry.resolve(name, alias=registry.CHAMPION).tags["data_fingerprint"] == "fp"
    with pytest.raises(ModelError, match="has no alias 'nope'; its aliases: champion"):
        registry.resolve(name, alias="nope")
    with pytest.raises(ModelError, match=f"no registered model '{name}x'"):
        registry.resolve(name + "x")
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert np.asarray(loaded.predict(logged_models.EXAMPLES)).shape == (2,)
    # python -m runner predict by alias, as a user does, against the server and the bucket.
    texts = ["A wonderful, superb film.", "Awful and boring."]
    out = run_runner(["predict", "--model", f"models:/{name}@champion", *texts], dict(os.environ))
    assert out.returncode == 0, out.stderr
    expected = loaded.predict(texts)
    printed = [float(line.split()[1]) for line in out.stdout.splitlines()[:2]]
    np.testing.assert_allclose(printed, expected, atol=1e-4)
    out = run_runner(["predict", "--model", f"models:/{name}@gone", "x"], dict(os.environ))
    assert out.returncode == 2
    assert f"registered model {name!r} has no alias 'gone'" in out.stderr.strip().splitlines()[-1]
