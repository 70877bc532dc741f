"""Run a rendered Polyaxon job in its image with ``docker run``, as the kubelet would run the
pod's main container: every setting is read from the pod spec that Polyaxon's converter makes
(tests/support/polyaxon_render.py), none is written here.

* ``command[0]`` is the entrypoint, the rest of ``command`` and ``args`` follow the image;
  ``workingDir`` is the working directory;
* the pod's ``runAsUser``/``runAsGroup`` are ``--user``; the container's
  ``readOnlyRootFilesystem``, ``allowPrivilegeEscalation: false`` and dropped capabilities are
  ``--read-only``, ``--security-opt no-new-privileges`` and ``--cap-drop``;
* each volume mount is a host folder the test gives for its mount path (the data volume
  claim, the artifacts context), else an ``emptyDir`` is a tmpfs (which, like an emptyDir,
  allows exec) and an optional secret that is absent an empty read-only tmpfs;
* the env entries are set (secret references from ``secrets``, an optional one that is not
  there left unset; the pod's own fields as stand-in values) and handed to the client's
  environment by name only, so that no value shows in ``docker run``'s argv;
* the resource limits are capped to what this machine has (``--cpus``, ``--memory``).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.docker_engine import docker_cli
from tests.support.polyaxon_render import RenderedJob

# What the downward API would fill in.
FIELD_VALUES = {
    "spec.nodeName": "node-1",
    "metadata.namespace": "polyaxon",
    "metadata.name": "plx-pod",
}
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``16Gi``, ``512Mi``, ``1000``) in bytes."""
    for unit, factor in _UNITS.items():
        if quantity.endswith(unit):
            return int(float(quantity[: -len(unit)]) * factor)
    return int(quantity)


@dataclass
class Limits:
    """This machine's share for one container: the pod's limits are capped to it."""

    cpus: float = float(os.cpu_count() or 1)
    memory: int = 6 * 2**30


def docker_run_argv(
    job: RenderedJob,
    image: str,
    name: str,
    volumes: Mapping[str, Path],
    network: str,
    limits: Limits | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """``docker run`` argv (detached) and the client environment that holds the values.

    ``volumes`` maps a mount path of the pod to a host folder; ``extra_env`` adds variables a
    test needs beyond the pod's (e.g. a stand-in service's address).
    """
    pod = job.pod()
    main = job.main_container(pod)
    limits = limits or Limits()
    security = pod.get("securityContext") or {}
    container = main.get("securityContext") or {}
    argv = [docker_cli(), "run", "--detach", "--name", name, "--network", network]
    argv += ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if container.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if container.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    for cap in (container.get("capabilities") or {}).get("drop") or []:
        argv += ["--cap-drop", cap]
    argv += _mounts(pod, main, volumes)
    resources = (main.get("resources") or {}).get("limits") or {}
    if "cpu" in resources:
        argv += ["--cpus", f"{min(float(resources['cpu']), limits.cpus):g}"]
    if "memory" in resources:
        argv += ["--memory", str(min(memory_bytes(resources["memory"]), limits.memory))]
    env = _env(main, secrets or {})
    env.update(extra_env or {})
    for key in env:
        argv += ["--env", key]  # the value from the client's environment
    if main.get("workingDir"):
        argv += ["--workdir", main["workingDir"]]
    command = [*main["command"], *(main.get("args") or [])]
    argv += ["--entrypoint", command[0], image, *command[1:]]
    return argv, {**os.environ, **env}


def _mounts(pod: dict[str, Any], main: dict[str, Any], volumes: Mapping[str, Path]) -> list[str]:
    by_name = {v["name"]: v for v in pod.get("volumes") or []}
    argv: list[str] = []
    for mount in main.get("volumeMounts") or []:
        path, volume = mount["mountPath"], by_name[mount["name"]]
        mode = "ro" if mount.get("readOnly") else "rw"
        if path in volumes:
            argv += ["--volume", f"{volumes[path]}:{path}:{mode}"]
        elif "emptyDir" in volume:
            argv += ["--tmpfs", f"{path}:rw,exec,nosuid,nodev,mode=1777"]
        elif (volume.get("secret") or {}).get("optional"):
            argv += ["--tmpfs", f"{path}:ro"]  # what an absent optional secret mounts
        else:
            raise AssertionError(f"volume {mount['name']} at {path}: give a host folder for it")
    return argv


def _env(main: dict[str, Any], secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
    env = {}
    for entry in main.get("env") or []:
        key = entry["name"]
        if entry.get("value") is not None:
            env[key] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[key] = FIELD_VALUES[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[key] = secrets[(ref["name"], ref["key"])]
            elif not ref.get("optional"):
                raise AssertionError(f"env {key}: the pod needs the secret {ref}")
        else:
            raise AssertionError(f"env {key}: no stand-in for {source}")
    return env


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """``docker ARGS``; its stdout and stderr together."""
    done = subprocess.run(
        [docker_cli(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed: {done.stdout[-2000:]}")
    return done.stdout


@dataclass
class Container:
    """A container started by :func:`start`; ``remove()`` it when done."""

    name: str

    def wait(self, timeout: float = 900) -> int:
        """Its exit status, once it has ended."""
        return int(docker("wait", self.name, timeout=timeout).strip())

    def logs(self) -> str:
        return docker("logs", self.name)

    def diff(self) -> str:
        """``docker diff``: what changed in the container's root filesystem."""
        return docker("diff", self.name)

    def state(self) -> dict[str, Any]:
        return json.loads(docker("inspect", "-f", "{{json .State}}", self.name))

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)


def start(argv: list[str], env: Mapping[str, str]) -> Container:
    """Start ``docker run --detach`` (from :func:`docker_run_argv`)."""
    name = argv[argv.index("--name") + 1]
    done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"docker run {name} failed: {done.stderr[-2000:]}")
    return Container(name)


def start_service(
    job: RenderedJob, image: str, prefix: str, server, emulator_url: str
) -> tuple[Container, list[str]]:
    """A service pod's container (``job`` in ``image``) on the host network, its secret
    ``mlflow-credentials`` holding ``server``'s login and the GCS emulator at ``emulator_url``
    (as the test stack stands in for the cluster's): the container (``remove()`` it when
    done) and its ``docker run`` argv, which must hold no secret value."""
    secrets = {
        ("mlflow-credentials", "username"): server.username,
        ("mlflow-credentials", "password"): server.password,
    }
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    argv, env = docker_run_argv(
        job,
        image,
        name,
        {},
        "host",
        secrets=secrets,
        extra_env={"STORAGE_EMULATOR_HOST": emulator_url},
    )
    return start(argv, env), argv
