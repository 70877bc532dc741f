"""polyaxonfiles/batch-infer.yml's command, rendered by Polyaxon's own code and run by bash with
a stand-in ``python`` that records how it was called (tests/support/polyaxon_cases.py), as
test_commands.py does for the other jobs: the runner gets exactly the infer notebook's
parameters whatever the values hold, credentials stay in the environment, and a model that
only an MLflow server can resolve is refused at once when no server is given. What every job
gets (strict params, template names, the restricted pod) is in test_parse.py and
test_compile.py; the job runs in its image in tests/system/test_infer_container.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runner.stages import get_stage
from tests.support import polyaxon_render as plx
from tests.support.dockerfiles import DOCKER, instructions
from tests.support.polyaxon_cases import (
    FILES,
    NASTY,
    defaults,
    project_dir,
    run_with_stub,
    stub_python,
)

FILE = FILES / "batch-infer.yml"
TRACKING = "http://mlflow.internal:5005"


def test_batch_infer_hands_the_runner_exact_values_and_keeps_credentials_in_the_env(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(
        FILE,
        {
            "WORKING_DIR": str(project),
            "MODEL_URI": f"/polyaxon-v1-data/models/{NASTY}/model.keras",
            "INPUT_PATH": f"/polyaxon-v1-data/new {NASTY}",
            "OUTPUT_PATH": f"/polyaxon-v1-data/scores {NASTY}.parquet",
            "SETUP_MLFLOW": True,
            "MLFLOW_TRACKING_URI": TRACKING,
            "MLFLOW_EXP_NAME": "scoring 'q4'",
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": f"pa$$ {NASTY}",
            "NOTEBOOK_PARAMS": "{text_column: review, threshold: 0.7, overwrite: true}",
        },
    )
    call = run_with_stub(job, tmp_path)
    assert call["stage"] == "infer"
    # NOTEBOOK_PARAMS comes last: it may override an input's parameter.
    assert call["parameters"] == {
        "model_uri": f"/polyaxon-v1-data/models/{NASTY}/model.keras",
        "input_path": f"/polyaxon-v1-data/new {NASTY}",
        "output_path": f"/polyaxon-v1-data/scores {NASTY}.parquet",
        "setup_mlflow": True,
        "mlflow_exp_name": "scoring 'q4'",
        "mlflow_tracking_uri": TRACKING,
        "text_column": "review",
        "threshold": 0.7,
        "overwrite": True,
    }
    # Every name is one of the infer notebook's parameters (the runner refuses others).
    get_stage("infer").check_names(call["parameters"])
    assert call["output_dir"] == f"/plx-context/artifacts/{job.run_uuid}/outputs/notebook"
    assert call["log_output"] and Path(call["cwd"]) == project
    env = call["env"]
    assert env["PROJECT_ROOT"] == str(project) and env["IMDB_LOG_FORMAT"] == "json"
    assert env["POLYAXON_RUN_UUID"] == job.run_uuid
    assert env["MLFLOW_TRACKING_URI"] == TRACKING
    assert env["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert env["MLFLOW_TRACKING_PASSWORD"] == f"pa$$ {NASTY}"
    # Credentials reach the environment only: never a notebook parameter.
    assert "alice" not in json.dumps(call["parameters"])
    assert not {"user", "password", "uri", "model"} & set(env)


def test_batch_infer_defaults_score_the_champion_into_the_runs_outputs(tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(FILE, {"WORKING_DIR": str(project), "MLFLOW_TRACKING_URI": TRACKING})
    call = run_with_stub(job, tmp_path)
    assert call["parameters"] == {
        "model_uri": "models:/imdb-sentiment@champion",
        "input_path": "/polyaxon-v1-data/imdb-sentiment/data/new-reviews",
        # A new file per run, where the dashboard shows it (the image is read-only).
        "output_path": f"/plx-context/artifacts/{job.run_uuid}/outputs/scores.jsonl",
        "setup_mlflow": False,
        "mlflow_exp_name": "batch-inference",
        "mlflow_tracking_uri": TRACKING,
    }
    # The component's defaults are the notebook's: a job and a local run score alike.
    notebook = get_stage("infer").defaults()
    component = defaults("batch-infer.yml")
    assert notebook["model_uri"] == component["MODEL_URI"]
    assert notebook["mlflow_exp_name"] == component["MLFLOW_EXP_NAME"]


def _run_script(job: plx.RenderedJob, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The rendered command run by bash with the stand-in python; (result, its record)."""
    bin_dir = tmp_path / "stub-bin"
    if not bin_dir.exists():
        stub_python(tmp_path)
    record = tmp_path / f"call-{job.run_uuid}.json"
    env = job.process_env(
        plx.process_base_env(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RUNNER_STUB_RECORD=str(record)
        )
    )
    result = subprocess.run(job.shell_argv, env=env, capture_output=True, text=True, timeout=60)
    return result, record


@pytest.mark.parametrize("model", ["models:/imdb-sentiment@champion", "runs:/0123abcd/model"])
def test_a_registry_model_without_a_tracking_server_is_refused_in_one_line(model, tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(FILE, {"WORKING_DIR": str(project), "MODEL_URI": model})
    result, record = _run_script(job, tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: batch-infer: MODEL_URI {model} is resolved by an MLflow")
    assert "-P MLFLOW_TRACKING_URI=" in line
    assert not record.exists()  # the runner never started


@pytest.mark.parametrize(
    "model", ["/polyaxon-v1-data/models/latest", "gs://models/imdb/model.keras"]
)
def test_a_model_file_needs_no_tracking_server(model, tmp_path):
    project = project_dir(tmp_path)
    job = plx.render_job(FILE, {"WORKING_DIR": str(project), "MODEL_URI": model})
    call = run_with_stub(job, tmp_path)
    assert call["parameters"]["model_uri"] == model
    assert "mlflow_tracking_uri" not in call["parameters"]
    assert not {k for k in call["env"] if k.startswith("MLFLOW_")}


def test_mlflow_credentials_from_the_secret_and_a_plain_input_overrides_it(tmp_path):
    project = project_dir(tmp_path)
    secrets = {("mlflow-credentials", "username"): "svc", ("mlflow-credentials", "password"): "s3"}
    params = {"WORKING_DIR": str(project), "MLFLOW_TRACKING_URI": TRACKING}
    env = run_with_stub(plx.render_job(FILE, params), tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("svc", "s3")
    job = plx.render_job(FILE, {**params, "MLFLOW_TRACKING_PASSWORD": "typed"})
    env = run_with_stub(job, tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("svc", "typed")


def test_it_runs_in_the_cpu_training_image_which_holds_the_notebook_not_the_serving_one():
    job = plx.render_job(FILE)
    assert job.image == "registry.example.com/imdb-sentiment/model-training-cpu:0.1.0"
    assert "nvidia" not in json.dumps(job.resources) and job.tolerations == []
    copied = {
        args.split()[-2]
        for keyword, args in instructions(DOCKER / "model-training-cpu.Dockerfile")
        if keyword == "COPY"
    }
    assert {"lib", "runner", "notebooks"} <= copied
    assert (plx.ROOT / "notebooks" / get_stage("infer").notebook).is_file()
    # The serving image copies its locks and the scoring server's code (lib, runner): no
    # notebook, and no papermill to run one.
    serving = instructions(DOCKER / "model-serving.Dockerfile")
    served = {args.split()[0] for keyword, args in serving if keyword == "COPY"}
    assert "notebooks" not in served and served <= {"requirements-build.lock", "lib", "runner"}
    assert "papermill" not in (plx.ROOT / "requirements-serve.lock").read_text(encoding="utf-8")
