"""runner.pipeline.data_inputs: what the pipeline's stamp records of reviews to score and of
a model, now. Reviews by content (a file, a folder searched as infer reads it); a model file
by content, a run by its URI, a registered model (alias, version, latest) by the version the
registry gives it now; a store that does not answer is one line, and no store is made by
asking."""

from __future__ import annotations

import socket

import pytest

from runner.pipeline import data_inputs
from runner.pipeline.data_inputs import Unresolved, model, reviews
from runner.pipeline.digests import FileDigests


@pytest.fixture
def files() -> FileDigests:
    return FileDigests()  # no cache: each call reads the files


def test_a_folder_of_reviews_is_hashed_by_what_infer_reads_in_it(tmp_path, files):
    folder = tmp_path / "new-reviews"
    (folder / "pos").mkdir(parents=True)
    (folder / "a.txt").write_text("a fine film")
    (folder / "pos" / "b.txt").write_text("a great film")
    before = reviews(folder, files)
    (folder / ".hidden.txt").write_text("not read")  # hidden, as the reader leaves it out
    (folder / "_SUCCESS").write_text("")
    assert reviews(folder, files) == before
    (folder / "pos" / "b.txt").write_text("a dull film")
    assert reviews(folder, files) != before
    (folder / "pos" / "b.txt").rename(folder / "pos" / "c.txt")  # an id is the path
    assert reviews(folder, files) not in (before, None)
    assert reviews(tmp_path / "missing", files) is None
    table = tmp_path / "reviews.csv"
    table.write_text("text\na fine film\n")
    assert reviews(table, files) == files.file(table)


def test_a_model_file_or_folder_is_hashed_by_content_and_a_version_or_run_by_its_uri(
    tmp_path, files, monkeypatch
):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    (tmp_path / "models" / "latest").mkdir(parents=True)
    exported = tmp_path / "models" / "latest" / "model.keras"
    exported.write_bytes(b"one model")
    digest, shown = model("models/latest/model.keras", files, None)
    assert digest == files.file(exported) and shown is None
    assert model("models/latest", files, None) == (digest, None)  # the file loading takes
    exported.write_bytes(b"another model")
    assert model("models/latest", files, None)[0] not in (digest, None)
    assert model("models/gone.keras", files, None) == (None, None)
    # A run's artifacts do not change: no store is asked (none answers there).
    run = model("runs:/0123abcd/model", files, "http://127.0.0.1:9")
    assert run[1] == "run 0123abcd" and run[0] != model("runs:/4567/model", files, None)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_alias_of_a_store_that_does_not_answer_is_one_line(tmp_path, files, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.setattr(data_inputs, "STORE_DEADLINE_S", 1.0)
    stopped = f"http://127.0.0.1:{_free_port()}"  # nothing listens: a stopped server
    with pytest.raises(Unresolved) as info:
        model("models:/imdb-sentiment@champion", files, stopped)
    message = str(info.value)
    assert message.startswith("cannot resolve models:/imdb-sentiment@champion: cannot reach")
    assert stopped in message and "\n" not in message
    with pytest.raises(Unresolved, match=r"mlflow\.db does not exist yet"):
        model("models:/imdb-sentiment@champion", files, None)  # the project's store
    assert not (tmp_path / "mlflow.db").exists()  # not made by asking


def test_an_alias_is_the_version_it_names_now(tmp_path, files, monkeypatch):
    import mlflow

    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(store, registry_uri=store)
    client.create_registered_model("imdb-sentiment")
    for _ in range(2):
        client.create_model_version("imdb-sentiment", source=(tmp_path / "m").as_uri())
    client.set_registered_model_alias("imdb-sentiment", "champion", "1")
    first = model("models:/imdb-sentiment@champion", files, store)
    assert first[1] == "version 1"
    assert first == model("models:/imdb-sentiment/1", files, store)  # the same model
    assert model("models:/imdb-sentiment", files, store)[1] == "version 2"  # the latest
    client.set_registered_model_alias("imdb-sentiment", "champion", "2")
    moved = model("models:/imdb-sentiment@champion", files, store)
    assert moved[1] == "version 2" and moved[0] != first[0]
    with pytest.raises(Unresolved, match=r"has no alias 'chamion'; its aliases: champion"):
        model("models:/imdb-sentiment@chamion", files, store)
    with pytest.raises(Unresolved, match=r"has no version 3; its versions: 1, 2"):
        model("models:/imdb-sentiment/3", files, store)
    with pytest.raises(Unresolved, match=r"names neither a version nor an alias"):
        model("models:/imdb-sentiment/Production", files, store)
