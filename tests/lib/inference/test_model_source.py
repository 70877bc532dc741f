"""lib.inference.model_source against a real local store (SQLite) and real Keras models:
model_uri resolved to the version used, one-line errors listing what exists, and the scorer
(predict_on_batch on slices, traced once, long reviews counted and said once)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from lib.core.errors import ModelError
from lib.inference import model_source
from lib.tracking import model_io, registry
from tests.support import logged_models
from tests.support.reviews import synthetic_reviews

pytestmark = pytest.mark.slow  # Keras models, and an MLflow store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _register(store, model, name="imdb-sentiment"):
    return registry.register(logged_models.log_model(store, model), name, {})


def test_an_alias_resolves_to_the_version_it_names_now_and_that_version_is_loaded(
    store, trained_model, tmp_path
):
    _register(store, trained_model)
    _register(store, trained_model)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1)
    ref = model_source.resolve("models:/imdb-sentiment@champion", tmp_path)
    assert (ref.name, ref.version, ref.alias) == ("imdb-sentiment", "1", "champion")
    assert ref.source == "models:/imdb-sentiment/1"  # what is loaded, whatever the alias does
    assert ref.described() == {
        "model_uri": "models:/imdb-sentiment@champion",
        "model_name": "imdb-sentiment",
        "model_version": "1",
        "model_alias": "champion",
    }
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 2)
    assert model_source.resolve("models:/imdb-sentiment@champion", tmp_path).version == "2"
    assert model_source.resolve("models:/imdb-sentiment/1", tmp_path).version == "1"
    assert model_source.resolve("models:/imdb-sentiment", tmp_path).version == "2"  # latest
    assert model_source.resolve("models:/imdb-sentiment/latest", tmp_path).version == "2"

    loaded = model_source.load("models:/imdb-sentiment@champion", tracking_uri=store)
    assert (loaded.name, loaded.version) == ("imdb-sentiment", "2")
    assert loaded.sequence_length is None  # nbngram reads every word


def test_what_the_registry_lacks_is_one_line_listing_what_it_has(store, trained_model, tmp_path):
    _register(store, trained_model)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1)
    with pytest.raises(ModelError) as alias:
        model_source.resolve("models:/imdb-sentiment@best", tmp_path)
    assert "has no alias 'best'; its aliases: champion (version 1)" in str(alias.value)
    with pytest.raises(ModelError) as version:
        model_source.resolve("models:/imdb-sentiment/9", tmp_path)
    assert "has no version 9; its versions: 1" in str(version.value)
    with pytest.raises(ModelError) as name:
        model_source.resolve("models:/imdb-sentimnet@champion", tmp_path)
    assert "registered models: imdb-sentiment" in str(name.value)
    with pytest.raises(ModelError, match="names neither a version nor an alias: write"):
        model_source.resolve("models:/imdb-sentiment/Production", tmp_path)
    for error in (alias, version, name):
        assert "\n" not in str(error.value)


def test_a_model_file_is_versioned_by_its_content(trained_model, tmp_path):
    path = model_io.save_model(trained_model, tmp_path / "model" / "model.keras")
    ref = model_source.resolve(str(path), tmp_path / "work")
    assert ref.name == str(path) and ref.version.startswith("sha256:")
    assert len(ref.version) == len("sha256:") + 12 and ref.source == str(path)
    # Its folder names the same file; a copy is the same version; another file is not.
    assert model_source.resolve(str(tmp_path / "model"), tmp_path / "work").version == ref.version
    shutil.copy(path, tmp_path / "copy.keras")
    assert model_source.file_version(tmp_path / "copy.keras") == ref.version
    (tmp_path / "other.keras").write_bytes(path.read_bytes() + b"\0")
    assert model_source.file_version(tmp_path / "other.keras") != ref.version
    with pytest.raises(ModelError, match="does not exist"):
        model_source.resolve(str(tmp_path / "none.keras"), tmp_path / "work")


def test_the_scorer_gives_the_models_probabilities_in_slices_traced_once(trained_model, tmp_path):
    path = model_io.save_model(trained_model, tmp_path / "model.keras")
    loaded = model_source.load(str(path))
    texts, _ = synthetic_reviews(40, seed=3)
    expected = np.asarray(loaded.keras_model.predict(np.array(texts, dtype=object), verbose=0))
    scorer = model_source.scorer(loaded, batch_size=8)
    first = scorer(texts[:16])
    traced = scorer.model.predict_function.experimental_get_tracing_count()
    got = np.concatenate([first, scorer(texts[16:32]), scorer(texts[32:])])
    assert got.shape == (40,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected.ravel(), rtol=1e-5, atol=1e-6)
    # Slices of one size after the first: no new trace, whatever the number of calls.
    assert scorer.model.predict_function.experimental_get_tracing_count() == traced
    assert scorer.truncated == 0 and scorer.sequence_length is None


def test_a_review_longer_than_the_model_reads_is_scored_on_what_it_reads_said_once(caplog):
    from lib.model import models

    texts, labels = synthetic_reviews(60, seed=5)
    bundle = models.build_model(
        "reference", texts, labels, seed=0, sequence_length=8, max_tokens=200
    )
    keras_model = bundle.export_model()
    reader, length = model_source._sequence_reader(keras_model)
    assert length == 8
    ref = model_source.ModelRef("m", "m", "1", "m")
    loaded = model_source.LoadedModel(ref, keras_model, length, reader)
    assert loaded.described()["model_sequence_length"] == 8
    scorer = model_source.scorer(loaded, batch_size=4)
    short = ["good film", "bad film", "a fine film indeed"]
    long_ones = ["word " * 9, "film " * 30]
    with caplog.at_level(logging.INFO, logger="lib.core.progress"):
        probabilities = scorer(short + long_ones)
        scorer(long_ones + short)
    assert scorer.truncated == 4  # two long reviews, scored twice
    # Scored on what it reads: the same probability as its first 8 words.
    cut = scorer(["word " * 8])
    np.testing.assert_allclose(probabilities[3], cut[0], rtol=1e-6)
    notices = [r for r in caplog.records if "longer than the model reads" in r.getMessage()]
    assert len(notices) == 1 and "(8 tokens)" in notices[0].getMessage()
