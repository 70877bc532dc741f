"""Scores written in chunks, appearing under the final name only when complete."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from lib.core.errors import ParameterError
from lib.inference.writers import check_output, open_scores


def read_scores(path: Path) -> list[dict]:
    """The rows of a scores file, whatever its format."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    table = pq.read_table(path) if path.suffix == ".parquet" else pcsv.read_csv(path)
    return table.to_pylist()


def _write_two_chunks(path: Path, **options) -> None:
    with open_scores(path, model_name="imdb", model_version="3", **options) as writer:
        writer.write(["a", "b"], np.array([0.9, 0.2]), np.array([1, 0]), ["good", "bad"])
        writer.write(["c"], np.array([0.5]), np.array([1]), ["so so"])


@pytest.mark.parametrize("extension", [".jsonl", ".parquet", ".csv"])
def test_rows_in_order_with_model_name_and_version(tmp_path, extension):
    path = tmp_path / "out" / f"scores{extension}"
    _write_two_chunks(path, include_text=True)
    rows = read_scores(path)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert [r["probability"] for r in rows] == pytest.approx([0.9, 0.2, 0.5])
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert {str(r["model_version"]) for r in rows} == {"3"}
    assert {r["model_name"] for r in rows} == {"imdb"}
    assert [r["text"] for r in rows] == ["good", "bad", "so so"]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_text_only_when_asked_and_an_empty_output_is_still_a_table(tmp_path):
    _write_two_chunks(tmp_path / "s.jsonl")
    assert "text" not in read_scores(tmp_path / "s.jsonl")[0]
    with open_scores(tmp_path / "none.parquet", model_name="m", model_version="1"):
        pass
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0


@pytest.mark.parametrize("interrupt", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("extension", [".jsonl", ".parquet"])
def test_an_interrupted_write_leaves_nothing(tmp_path, interrupt, extension):
    path = tmp_path / f"scores{extension}"
    with pytest.raises(type(interrupt)):
        with open_scores(path, model_name="m", model_version="1") as writer:
            writer.write(["a"], np.array([0.7]), np.array([1]))
            assert list(tmp_path.iterdir())  # being written, under another name
            assert not path.exists()
            raise interrupt
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("old\n")
    with pytest.raises(ParameterError, match="already exists.*overwrite") as info:
        check_output(path)
    assert "\n" not in str(info.value)
    _write_two_chunks(path, overwrite=True)
    assert len(read_scores(path)) == 3


def test_an_output_that_appears_while_writing_is_not_replaced(tmp_path):
    path = tmp_path / "scores.jsonl"
    with pytest.raises(ParameterError, match="appeared while scoring"):
        with open_scores(path, model_name="m", model_version="1") as writer:
            writer.write(["a"], np.array([0.7]), np.array([1]))
            path.write_text("someone else's\n")
    assert path.read_text() == "someone else's\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.jsonl"]


@pytest.mark.parametrize("name", ["scores.txt", "scores", "scores.json"])
def test_an_unknown_output_extension_is_refused_naming_those_accepted(tmp_path, name):
    with pytest.raises(ParameterError, match=r"\.jsonl, \.parquet, \.csv"):
        check_output(tmp_path / name)


def test_a_folder_is_not_an_output(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        check_output(tmp_path / "d.jsonl", overwrite=True)


@pytest.mark.slow
@pytest.mark.services
def test_gcs_output_is_uploaded_once_complete(gcs_env, tmp_path):
    from lib.core import gcs
    from tests.support.services import BUCKET

    uri = f"gs://{BUCKET}/scores-tests/{uuid.uuid4().hex}/scores.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with open_scores(uri, model_name="m", model_version="1") as writer:
            writer.write(["a"], np.array([0.7]), np.array([1]))
            raise KeyboardInterrupt
    assert not gcs.exists(uri)
    with open_scores(uri, model_name="m", model_version="1") as writer:
        writer.write(["a"], np.array([0.7]), np.array([1]))
    gcs.download(uri, tmp_path / "scores.jsonl")
    assert read_scores(tmp_path / "scores.jsonl")[0]["id"] == "a"
    with pytest.raises(ParameterError, match="already exists"):
        check_output(uri)
