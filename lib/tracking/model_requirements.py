"""The pip requirements a logged model records: the serving role's lock
(``requirements-serve.lock``, docs/dependencies.md), so that serving the model resolves the
packages the serving image holds.

The serving role's direct requirements are pinned at their locked versions (MLflow writes them
to the model's ``requirements.txt``); every other package of the lock goes into a constraints
file (``-c``: MLflow copies it into the model as ``constraints.txt``), without hashes, since
MLflow's environment set-up does not require them.

The lock sits in the source checkout beside ``lib`` (on a developer machine and in the
training images, which copy it). Without it the model records the versions installed here
instead, with a warning line and the run tag ``model_requirements``: a model is never lost at
the end of its training for a missing file, and never recorded unlocked silently.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from lib.core.pins import direct_names, read_lock

log = logging.getLogger(__name__)

SERVE_LOCK = "requirements-serve.lock"
_CHECKOUT = Path(__file__).resolve().parents[2]  # lib/tracking/this.py -> the checkout
# Without the lock: what the model's code imports to load and score (MLflow adds itself).
INSTALLED_FALLBACK = ["tensorflow", "keras", "numpy", "pandas", "pyarrow", "pyyaml"]
# The run tag that says where the model's requirements came from.
SOURCE_TAG = "model_requirements"
# The serving image's slimmer builds of what the training environments install: the same
# modules at the same (jointly locked) versions.
STAND_INS = {"tensorflow-cpu": "tensorflow", "mlflow-skinny": "mlflow"}
_MISMATCH = re.compile(r"^ - (\S+) \(current: uninstalled, required: \S+==(\S+)\)$")


def locked_requirements(lock: Path, folder: Path) -> list[str]:
    """``pip_requirements`` for MLflow from ``lock``: its direct packages pinned, and ``-c`` a
    constraints file (written into ``folder``) pinning all the others."""
    pins = read_lock(lock)
    direct = direct_names(lock)
    constraints = folder / "constraints.txt"
    rest = [f"{name}=={version}\n" for name, (version, _) in sorted(pins.items())]
    constraints.write_text("".join(line for line in rest if line.split("==")[0] not in direct))
    return [f"{name}=={pins[name][0]}" for name in sorted(direct)] + [f"-c {constraints}"]


def model_requirements(folder: Path, lock: Path | None = None) -> tuple[list[str], str]:
    """(``pip_requirements`` for the logged model, where they came from: the lock's name, or
    that it was missing). ``lock`` defaults to the checkout's serving lock."""
    lock = lock or _CHECKOUT / SERVE_LOCK
    if lock.is_file():
        return locked_requirements(lock, folder), lock.name
    log.warning(
        "%s not found: the logged model records the versions installed here instead; "
        "run from a checkout or an image that holds the lock (docs/dependencies.md)",
        lock,
    )
    return _installed(INSTALLED_FALLBACK), f"installed versions ({lock.name} not found)"


def _installed(names: list[str]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def _only_stand_ins(record: logging.LogRecord) -> bool:
    """False for MLflow's requirement mismatch warning when each package it lists is a serving
    stand-in whose counterpart is installed here at the required version."""
    from importlib.metadata import PackageNotFoundError, version

    text = record.getMessage()
    if not text.startswith("Detected one or more mismatches"):
        return True
    for line in (x for x in text.splitlines() if x.startswith(" - ")):
        found = _MISMATCH.match(line)
        if not found or found.group(1) not in STAND_INS:
            return True
        try:
            if version(STAND_INS[found.group(1)]) != found.group(2):
                return True
        except PackageNotFoundError:
            return True
    return False


@contextlib.contextmanager
def stand_ins_accepted() -> Iterator[None]:
    """In the block, MLflow does not warn that a model's requirements are unmet here when all
    it would name is the serving image's tensorflow-cpu or mlflow-skinny while tensorflow or
    mlflow is installed at the same version (saving a model, or loading one to evaluate it)."""
    logger = logging.getLogger("mlflow.utils.requirements_utils")
    logger.addFilter(_only_stand_ins)
    try:
        yield
    finally:
        logger.removeFilter(_only_stand_ins)
