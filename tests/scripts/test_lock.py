"""The locks (scripts/lock.py): each newer than its inputs, one version of every package across
all roles, every package hashed, and this environment installed from the test role's lock.
Offline, files only: no resolver or index is asked."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path

from tests.support.images import lock_script as lock

ROOT = Path(__file__).resolve().parents[2]
_norm = lock.normalized


def locked(name: str, root: Path = ROOT) -> dict[str, tuple[str, frozenset[str]]]:
    return lock.read_lock(root / name)


LOCKS = list(lock.lock_inputs())


def test_every_role_has_a_lock_newer_than_its_inputs():
    assert LOCKS == [lock.ALL_LOCK, *(lock.lock_of(n) for n in lock.ROLES.values())]
    assert lock.stale() == []


def test_a_changed_requirement_makes_the_lock_stale_and_a_comment_does_not(tmp_path):
    for name in {*LOCKS, "requirements-train.txt", *lock.ROLES.values()}:
        shutil.copy(ROOT / name, tmp_path / name)
    assert lock.stale(tmp_path) == []
    with (tmp_path / "requirements-prep.txt").open("a", encoding="utf-8") as f:
        f.write("# a comment and a blank line change no requirement\n\n")
    assert lock.stale(tmp_path) == []
    with (tmp_path / "requirements-train.txt").open("a", encoding="utf-8") as f:
        f.write("rich==14.0.0\n")
    # Every lock whose inputs include requirements-train.txt (through -r) is stale.
    assert lock.stale(tmp_path) == [
        "requirements-all.lock is older than " + ", ".join(lock.ROLES.values()),
        "requirements.lock is older than requirements.txt",
        "requirements-gpu.lock is older than requirements-gpu.txt",
        "requirements-test.lock is older than requirements-test.txt",
    ]
    (tmp_path / "requirements-serve.lock").unlink()
    assert "requirements-serve.lock is missing" in lock.stale(tmp_path)


def test_no_package_has_two_versions_across_roles_and_every_one_is_hashed():
    joint = locked(lock.ALL_LOCK)
    assert len(joint) > 200
    for name in LOCKS:
        pins = locked(name)
        assert pins, name
        unhashed = sorted(p for p, (_, hashes) in pins.items() if not hashes)
        assert not unhashed, f"{name}: no hashes for {unhashed}"
        differ = {p: (v[0], joint.get(p, ("absent",))[0]) for p, v in pins.items()}
        differ = {p: v for p, v in differ.items() if v[0] != v[1]}
        assert not differ, f"{name} differs from {lock.ALL_LOCK} (lock, joint): {differ}"
        assert all(pins[p][1] == joint[p][1] for p in pins), name


def test_each_direct_pin_is_in_its_roles_lock():
    for name in lock.ROLES.values():
        pins = locked(lock.lock_of(name))
        for line in lock.requirement_lines(name):
            found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)$", line)
            assert found, f"{name}: {line!r} is not a pin"
            assert pins[_norm(found.group(1))][0] == found.group(2), (name, line)


def test_the_gpu_lock_is_the_train_lock_plus_cuda_libraries():
    train, gpu = locked("requirements.lock"), locked("requirements-gpu.lock")
    assert train.items() <= gpu.items()
    added = set(gpu) - set(train)
    assert added and all(p.startswith("nvidia-") for p in added), sorted(added)
    prep = locked("requirements-prep.lock")
    assert prep.items() <= train.items()
    assert not {"tensorflow", "mlflow", "keras", "jupyterlab"} & set(prep)


def test_this_environment_holds_the_test_lock():
    """.venv was set up from requirements-test.lock (scripts/setup.sh requirements-test.txt)."""
    have = {_norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {p: (v, have.get(p)) for p, (v, _) in locked("requirements-test.lock").items()}
    wrong = {p: v for p, v in wrong.items() if v[0] != v[1]}
    assert not wrong, f"locked, installed: {wrong}; run scripts/setup.sh requirements-test.txt"


def test_setup_installs_a_lock_with_hashes_then_the_project_without_dependencies():
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert '--require-hashes -r "$lock"' in setup
    assert "--no-deps -e ." in setup
    assert "scripts/lock.py --check" in setup
