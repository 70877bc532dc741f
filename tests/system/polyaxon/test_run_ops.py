"""The rendered ops executed for real (slow): the process-data command, rendered with
WORKING_DIR set to a temporary project folder, executes the real prep notebook on a tiny
generated aclImdb folder, the train-model command then trains on its output, and the tuning
command runs a 2-trial study.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support import polyaxon_render as plx
from tests.support.polyaxon_cases import FILES, project_dir, venv_env

# --------------------------------------------------------------------------- execution

POSITIVE = ["A wonderful film with a moving story.", "Brilliant acting and a superb ending."]
NEGATIVE = ["An awful and boring film.", "The plot was a dull mess and the ending was worse."]


def make_aclimdb(root: Path, per_label: int = 4, seed: int = 0, first_id: int = 0) -> Path:
    """A tiny aclImdb-layout folder: <root>/{train,test}/{pos,neg}/<id>_<rating>.txt."""
    rng = random.Random(seed)
    review_id = first_id
    for split in ("train", "test"):
        for label, sentences, ratings in (
            ("pos", POSITIVE, (7, 8, 9, 10)),
            ("neg", NEGATIVE, (1, 2, 3, 4)),
        ):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_label):
                text = " ".join(rng.sample(sentences, len(sentences)))
                text += f" Review number {review_id}.<br /><br />I would say so again."
                (folder / f"{review_id}_{rng.choice(ratings)}.txt").write_text(text, "utf-8")
                review_id += 1
    return root


@pytest.mark.slow
def test_process_data_command_executes_the_prep_notebook(tmp_path):
    project = project_dir(tmp_path)
    one = make_aclimdb(tmp_path / "raw" / "aclImdb one", per_label=4, seed=1)
    two = make_aclimdb(tmp_path / "raw" / "aclImdb-two", per_label=3, seed=2, first_id=100)
    processed = tmp_path / "data" / "processed"
    run_dir = tmp_path / "run"
    job = plx.render_job(
        FILES / "process-data.yml",
        {
            "WORKING_DIR": str(project),
            "RAW_DATA_DIRS": json.dumps([str(one), str(two)]),
            "PROCESSED_DATA_DIR": str(processed),
            "SA_CRED_PATH": str(tmp_path / "no-key.json"),
            "NOTEBOOK_OUTPUT_DIR": str(run_dir),
        },
    )
    env = job.process_env(venv_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    result = subprocess.run(job.shell_argv, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "prep succeeded" in result.stdout
    rows = {s: pq.read_table(processed / f"{s}.parquet").num_rows for s in ("train", "test")}
    assert rows == {"train": 14, "test": 14}
    manifest = json.loads((processed / "manifest.json").read_text(encoding="utf-8"))
    assert [d["rows"] for d in manifest["raw_dirs"]] == [16, 12]
    assert (run_dir / "prep.ipynb").is_file() and (run_dir / "prep.html").is_file()
    notebook = (run_dir / "prep.ipynb").read_text(encoding="utf-8")
    assert "aclImdb one" in notebook  # the injected raw_dirs parameter
    # PROJECT_ROOT is the working folder: the run's logs land there, not in the checkout.
    assert (project / "logs").is_dir()


@pytest.mark.slow
def test_the_pipeline_ops_execute_in_order_and_leave_their_mlflow_runs(tmp_path):
    """The DAG's ops (process-data -> train-model -> tune-model), rendered as Polyaxon would
    and executed here in their order on a tiny generated data set: train reads the folder
    process-data wrote; every run lands in a local MLflow store with its Polyaxon run uuid."""
    import mlflow
    import optuna

    project = project_dir(tmp_path)
    raw = make_aclimdb(tmp_path / "raw" / "aclImdb", per_label=12, seed=3)
    processed = tmp_path / "data" / "processed"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    model_dir = tmp_path / "model"
    small = {"epochs": 1, "bs": 8}
    ops = plx.render_dag(
        FILES / "pipeline.yml",
        {
            "WORKING_DIR": str(project),
            "RAW_DATA_DIRS": json.dumps([str(raw)]),
            "PROCESSED_DATA_DIR": str(processed),
            "SETUP_MLFLOW": True,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXP_NAME": "polyaxon-pipeline",
            "STUDY_NAME": "pipeline-study",
            "TUNING_STORAGE": storage,
            "TRAIN_NOTEBOOK_PARAMS": json.dumps({**small, "model_dir": str(model_dir)}),
            # A train_params mapping replaces the pipeline's, so it names data_path again.
            "TUNE_NOTEBOOK_PARAMS": json.dumps(
                {"n_trials": 2, "n_jobs": 1, "train_params": {**small, "data_path": str(processed)}}
            ),
        },
    )
    base = venv_env()
    # The ops write their executed notebooks to the run's outputs under Polyaxon's artifacts
    # mount; a temporary folder stands for that volume here, as for WORKING_DIR.
    mount = "/plx-context/artifacts"
    artifacts = tmp_path / "plx-artifacts"
    for name, job in ops.items():
        argv = [arg.replace(mount, str(artifacts)) for arg in job.shell_argv]
        result = subprocess.run(
            argv, env=job.process_env(base), capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, (name, result.stdout[-3000:] + result.stderr[-5000:])
    assert (processed / "manifest.json").is_file() and (model_dir / "model.keras").is_file()
    train_outputs = artifacts / ops["train-model"].run_uuid / "outputs" / "notebook"
    assert (train_outputs / "train.ipynb").is_file()

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("polyaxon-pipeline")
    runs = client.search_runs([experiment.experiment_id])
    by_uuid = {}
    for run in runs:
        assert run.info.status == "FINISHED"
        by_uuid.setdefault(run.data.tags.get("polyaxon_run_uuid"), []).append(run)
    train_runs = by_uuid[ops["train-model"].run_uuid]
    assert len(train_runs) == 1
    assert train_runs[0].data.params["data_path"] == str(processed)
    notebook = [a.path for a in client.list_artifacts(train_runs[0].info.run_id, "notebook")]
    assert "notebook/train.ipynb" in notebook
    tune_runs = by_uuid[ops["tune-model"].run_uuid]  # the study's parent run and its trials
    children = [r for r in tune_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and len(tune_runs) == 3
    study = optuna.load_study(study_name="pipeline-study", storage=storage)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
