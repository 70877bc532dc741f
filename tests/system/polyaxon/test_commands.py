"""The rendered container commands, run by bash with a stand-in ``python`` that records how it
was called (tests/support/polyaxon_cases.py): each job hands the runner exactly the parameters
and environment intended, whatever the values hold (spaces, quotes, ``$``, JSON).

The temporary project folder stands for the image's /home/aisg/project: it holds symlinks to
this checkout's lib/, runner/, notebooks/ and conf/, so the rendered ``cd WORKING_DIR`` is
kept as it is and everything the run writes (runs/, logs/) lands in the temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import polyaxon_render as plx
from tests.support.polyaxon_cases import FILES, NASTY, SHELL, project_dir, run_with_stub


def test_process_data_hands_the_runner_exact_values(tmp_path):
    project = project_dir(tmp_path)
    key = tmp_path / "sa key.json"
    key.write_text("{}", encoding="utf-8")
    raw_dirs = json.dumps(["/data/set one", f"/data/{NASTY}"])
    job = plx.render_job(
        FILES / "process-data.yml",
        {
            "WORKING_DIR": str(project),
            "RAW_DATA_DIRS": raw_dirs,
            "PROCESSED_DATA_DIR": f"/data/processed {NASTY}",
            "SA_CRED_PATH": str(key),
            "NOTEBOOK_OUTPUT_DIR": str(tmp_path / "out $x"),
            "NOTEBOOK_PARAMS": "{note: 'it''s', processed_dir: /elsewhere}",
        },
    )
    assert job.argv == [*SHELL, job.script]
    call = run_with_stub(job, tmp_path)
    assert call["stage"] == "prep"
    # NOTEBOOK_PARAMS comes last: it may override an input's parameter.
    assert call["parameters"] == {
        "raw_dirs": raw_dirs,
        "processed_dir": "/elsewhere",
        "note": "it's",
    }
    assert json.loads(call["parameters"]["raw_dirs"])[1] == f"/data/{NASTY}"
    assert call["output_dir"] == str(tmp_path / "out $x") and call["log_output"]
    assert Path(call["cwd"]) == project
    env = call["env"]
    assert env["PROJECT_ROOT"] == str(project)
    assert env["POLYAXON_RUN_UUID"] == job.run_uuid
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == str(key)
    assert env["IMDB_LOG_FORMAT"] == "json"  # the job log: JSON lines for the collector


def test_process_data_defaults(tmp_path):
    job = plx.render_job(FILES / "process-data.yml")
    script = job.script
    assert "cd '/home/aisg/project'\n" in script
    assert f"out='/plx-context/artifacts/{job.run_uuid}/outputs/notebook'" in script
    assert f"export POLYAXON_RUN_UUID='{job.run_uuid}'" in script
    assert "-r raw_dirs '[\"/polyaxon-v1-data/imdb-sentiment/data/raw/aclImdb\"]'" in script
    assert job.image == "registry.example.com/imdb-sentiment/data-prep:0.1.0"
    assert job.working_dir == "/home/aisg/project"
    assert job.env == []
    mounts = job.volume_mounts
    assert [m["mountPath"] for m in mounts] == ["/var/secret/cloud.google.com", "/tmp"]
    assert job.inputs["SA_CRED_PATH"].startswith(mounts[0]["mountPath"] + "/")
    assert job.volumes[0]["secret"] == {"secretName": "gcp-sa-credentials", "optional": True}
    assert job.volumes[1] == {"name": "tmp", "emptyDir": {}}


def test_a_missing_credentials_file_is_not_exported(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILES / "process-data.yml",
        {"WORKING_DIR": str(project), "SA_CRED_PATH": str(tmp_path / "absent.json")},
    )
    call = run_with_stub(job, tmp_path)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in call["env"]


def test_an_empty_notebook_output_dir_leaves_the_runner_default(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILES / "process-data.yml", {"WORKING_DIR": str(project), "NOTEBOOK_OUTPUT_DIR": ""}
    )
    call = run_with_stub(job, tmp_path)
    assert call["output_dir"] is None and "--output-dir" not in call["argv"]


@pytest.mark.parametrize("name", ["train-model-gpu.yml", "train-model-cpu.yml"])
def test_train_hands_the_runner_its_parameters_and_keeps_credentials_in_the_env(name, tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILES / name,
        {
            "WORKING_DIR": str(project),
            "INPUT_DATA_DIR": f"/data/processed {NASTY}",
            "SETUP_MLFLOW": True,
            "MLFLOW_AUTOLOG": False,
            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5005",
            "MLFLOW_EXP_NAME": "exp 'one'",
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": f"pa$$ {NASTY}",
            "NOTEBOOK_PARAMS": '{"epochs": 3, "optimiser": "adam", "learning_rate": 0.01}',
        },
    )
    call = run_with_stub(job, tmp_path)
    assert call["stage"] == "train"
    assert call["parameters"] == {
        "data_path": f"/data/processed {NASTY}",
        "model_dir": f"/plx-context/artifacts/{job.run_uuid}/outputs/model",
        "setup_mlflow": True,
        "mlflow_autolog": False,
        "register_model": True,  # with tracking, the run's model is a new registered version
        "mlflow_exp_name": "exp 'one'",
        "mlflow_tracking_uri": "http://mlflow.internal:5005",
        "epochs": 3,
        "optimiser": "adam",
        "learning_rate": 0.01,
    }
    env = call["env"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5005"
    assert env["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert env["MLFLOW_TRACKING_PASSWORD"] == f"pa$$ {NASTY}"
    # Credentials reach the environment only: never a notebook parameter.
    assert "alice" not in json.dumps(call["parameters"])
    assert not {"user", "password", "uri"} & set(env)


def test_train_defaults_leave_tracking_to_the_notebook(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(FILES / "train-model-gpu.yml", {"WORKING_DIR": str(project)})
    call = run_with_stub(job, tmp_path)
    assert call["parameters"] == {
        "data_path": "/polyaxon-v1-data/imdb-sentiment/data/processed",
        # The model goes to the run's outputs: the image's project folder is read-only.
        "model_dir": f"/plx-context/artifacts/{job.run_uuid}/outputs/model",
        "setup_mlflow": False,
        "mlflow_autolog": False,
        "register_model": False,  # nothing to register without tracking
        "mlflow_exp_name": "sentiment-classification",
    }
    assert not {k for k in call["env"] if k.startswith("MLFLOW_")}


def test_mlflow_credentials_from_the_secret_and_a_plain_input_overrides_it(tmp_path):
    project = project_dir(tmp_path)
    secrets = {("mlflow-credentials", "username"): "svc", ("mlflow-credentials", "password"): "s3"}
    job = plx.render_job(FILES / "train-model-cpu.yml", {"WORKING_DIR": str(project)})
    assert {e["name"] for e in job.env} == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] for e in job.env)
    env = run_with_stub(job, tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("svc", "s3")
    job = plx.render_job(
        FILES / "train-model-cpu.yml",
        {"WORKING_DIR": str(project), "MLFLOW_TRACKING_USERNAME": "bob"},
    )
    env = run_with_stub(job, tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("bob", "s3")


@pytest.mark.parametrize("name", ["train-model-gpu-hptuning.yml", "train-model-cpu-hptuning.yml"])
def test_tune_hands_the_runner_its_parameters(name, tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILES / name,
        {
            "WORKING_DIR": str(project),
            "INPUT_DATA_DIR": f"/data/{NASTY}",
            "SETUP_MLFLOW": True,
            "MLFLOW_AUTOLOG": True,
            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5005",
            "MLFLOW_EXP_NAME": "tuning",
            "STUDY_NAME": "study 'a'",
            "TUNING_STORAGE": "postgresql://optuna@db:5432/optuna",
            "TUNING_WORKER": 2,
            "NOTEBOOK_PARAMS": "{n_trials: 7, config_file: conf/other.yml}",
        },
    )
    call = run_with_stub(job, tmp_path, {("optuna-postgres", "password"): "pg-secret"})
    assert call["stage"] == "tune"
    # The notebook reads its config_file (conf/hptuning.yml) itself; explicit parameters win.
    assert call["parameters"] == {
        "study_name": "study 'a'",
        "storage": "postgresql://optuna@db:5432/optuna",
        "setup_mlflow": True,
        "mlflow_exp_name": "tuning",
        "mlflow_tracking_uri": "http://mlflow.internal:5005",
        "train_params": {"data_path": f"/data/{NASTY}", "mlflow_autolog": True},
        "n_trials": 7,
        "config_file": "conf/other.yml",
    }
    env = call["env"]
    assert env["MLFLOW_HPTUNING_TAG"] == "study 'a'"  # the study name by default
    assert env["TUNING_WORKER"] == "2"
    assert env["PGPASSWORD"] == "pg-secret"
    assert env["POLYAXON_RUN_UUID"] == job.run_uuid


def test_tune_defaults(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILES / "train-model-gpu-hptuning.yml",
        {"WORKING_DIR": str(project), "MLFLOW_HPTUNING_TAG": "tag-1"},
    )
    call = run_with_stub(job, tmp_path)
    assert call["parameters"] == {
        "study_name": f"imdb-sentiment-{job.run_uuid}",
        # no storage: an empty TUNING_STORAGE leaves the notebook's (conf/hptuning.yml)
        "setup_mlflow": False,
        "mlflow_exp_name": "sentiment-classification",
        "train_params": {
            "data_path": "/polyaxon-v1-data/imdb-sentiment/data/processed",
            "mlflow_autolog": False,
        },
    }
    assert call["env"]["MLFLOW_HPTUNING_TAG"] == "tag-1"
    assert "PGPASSWORD" not in call["env"]  # the optional secret is absent


def test_distributed_tuning_starts_workers_on_one_shared_study(tmp_path):
    project = project_dir(tmp_path)
    jobs = plx.render_matrix(
        FILES / "train-model-gpu-hptuning-distributed.yml", {"WORKING_DIR": str(project)}
    )
    assert len(jobs) == 4 and len({j.run_uuid for j in jobs}) == 4
    calls = [run_with_stub(j, tmp_path) for j in jobs]
    assert [c["env"]["TUNING_WORKER"] for c in calls] == ["0", "1", "2", "3"]
    studies = {(c["parameters"]["study_name"], c["parameters"]["storage"]) for c in calls}
    assert studies == {
        (
            "imdb-sentiment-distributed",
            "postgresql://optuna@optuna-postgresql.example.internal:5432/optuna",
        )
    }
    assert {c["env"]["MLFLOW_HPTUNING_TAG"] for c in calls} == {"imdb-sentiment-distributed"}
    assert {c["parameters"]["n_trials"] for c in calls} == {20}  # the study's total
    seeds = [c["parameters"]["sampler"]["seed"] for c in calls]
    assert len(set(seeds)) == 4, "workers with one sampler seed suggest the same trials"
    assert len({c["output_dir"] for c in calls}) == 4  # each worker its own notebook
    assert all(j.resources["limits"]["nvidia.com/gpu"] == 1 for j in jobs)


def test_pipeline_runs_prep_then_train_then_tune_on_the_processed_folder(tmp_path):
    project = project_dir(tmp_path)
    processed = f"/data/processed {NASTY}"
    ops = plx.render_dag(
        FILES / "pipeline.yml",
        {
            "WORKING_DIR": str(project),
            "PROCESSED_DATA_DIR": processed,
            "RAW_DATA_DIRS": '["/data/raw/a"]',
            "SETUP_MLFLOW": True,
            "STUDY_NAME": "pipeline-study",
            "TUNE_NOTEBOOK_PARAMS": "{n_trials: 3}",
        },
    )
    assert list(ops) == ["process-data", "train-model", "tune-model"]
    dag = plx.read_yaml(FILES / "pipeline.yml")["run"]["operations"]
    assert [op.get("dependencies") for op in dag] == [None, None, ["train-model"]]
    calls = {name: run_with_stub(job, tmp_path) for name, job in ops.items()}
    assert [c["stage"] for c in calls.values()] == ["prep", "train", "tune"]
    assert calls["process-data"]["parameters"]["processed_dir"] == processed
    assert calls["train-model"]["parameters"]["data_path"] == processed
    assert calls["tune-model"]["parameters"]["train_params"]["data_path"] == processed
    assert calls["train-model"]["parameters"]["setup_mlflow"] is True
    assert calls["tune-model"]["parameters"]["setup_mlflow"] is True
    assert calls["tune-model"]["parameters"]["study_name"] == "pipeline-study"
    assert calls["tune-model"]["parameters"]["n_trials"] == 3
    assert ops["process-data"].image.endswith("/data-prep:0.1.0")
    assert ops["train-model"].image.endswith("/model-training-gpu:0.1.0")
    uuids = {c["env"]["POLYAXON_RUN_UUID"] for c in calls.values()}
    assert uuids == {job.run_uuid for job in ops.values()} and len(uuids) == 3
