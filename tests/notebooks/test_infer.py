"""The infer notebook, executed for real through ``python -m runner infer``: a model trained
and registered by the train notebook on a small generated data set, then files of reviews
scored with it (folders, tables, labelled or not, local and gs://), tracked in MLflow; a job
stopped by SIGTERM leaves no output."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scrapbook as sb

from lib.data import prep
from lib.tracking import registry
from tests.support.datagen import make_raw_dir
from tests.support.provenance import check_provenance
from tests.support.runner_process import error_traceback_shown, loud_lines
from tests.support.signals import all_gone, start_stage, wait_for
from tests.support.train_runs import run_train, train_runner

pytestmark = pytest.mark.slow
COLUMNS = ["id", "probability", "label", "model_name", "model_version"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A processed data set, its raw folder, and the train notebook's model: exported to a
    file and registered as imdb-sentiment version 1, the champion, in an SQLite store."""
    root = tmp_path_factory.mktemp("infer")
    raw = make_raw_dir(root / "raw", per_label=60, words=40)
    prep.prepare([raw], root / "processed")
    result, store = run_train(root, root / "processed", "-p", "register_model", "True")
    assert result.returncode == 0, result.stderr[-3000:]
    scraps = sb.read_notebook(str(root / "run" / "train.ipynb")).scraps
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1, tracking_uri=store)
    return SimpleNamespace(
        raw=raw,
        processed=root / "processed",
        store=store,
        model_file=root / "model" / "model.keras",
        test_accuracy=scraps["test_accuracy"].data,
    )


def _infer(tmp_path: Path, *args: str, env: dict | None = None):
    """``python -m runner infer ARGS`` with its run folder under ``tmp_path``: (the finished
    process, the executed notebook's scraps or None)."""
    result = train_runner(["infer", "--output-dir", str(tmp_path / "run"), *args], tmp_path, env)
    notebook = tmp_path / "run" / "infer.ipynb"
    scraps = sb.read_notebook(str(notebook)).scraps if notebook.is_file() else None
    return result, scraps


