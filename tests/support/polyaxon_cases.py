"""What the tests of the polyaxonfiles share (tests/system/polyaxon/): the files and their
example params, the inputs each component declares, and a rendered container command run by
bash with a stand-in ``python`` that records how it was called.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from lib.core.secrets import check_parameter_names
from runner.cli.main import build_parser
from runner.cli.options import collect_parameters
from tests.support import polyaxon_render as plx

ROOT = plx.ROOT
FILES = plx.POLYAXONFILES
# A service (serve-model.yml) runs no runner command: tests/system/polyaxon/test_serve_component.py
# checks it.
ALL_FILES = sorted(p.name for p in FILES.glob("*.yml") if plx.file_kind(p) != "service")
JOB_FILES = [
    "process-data.yml",
    "train-model-gpu.yml",
    "train-model-cpu.yml",
    "train-model-gpu-hptuning.yml",
    "train-model-cpu-hptuning.yml",
    "batch-infer.yml",
]
PAIRS = [
    ("train-model-gpu.yml", "train-model-cpu.yml"),
    ("train-model-gpu-hptuning.yml", "train-model-cpu-hptuning.yml"),
]
COMMON_INPUTS = {
    "DOCKER_IMAGE",
    "WORKING_DIR",
    "SA_CRED_PATH",
    "POLYAXON_RUN_UUID",
    "NOTEBOOK_PARAMS",
    "NOTEBOOK_OUTPUT_DIR",
}
MLFLOW_INPUTS = {
    "INPUT_DATA_DIR",
    "SETUP_MLFLOW",
    "MLFLOW_AUTOLOG",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXP_NAME",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}
EXPECTED_INPUTS = {
    "process-data.yml": COMMON_INPUTS | {"RAW_DATA_DIRS", "PROCESSED_DATA_DIR"},
    "train-model-gpu.yml": COMMON_INPUTS | MLFLOW_INPUTS | {"MODEL_DIR"},
    "train-model-gpu-hptuning.yml": COMMON_INPUTS
    | MLFLOW_INPUTS
    | {"STUDY_NAME", "TUNING_STORAGE", "MLFLOW_HPTUNING_TAG", "TUNING_WORKER"},
}
EXPECTED_INPUTS["batch-infer.yml"] = COMMON_INPUTS | {
    "MODEL_URI",
    "INPUT_PATH",
    "OUTPUT_PATH",
    "SETUP_MLFLOW",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXP_NAME",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}
EXPECTED_INPUTS["train-model-cpu.yml"] = EXPECTED_INPUTS["train-model-gpu.yml"]
EXPECTED_INPUTS["train-model-cpu-hptuning.yml"] = EXPECTED_INPUTS["train-model-gpu-hptuning.yml"]

# Every container command: tini as PID 1, then bash runs the one script argument.
SHELL = [*plx.INIT, "/bin/bash", "-c"]

# A value that breaks any careless quoting: spaces, both quotes, $, backslash, glob, ;.
NASTY = 'it\'s a "test" $HOME `id` \\ * ; {x}'

EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "process-data.yml": {
        "RAW_DATA_DIRS": '["/polyaxon-v1-data/raw/set1", "/polyaxon-v1-data/raw/set2"]',
        "PROCESSED_DATA_DIR": "/polyaxon-v1-data/processed",
        "NOTEBOOK_PARAMS": "{}",
    },
    "train-model-gpu.yml": {
        "INPUT_DATA_DIR": "/polyaxon-v1-data/processed",
        "SETUP_MLFLOW": True,
        "MLFLOW_TRACKING_URI": "http://mlflow:5005",
        "NOTEBOOK_PARAMS": "{epochs: 2}",
    },
    "train-model-gpu-hptuning.yml": {
        "STUDY_NAME": "study-1",
        "TUNING_STORAGE": "postgresql://optuna@postgres:5432/optuna",
        "TUNING_WORKER": 1,
    },
    "train-model-gpu-hptuning-distributed.yml": {"STUDY_NAME": "shared-study"},
    "batch-infer.yml": {
        "MODEL_URI": "models:/imdb-sentiment/3",
        "INPUT_PATH": "/polyaxon-v1-data/new-reviews",
        "OUTPUT_PATH": "/polyaxon-v1-data/scores/new-reviews.parquet",
        "MLFLOW_TRACKING_URI": "http://mlflow:5005",
    },
    "pipeline.yml": {
        "RAW_DATA_DIRS": '["/polyaxon-v1-data/raw/set1"]',
        "SETUP_MLFLOW": True,
        "STUDY_NAME": "pipeline-study",
    },
}
EXAMPLE_PARAMS["train-model-cpu.yml"] = EXAMPLE_PARAMS["train-model-gpu.yml"]
EXAMPLE_PARAMS["train-model-cpu-hptuning.yml"] = EXAMPLE_PARAMS["train-model-gpu-hptuning.yml"]


def kind(name: str) -> str:
    """The kind of polyaxonfile ``name``: a job, a pipeline or a service."""
    return plx.file_kind(FILES / name)


def render(name: str, params: dict[str, Any] | None = None) -> list[plx.RenderedJob]:
    """The jobs that polyaxonfile ``name`` renders into with ``params``."""
    return plx.render_file(FILES / name, params)


def defaults(name: str) -> dict[str, Any]:
    """The default value of each input of polyaxonfile ``name``."""
    return {io["name"]: io.get("value") for io in plx.read_yaml(FILES / name)["inputs"]}


# --------------------------------------------------------------------------- rendering


def project_dir(tmp_path: Path, name: str = "project dir's") -> Path:
    """A project folder standing for WORKING_DIR: symlinks to this checkout's code."""
    project = tmp_path / name
    project.mkdir()
    for part in ("lib", "runner", "notebooks"):
        (project / part).symlink_to(ROOT / part, target_is_directory=True)
    conf = project / "conf"
    conf.mkdir()
    for item in (ROOT / "conf").iterdir():
        (conf / item.name).symlink_to(item)
    return project


