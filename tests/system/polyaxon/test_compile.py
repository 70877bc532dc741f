"""The polyaxonfiles compiled into pods by Polyaxon's own compiler and converter: a GPU file and
its CPU twin differ only in the GPU lines and render the same command; every job's pod runs
under the restricted profile (read-only root filesystem, no privilege escalation, non-root, an
emptyDir at /tmp) with tini as PID 1, and the paths it writes by default lie on writable volumes.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import polyaxon_render as plx
from tests.support.polyaxon_cases import (
    ALL_FILES,
    EXAMPLE_PARAMS,
    FILES,
    JOB_FILES,
    PAIRS,
    SHELL,
    render,
)

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
    return [job for name in ALL_FILES for job in render(name, EXAMPLE_PARAMS[name])]


def _mount_of(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The mount that holds ``path`` (the deepest mount path that is a parent of it)."""
    holding = [m for m in mounts if Path(path).is_relative_to(m["mountPath"])]
    return max(holding, key=lambda m: len(m["mountPath"]), default=None)


def test_every_pod_runs_under_the_restricted_profile_with_tini_as_pid_1():
    jobs = _every_job()
    assert len(jobs) == 6 + 4 + 3  # the job components, the matrix's workers, the DAG's ops
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
        inputs = job.inputs
        data = (
            inputs.get("PROCESSED_DATA_DIR") or inputs.get("INPUT_DATA_DIR") or inputs["INPUT_PATH"]
        )
        written = re.findall(r"-r (?:model_dir|output_path) '([^']*)'", job.script)
        outputs = [out, data, *written]
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