def _local(trained, *args: str):
    """A local model file, no tracking."""
    return ("-r", "model_uri", str(trained.model_file), "-p", "setup_mlflow", "False", *args)


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_processed_test_split_scores_as_train_evaluated_it_and_the_run_records_it(
    tmp_path, trained
):
    output = tmp_path / "out" / "scores.jsonl"
    test_split = trained.processed / "test.parquet"
    result, scraps = _infer(
        tmp_path,
        "-r", "model_uri", "models:/imdb-sentiment@champion",
        "-r", "input_path", str(test_split),
        "-r", "output_path", str(output),
        "-r", "id_column", "id",
        "-r", "label_column", "label",
        "-p", "mlflow_tracking_uri", trained.store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert loud_lines(result.stdout + result.stderr) == [], result.stderr[-3000:]
    table = pq.read_table(test_split, columns=["id"]).column("id").to_pylist()
    assert f"infer: reviews {len(table)}/{len(table)} (100%)" in result.stderr

    rows = _rows(output)
    assert [r["id"] for r in rows] == table  # one row per review, in input order
    assert list(rows[0]) == COLUMNS
    assert {(r["model_name"], r["model_version"]) for r in rows} == {("imdb-sentiment", "1")}
    assert all(r["label"] == int(r["probability"] >= 0.5) for r in rows)
    # The same test accuracy as train's evaluation of the same model.
    assert scraps["accuracy"].data == pytest.approx(trained.test_accuracy, abs=1e-9)
    assert scraps["reviews"].data == len(table) and scraps["skipped"].data == 0

    client = mlflow.MlflowClient(trained.store)
    experiment = client.get_experiment_by_name("batch-inference")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == scraps["mlflow_run_id"].data and run.info.status == "FINISHED"
    params, metrics = run.data.params, run.data.metrics
    assert params["model_uri"] == "models:/imdb-sentiment@champion"
    assert (params["model_name"], params["model_version"]) == ("imdb-sentiment", "1")
    assert params["model_alias"] == "champion" and params["input_path"] == str(test_split)
    assert params["input_fingerprint"] == scraps["input_fingerprint"].data
    assert params["input_fingerprint"].startswith("sha256:")
    assert metrics["reviews"] == len(table) and metrics["skipped"] == 0
    assert metrics["positive_share"] == pytest.approx(sum(r["label"] for r in rows) / len(rows))
    assert metrics["reviews_per_s"] > 0 and metrics["accuracy"] == scraps["accuracy"].data
    assert 0.5 < metrics["auc"] <= 1.0
    matrix = scraps["confusion_matrix"].data
    assert metrics["true_positives"] == matrix[1][1] and sum(map(sum, matrix)) == len(table)
    files = {
        a.path
        for folder in ("plots", "results", "notebook", "provenance")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert files == {
        "plots/probability_histogram.png",
        "plots/confusion_matrix.png",
        "results/summary.json",
        "notebook/infer.ipynb",
        "notebook/infer.html",
        "provenance/environment.json",
    }
    # The data set behind the champion: its registered version's tag.
    fingerprint = prep.read_manifest(trained.processed)["fingerprint"]
    check_provenance(client, run.info.run_id, "infer", fingerprint, ("lib/inference/batch.py",))

    # The same job again: its output is there, refused before any kernel, left as it was.
    before = output.read_bytes()
    again, _ = _infer(
        tmp_path / "again",
        "-r", "input_path", str(test_split),
        "-r", "output_path", str(output),
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"error: output_path: {output} already exists: choose another output or set "
        "overwrite to True"
    )
    assert output.read_bytes() == before


def test_an_aclimdb_folder_is_scored_with_its_labels_ids_as_its_relative_paths(tmp_path, trained):
    output = tmp_path / "scores.parquet"
    folder = trained.raw / "test"
    args = _local(trained, "-r", "input_path", str(folder), "-r", "output_path", str(output))
    result, scraps = _infer(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(output)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt"))
    assert [r["id"] for r in rows] == files and files[0].startswith("neg/")
    assert list(rows[0]) == COLUMNS
    assert rows[0]["model_name"] == str(trained.model_file)
    assert rows[0]["model_version"].startswith("sha256:")
    assert scraps["accuracy"].data > 0.8  # the generated reviews are easy to tell apart
    assert "confusion_matrix" in scraps and "mlflow_run_id" not in scraps


def test_a_flat_folder_without_labels_skips_what_it_cannot_read_and_counts_why(tmp_path, trained):
    folder = tmp_path / "new-reviews"
    (folder / "more").mkdir(parents=True)
    (folder / "a.txt").write_text("A wonderful, superb film. I loved it!")
    (folder / "more" / "b.txt").write_text("Awful, boring: a waste of time.")
    (folder / "empty.txt").write_text("  \n")
    (folder / "latin1.txt").write_bytes(b"caf\xe9 awful")
    output = tmp_path / "scores.csv"
    result, scraps = _infer(
        tmp_path,
        *_local(trained, "-r", "input_path", str(folder), "-r", "output_path", str(output)),
        "-p", "include_text", "True",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(output)
    assert [r["id"] for r in rows] == ["a.txt", "more/b.txt"]
    assert [r["label"] for r in rows] == ["1", "0"]
    assert rows[1]["text"] == "Awful, boring: a waste of time."
    assert scraps["skipped_empty"].data == 1 and scraps["skipped_not_utf8"].data == 1
    assert scraps["skipped_examples"].data == {"empty": ["empty.txt"], "not_utf8": ["latin1.txt"]}
    assert "accuracy" not in scraps


@pytest.mark.parametrize("extension", [".csv", ".jsonl"])
def test_a_table_with_id_and_text_columns_is_scored_in_its_order(tmp_path, trained, extension):
    reviews = [("r-3", "A wonderful, superb film."), ("r-1", None), ("r-2", "Awful and dull.")]
    table = pa.table({"review_id": [r[0] for r in reviews], "body": [r[1] for r in reviews]})
    path = tmp_path / f"reviews{extension}"
    if extension == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    output = tmp_path / "scores.jsonl"
    result, scraps = _infer(
        tmp_path,
        *_local(trained, "-r", "input_path", str(path), "-r", "output_path", str(output)),
        "-r", "text_column", "body", "-r", "id_column", "review_id",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(output)
    assert [(r["id"], r["label"]) for r in rows] == [("r-3", 1), ("r-2", 0)]
    # A CSV's empty field is an empty string, a JSON null a null: skipped either way.
    assert scraps["skipped"].data == 1 and scraps["skipped_examples"].data in (
        {"null": ["r-1"]},
        {"empty": ["r-1"]},
    )


@pytest.mark.services
def test_gs_input_model_and_output_tracked_on_the_server(
    tmp_path, trained, gcs_env, mlflow_tracking_env
):
    from lib.core import gcs
    from tests.support.services import BUCKET, mlflow_env

    folder = f"infer-tests/{uuid.uuid4().hex}"
    prefix = f"gs://{BUCKET}/{folder}"
    gcs.upload(trained.raw / "test", f"{prefix}/reviews")
    gcs.upload(trained.model_file, f"{prefix}/model/model.keras")
    result, scraps = _infer(
        tmp_path,
        "-r", "model_uri", f"{prefix}/model/model.keras",
        "-r", "input_path", f"{prefix}/reviews",
        "-r", "output_path", f"{prefix}/out/scores.csv",
        env=mlflow_env(mlflow_tracking_env),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    names = [b.name for b in gcs.get_client().list_blobs(BUCKET, prefix=f"{folder}/out/")]
    assert names == [f"{folder}/out/scores.csv"]  # written once, under its name only
    gcs.download(f"{prefix}/out/scores.csv", tmp_path / "scores.csv")
    rows = _rows(tmp_path / "scores.csv")
    assert len(rows) == 120 and rows[0]["id"].startswith("neg/")
    assert scraps["accuracy"].data > 0.8
    # The server by its URL: an earlier test of this process may have set MLflow's global URI,
    # which wins over the environment.
    client = mlflow.MlflowClient(mlflow_tracking_env.url)
    run = client.get_run(scraps["mlflow_run_id"].data)
    assert run.info.status == "FINISHED"
    assert run.data.params["model_uri"] == f"{prefix}/model/model.keras"
    assert run.data.params["model_version"].startswith("sha256:")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "notebook")} == {
        "notebook/infer.ipynb",
        "notebook/infer.html",
    }
    check_provenance(client, run.info.run_id, "infer", None)  # a model file: no data set known


def test_sigterm_mid_scoring_leaves_nothing_under_the_outputs_name(tmp_path, trained):
    texts = [f"A wonderful film number {i}, superb and moving." for i in range(200_000)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "many.parquet")
    output = tmp_path / "out" / "scores.jsonl"
    proc = start_stage(
        tmp_path, "infer", *_local(trained),
        "-r", "input_path", str(tmp_path / "many.parquet"),
        "-r", "output_path", str(output),
        "-p", "batch_size", "16",
    )  # fmt: skip

    def partial() -> bool:
        return output.parent.is_dir() and any(output.parent.glob(f".{output.name}.partial-*"))

    wait_for(partial, proc, "scoring started")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "terminated (SIGTERM): infer stopped"
    assert not error_traceback_shown(stderr), stderr[-3000:]
    assert list(output.parent.iterdir()) == []  # no output, and no partial file left
    assert not all_gone(tmp_path)
