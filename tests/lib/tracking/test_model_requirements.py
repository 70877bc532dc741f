"""lib.tracking.model_requirements and lib.core.pins: the logged model's requirements are the
serving lock's versions (tests/lib/tracking/test_scoring_model.py checks them in a logged model)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lib.core.pins import direct_names, normalized, read_lock, requirement_lines
from lib.tracking import model_requirements as mr

ROOT = Path(__file__).resolve().parents[3]
# A lock as uv writes it (scripts/lock.py), cut down: two direct packages, two others.
LOCK = """\
# The lock of requirements-serve.txt: every package pinned and hashed.
# inputs-sha256: 0000
keras==3.15.1 \\
    --hash=sha256:{a}
    # via
    #   -c requirements-all.lock
    #   -r requirements-serve.txt
namex==0.1.0 \\
    --hash=sha256:{b}
    # via
    #   -c requirements-all.lock
    #   keras
PyYAML==6.0.3 \\
    --hash=sha256:{a}
    # via -r requirements-serve.txt
six==1.17.0 \\
    --hash=sha256:{b}
    # via keras
""".format(a="a" * 64, b="b" * 64)


def test_the_direct_packages_are_pinned_and_the_others_are_constraints(tmp_path):
    lock = tmp_path / "requirements-serve.lock"
    lock.write_text(LOCK)
    requirements = mr.locked_requirements(lock, tmp_path)
    assert requirements == ["keras==3.15.1", "pyyaml==6.0.3", f"-c {tmp_path / 'constraints.txt'}"]
    # No hashes: MLflow's environment set-up installs them without --require-hashes.
    assert (tmp_path / "constraints.txt").read_text() == "namex==0.1.0\nsix==1.17.0\n"


def test_the_serving_locks_direct_packages_are_its_inputs_requirements(tmp_path):
    lock = ROOT / mr.SERVE_LOCK
    names = {
        normalized(re.split(r"[=<>\[ ;]", line)[0])
        for line in requirement_lines("requirements-serve.txt", ROOT)
    }
    assert direct_names(lock) == names
    requirements, source = mr.model_requirements(tmp_path)
    assert source == mr.SERVE_LOCK
    pins = read_lock(lock)
    assert requirements[:-1] == [f"{n}=={pins[n][0]}" for n in sorted(names)]
    constraints = (tmp_path / "constraints.txt").read_text().splitlines()
    assert len(constraints) + len(names) == len(pins)
    assert all(f"{n}=={v}" in constraints for n, (v, _) in pins.items() if n not in names)


def test_without_the_lock_the_installed_versions_are_recorded_with_a_warning(tmp_path, caplog):
    from importlib.metadata import version

    caplog.set_level(logging.WARNING, logger=mr.__name__)
    requirements, source = mr.model_requirements(tmp_path, lock=tmp_path / "none.lock")
    assert source == "installed versions (none.lock not found)"
    assert f"keras=={version('keras')}" in requirements
    assert not any(r.startswith("-c") for r in requirements)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"{tmp_path / 'none.lock'} not found"
    ]


def _mismatch(*listed: str) -> str:
    return "\n".join(["Detected one or more mismatches between ...:", *listed, "To fix ..."])


def test_only_the_serving_stand_ins_mismatch_is_hidden(caplog, monkeypatch):
    from importlib.metadata import version

    # Importing mlflow sets its "mlflow" logger not to propagate (MLflow's own handler prints),
    # so caplog, on the root, saw nothing when an earlier test of the process had imported it.
    monkeypatch.setattr(logging.getLogger("mlflow"), "propagate", True)

    tf = version("tensorflow")
    stand_in = f" - tensorflow-cpu (current: uninstalled, required: tensorflow-cpu=={tf})"
    other = f" - tensorflow-cpu (current: uninstalled, required: tensorflow-cpu=={tf}.1)"
    keras = " - keras (current: 0.1, required: keras==3.15.1)"
    logger = logging.getLogger("mlflow.utils.requirements_utils")
    with caplog.at_level(logging.WARNING, logger=logger.name), mr.stand_ins_accepted():
        for text in (_mismatch(stand_in), _mismatch(other), _mismatch(stand_in, keras)):
            logger.warning(text)
    assert [r.getMessage() for r in caplog.records] == [
        _mismatch(other),
        _mismatch(stand_in, keras),
    ]
    caplog.clear()
    logger.warning(_mismatch(stand_in))  # outside the block: shown
    assert len(caplog.records) == 1
