"""app.state against a real local store (SQLite) and a real Keras model: the page's model
loaded once, what the page says of it, the alias loaded again when it has moved."""

from __future__ import annotations

import gc

import pytest

from app import state
from lib.core.errors import ModelError
from lib.model.explanation import EXACT
from lib.tracking import registry
from tests.support import logged_models

pytestmark = pytest.mark.slow  # Keras models, and an MLflow store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(state, "_current", None)
    return uri


def _register(store, model, accuracy="0.8125"):
    uri = logged_models.log_model(store, model)
    return registry.register(uri, "imdb-sentiment", {"test_accuracy": accuracy})


def test_the_champion_is_loaded_with_its_version_run_and_accuracy(store, trained_model):
    version = _register(store, trained_model)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, version.version)
    model = state.current()  # nothing started: the default, the champion
    info = model.info
    assert (info.uri, info.name, info.version, info.alias) == (
        "models:/imdb-sentiment@champion",
        "imdb-sentiment",
        "1",
        "champion",
    )
    assert info.run_id == version.run_id and info.test_accuracy == 0.8125
    assert info.trained and info.trained.endswith(" UTC")
    assert info.run_url is None  # a SQLite store has no web page
    assert state.current() is model  # once per process
    explained = model.explain("A wonderful film, I loved it.")
    assert explained.method == EXACT and explained.probability > 0.5
    good, bad = model.score(["A wonderful film, I loved it.", "An awful film"]).tolist()
    assert good == pytest.approx(explained.probability, abs=1e-5) and bad < good


def test_the_alias_is_loaded_again_when_it_has_moved(store, trained_model):
    _register(store, trained_model)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1)
    state.start("models:/imdb-sentiment@champion")
    assert state.reload_if_moved()[0] is False
    _register(store, logged_models.inverted(trained_model), accuracy="0.1")
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 2)
    moved, model = state.reload_if_moved()
    assert moved and model.info.version == "2" and model.info.test_accuracy == 0.1
    assert state.current() is model
    # The model answering is left out of the cyclic collector's walks (0.25 s each).
    keras_model = model.loaded.keras_model
    assert not any(found is keras_model for found in gc.get_objects())


def test_a_model_file_is_named_by_its_path_and_versioned_by_content(store, trained_model, tmp_path):
    path = tmp_path / "model.keras"
    trained_model.save(path)
    model = state.start(str(path))
    assert model.info.name == str(path) and model.info.version.startswith("sha256:")
    assert model.info.run_id is None and model.info.alias is None
    assert state.reload_if_moved() == (False, model)  # no alias to follow


def test_a_model_that_cannot_be_loaded_is_one_line(store, tmp_path):
    with pytest.raises(ModelError) as caught:
        state.start(str(tmp_path / "missing.keras"))
    assert "\n" not in str(caught.value)


def test_the_run_page_is_linked_on_a_tracking_server_without_its_credentials():
    url = state.run_page("https://bob:secret@mlflow.example:5000/", "3", "abc")
    assert url == "https://mlflow.example:5000/#/experiments/3/runs/abc"
    assert state.run_page("sqlite:///x.db", "3", "abc") is None
