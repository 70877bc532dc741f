"""lib.tracking.model_io: saving an exported model, finding and loading it wherever it lives,
predicting.

The model is a real exported nbngram model, trained for two epochs on synthetic reviews.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lib.core import gcs
from lib.core.errors import ModelError, OutputError
from lib.tracking import model_io
from tests.support.runner_process import error_traceback_shown, run_runner
from tests.support.services import BUCKET

REVIEWS = ["A wonderful, brilliant film: I loved it!", "Awful, boring, the worst waste."]


@pytest.fixture(scope="module")
def exported(trained_model):
    """A trained model that takes raw review strings (the session's: tests/conftest.py)."""
    return trained_model


@pytest.fixture(scope="module")
def model_file(exported, tmp_path_factory) -> Path:
    return model_io.save_model(exported, tmp_path_factory.mktemp("model") / "model.keras")


def _probabilities(model, texts) -> np.ndarray:
    from lib.model import training

    return training.predict_proba(model, texts)


# -- save_model -------------------------------------------------------------------------


@pytest.mark.slow
def test_save_model_writes_one_loadable_file_and_no_temporary(exported, tmp_path):
    path = tmp_path / "models" / "latest" / "model.keras"  # folders made as needed
    assert model_io.save_model(exported, path) == path
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]
    assert model_io.save_model(exported, str(path)) == path  # again: replaced, not beside it
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]
    loaded = model_io.load_model(str(path))
    np.testing.assert_allclose(
        _probabilities(loaded, REVIEWS), _probabilities(exported, REVIEWS), atol=1e-6
    )


# -- local_model_file -------------------------------------------------------------------


@pytest.mark.slow
def test_a_file_or_a_folder_holding_one_is_found(model_file, tmp_path, monkeypatch):
    assert model_io.local_model_file(str(model_file), tmp_path) == model_file
    folder = tmp_path / "run"
    for sub in ("b", "a/deeper"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "model.keras").write_bytes(model_file.read_bytes())
    (folder / "notes.txt").write_text("not a model")
    assert model_io.local_model_file(str(folder), tmp_path) == folder / "a/deeper/model.keras"
    # A relative path is taken from the project root.
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert model_io.local_model_file("run/b", tmp_path / "work") == folder / "b" / "model.keras"


def test_a_missing_model_is_a_model_error_that_lists_what_is_accepted(tmp_path):
    with pytest.raises(ModelError) as info:
        model_io.local_model_file(str(tmp_path / "nope.keras"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "nope.keras") in message and "does not exist" in message
    assert ".keras file" in message and "runs:/" in message and "gs://" in message


def test_a_folder_without_a_model_is_a_model_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "model.h5").write_bytes(b"an older format")
    with pytest.raises(ModelError, match=r"no \.keras model file under"):
        model_io.local_model_file(str(tmp_path / "empty"), tmp_path)


@pytest.mark.slow  # a new MLflow store (its migrations) and a model load: about 5 s
def test_a_runs_uri_is_fetched_from_the_mlflow_store(model_file, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(store)
    experiment = client.create_experiment("models", (tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifact(run.info.run_id, str(model_file), "model")
    client.set_terminated(run.info.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    workdir = tmp_path / "work"
    workdir.mkdir()
    local = model_io.local_model_file(f"runs:/{run.info.run_id}/model", workdir)
    assert local.is_relative_to(workdir) and local.read_bytes() == model_file.read_bytes()
    labels = [
        label for _, label, _ in model_io.predict_texts(f"runs:/{run.info.run_id}/model", REVIEWS)
    ]
    assert labels == ["positive", "negative"]


def test_an_mlflow_uri_the_store_lacks_is_a_model_error_naming_the_store(tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with pytest.raises(ModelError) as info:
        model_io.local_model_file(f"runs:/{uuid.uuid4().hex}/model", tmp_path)
    message = str(info.value)
    assert "could not be fetched from MLflow" in message and store in message
    assert "MLFLOW_TRACKING_URI" in message and "\n" not in message


@pytest.mark.slow
@pytest.mark.services
def test_a_gs_file_or_folder_is_downloaded(gcs_env, model_file, tmp_path):
    prefix = f"gs://{BUCKET}/model-io-tests/{uuid.uuid4().hex}"
    gcs.upload(model_file, f"{prefix}/file/model.keras")
    gcs.upload(model_file.parent, f"{prefix}/folder")
    for n, uri in enumerate((f"{prefix}/file/model.keras", f"{prefix}/folder")):
        workdir = tmp_path / str(n)
        workdir.mkdir()
        local = model_io.local_model_file(uri, workdir)
        assert local.is_relative_to(workdir) and local.name == "model.keras"
        assert local.read_bytes() == model_file.read_bytes()


# -- load_model and predict_texts -------------------------------------------------------


def test_a_file_that_is_not_a_model_is_a_model_error(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ModelError) as info:
        model_io.load_model(str(path))
    message = str(info.value)
    assert message.startswith(f"model {path} is not a readable Keras model (not a zip archive")
    assert "File not found" not in message and "\n" not in message


@pytest.mark.slow  # loads TensorFlow
def test_a_model_file_cut_short_or_damaged_is_not_a_readable_keras_model(model_file, tmp_path):
    data = model_file.read_bytes()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(data[: len(data) // 2])  # cut in half
    with pytest.raises(ModelError) as info:
        model_io.load_model(str(folder))  # a folder: the line names the file in it
    assert str(info.value).startswith(
        f"model {folder} (file {folder / 'model.keras'}) is not a readable Keras model"
    )
    # The archive whole, a member's bytes overwritten: Keras's own error, in the same line.
    damaged = bytearray(data)
    damaged[len(data) // 3 : len(data) // 3 + 4096] = bytes(4096)
    (folder / "model.keras").write_bytes(bytes(damaged))
    with pytest.raises(ModelError, match="is not a readable Keras model"):
        model_io.load_model(str(folder / "model.keras"))


def test_runner_predict_with_a_corrupt_model_file_is_one_line(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 cut short")
    result = run_runner(["predict", "--model", str(path), "a fine film"], os.environ)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a readable Keras model" in lines[0], result.stderr
    assert not error_traceback_shown(result.stderr)


@pytest.mark.slow  # loads TensorFlow
def test_saving_into_a_read_only_folder_is_one_line_naming_it(exported, read_only_dir):
    with pytest.raises(OutputError) as info:
        model_io.save_model(exported, read_only_dir / "model" / "model.keras")
    assert str(info.value).startswith(f"model folder {read_only_dir / 'model'} cannot be written")


@pytest.mark.slow
def test_predict_texts_labels_each_text_in_order(exported, model_file):
    texts = [REVIEWS[1], REVIEWS[0], ""]
    results = model_io.predict_texts(str(model_file), texts)
    assert [text for text, _, _ in results] == texts
    probabilities = [p for _, _, p in results]
    np.testing.assert_allclose(probabilities, _probabilities(exported, texts), atol=1e-6)
    assert all(isinstance(p, float) and 0 <= p <= 1 for p in probabilities)
    for _, label, p in results:
        assert label == ("positive" if p >= 0.5 else "negative")
    assert [label for _, label, _ in results[:2]] == ["negative", "positive"]
