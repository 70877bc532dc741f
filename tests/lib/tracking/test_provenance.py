"""lib.tracking.provenance in a small project of its own (PROJECT_ROOT): the tags a run starts
with (stage, git commit and dirtiness, the data set's fingerprint) and what its environment
artifact holds (locked packages as installed, the code closure's digests, no secret).
The runs that log them, against real stores, are the notebooks' tests."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata

import nbformat
import pytest

from lib.core.pins import normalized
from lib.data import prep
from lib.tracking import provenance
from tests.support.datagen import make_raw_dir


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with a train notebook importing ``lib.a`` (which imports ``lib.b``
    lazily), a module it does not import, and a lock pinning two packages."""
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    (lib / "a.py").write_text("def f():\n    from lib import b\n")
    (lib / "b.py").write_text("X = 1\n")
    (lib / "unused.py").write_text("")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nfrom lib.a import f")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook, tmp_path / "notebooks" / "train.ipynb")
    (tmp_path / "requirements.lock").write_text(
        "pyarrow==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\nNot_Installed.Pkg==2.0\n"
    )
    return tmp_path


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_tags_name_the_stage_the_commit_the_dirty_tree_and_the_data_set(project):
    assert provenance.run_tags("infer") == {"stage": "infer"}  # not a git checkout: no commit
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert provenance.run_tags("train") == {
        "stage": "train",
        "git_commit": head,
        "git_dirty": "false",
    }
    (project / "lib" / "b.py").write_text("X = 2\n")
    assert provenance.run_tags("train")["git_dirty"] == "true"

    raw = make_raw_dir(project / "raw", per_label=3, words=5)
    fingerprint = prep.prepare([raw], project / "data")["fingerprint"]
    assert fingerprint.startswith("sha256:")
    tags = provenance.run_tags("train", "data")  # relative to the project root
    assert tags["data_fingerprint"] == fingerprint
    assert "data_fingerprint" not in provenance.run_tags("train", "no/such/data")
    assert provenance.run_tags("infer", fingerprint="given")["data_fingerprint"] == "given"


def test_environment_holds_the_locked_packages_and_the_closures_digests_but_no_secret(
    project, monkeypatch
):
    token = "s3cr3t-" + hashlib.sha256(b"provenance").hexdigest()[:16]
    monkeypatch.setenv("IMDB_API_TOKEN", token)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", token + "-pw")
    found = provenance.environment("train")
    assert found["schema"] == 1 and found["notebook"] == "notebooks/train.ipynb"
    # The lock's packages as installed here (None: not installed), by normalised name.
    assert found["packages"] == {
        "pyarrow": metadata.version("pyarrow"),
        "not-installed-pkg": None,
    }
    # The notebook's code closure, the lazy import included; not the module it never imports.
    assert found["modules"] == {
        name: hashlib.sha256((project / name).read_bytes()).hexdigest()
        for name in ("lib/__init__.py", "lib/a.py", "lib/b.py")
    }
    assert found["cpu_count"] >= 1 and found["memory_bytes"] > 0
    assert token not in json.dumps(found)

    # Without the lock: every installed package, so that two runs still compare.
    (project / "requirements.lock").unlink()
    # Read from the folder names: the same versions as each package's metadata says.
    reference: dict[str, str] = {}
    for dist in metadata.distributions():
        reference.setdefault(normalized(dist.metadata["Name"]), dist.version)
    assert provenance.installed_versions() == dict(sorted(reference.items()))


def test_a_tunes_environment_holds_the_code_of_the_notebooks_it_runs(project):
    (project / "lib" / "c.py").write_text("")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import lib.c")]
    nbformat.write(notebook, project / "notebooks" / "tune.ipynb")
    found = provenance.environment("tune", also_runs=("train",), extra_modules=("lib.unused",))
    assert found["notebook"] == "notebooks/tune.ipynb"
    assert sorted(found["modules"]) == [
        "lib/__init__.py",
        "lib/a.py",
        "lib/b.py",
        "lib/c.py",
        "lib/unused.py",
    ]
