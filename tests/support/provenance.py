"""What every tracked run records of what it was made of (lib.tracking.provenance): its tags
and ``provenance/environment.json``, checked against this checkout and this environment."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read_environment(client, run_id: str) -> dict:
    """The run's ``provenance/environment.json``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, "provenance/environment.json", tmp)
        return json.loads(Path(local).read_text(encoding="utf-8"))


def check_provenance(
    client, run_id: str, stage: str, fingerprint: str | None, modules: tuple[str, ...] = ()
) -> dict:
    """Assert that run ``run_id`` carries the provenance tags of a ``stage`` run on the data
    set ``fingerprint`` (None: no such tag) and its environment artifact, whose modules hold
    ``modules`` (paths from the project root) with their digests now; returns the artifact."""
    tags = client.get_run(run_id).data.tags
    assert tags["stage"] == stage
    # This checkout's commit when the run started (other commits may land since).
    assert re.fullmatch("[0-9a-f]{40}", tags["git_commit"]), tags
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", tags["git_commit"]])
    assert known.returncode == 0
    assert tags["git_dirty"] in ("true", "false")
    assert tags.get("data_fingerprint") == fingerprint
    found = read_environment(client, run_id)
    assert found["schema"] == 1 and found["python"] == platform.python_version()
    assert found["notebook"] == f"notebooks/{stage}.ipynb"
    assert found["tensorflow"] == found["packages"]["tensorflow"] == metadata.version("tensorflow")
    assert found["packages"]["mlflow"] == metadata.version("mlflow")
    assert found["gpu"] is None or found["gpu"].strip()
    assert found["cpu_count"] == os.cpu_count() and found["memory_bytes"] > 2**28
    for module in ("lib/__init__.py", *modules):
        digest = hashlib.sha256((ROOT / module).read_bytes()).hexdigest()
        assert found["modules"][module] == digest, module
    return found
