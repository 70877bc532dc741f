"""Jobs run as pods in their images (tests/support/kubelet.py) on host folders standing for
the pods' volumes: the shared data volume (/polyaxon-v1-data) and the artifacts context
(/plx-context/artifacts, where a run's outputs go), and what a pod wrote outside the places it
was told to write. Used by tests/system/test_containers.py and test_infer_container.py.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.support import kubelet
from tests.support import polyaxon_render as plx

DATA = "/polyaxon-v1-data"
CONTEXT = "/plx-context/artifacts"
POD_UID = 2222


class Volumes:
    """Host folders for the pod's volumes, owned by the pod's user as a PVC would be."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data-volume"
        self.artifacts = root / "artifacts-context"
        for folder in (self.data, self.artifacts):
            folder.mkdir(parents=True, exist_ok=True)

    def mounts(self) -> dict[str, Path]:
        return {DATA: self.data, CONTEXT: self.artifacts}

    def hand_to(self, uid: int) -> None:
        for folder in (self.data, self.artifacts):
            for path in [folder, *folder.rglob("*")]:
                if os.geteuid() == 0:
                    os.chown(path, uid, uid, follow_symlinks=False)
                elif path.is_dir():  # not root: open the folders to every uid instead
                    path.chmod(0o777)

    def outputs(self, job: plx.RenderedJob) -> Path:
        return self.artifacts / job.run_uuid / "outputs"

    def snapshot(self) -> set[Path]:
        return {p for folder in (self.data, self.artifacts) for p in folder.rglob("*")}


def run_job(job, image, volumes, name, network="none", limits=None, secrets=None, env=None):
    """Start the job's pod as a container; the caller waits for it and removes it."""
    argv, client_env = kubelet.docker_run_argv(
        job, image, name, volumes.mounts(), network, limits, secrets, env
    )
    return kubelet.start(argv, client_env)


def pod_name(stage: str) -> str:
    """A unique container name for a test's pod of ``stage``."""
    return f"imdb-test-{stage}-{uuid.uuid4().hex[:8]}"


def _within(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` is in one of ``roots`` or is a folder above one (made for it)."""
    return any(path.is_relative_to(r) or r.is_relative_to(path) for r in roots)


def stray_writes(new: set[Path], allowed: list[Path], container: kubelet.Container) -> list:
    """What a pod wrote outside ``allowed``: on the volumes (``new``: what appeared there),
    and in the image's root filesystem besides the mount points the engine made."""
    job_mounts = [Path(m) for m in (DATA, CONTEXT, "/tmp", "/var/secret/cloud.google.com")]
    changed = [Path(line.split(" ", 1)[1]) for line in container.diff().splitlines()]
    in_root = [p for p in changed if not any(m.is_relative_to(p) for m in job_mounts)]
    return [p for p in new if not _within(p, allowed)] + in_root