def stub_python(tmp_path: Path) -> Path:
    """A `python` that records its argv, cwd and environment instead of running anything."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    stub = bin_dir / "python"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['RUNNER_STUB_RECORD'], 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)}, f)\n",
        encoding="utf-8",
    )
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run_with_stub(
    job: plx.RenderedJob,
    tmp_path: Path,
    secrets: dict[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """Run the rendered argv (less tini, the images' init) with bash as the pod would,
    `python` replaced by the stub.

    Returns the runner call: ``stage``, the notebook ``parameters`` exactly as the runner's
    own CLI parses them (in the call's working directory), ``output_dir``, ``cwd``, ``env``.
    """
    bin_dir = tmp_path / "stub-bin"
    if not bin_dir.exists():
        stub_python(tmp_path)
    record = tmp_path / f"call-{job.run_uuid}.json"
    env = job.process_env(
        plx.process_base_env(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RUNNER_STUB_RECORD=str(record)
        ),
        secrets,
    )
    result = subprocess.run(job.shell_argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    call = json.loads(record.read_text(encoding="utf-8"))
    argv = call["argv"]
    assert argv[:2] == ["-m", "runner"], argv
    args = build_parser().parse_args(argv[2:])
    old = os.getcwd()
    os.chdir(call["cwd"])
    try:
        parameters = collect_parameters(args.params)
    finally:
        os.chdir(old)
    check_parameter_names(parameters)  # the runner refuses secret-looking parameters
    return {
        "argv": argv,
        "stage": args.command,
        "parameters": parameters,
        "output_dir": str(args.output_dir) if args.output_dir else None,
        "log_output": args.log_output,
        "cwd": call["cwd"],
        "env": call["env"],
    }


def venv_env(**extra: str) -> dict[str, str]:
    """A rendered command's base environment with this venv's ``python`` first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return plx.process_base_env(PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}", **extra)
