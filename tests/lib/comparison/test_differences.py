"""What differs between two runs: parameters, metrics and their direction, data, the
modules' digests and their diff between commits, packages and the machine."""

from __future__ import annotations

import json
import subprocess

import pytest

from lib.comparison import differences, material, sources
from lib.data import prep
from tests.support.compare_runs import PACKAGES


@pytest.fixture(scope="module")
def gathered(compare_store, tmp_path_factory):
    into = tmp_path_factory.mktemp("gathered")
    return {
        name: material.gather(
            compare_store.client,
            sources.resolve("run_a", run_id, compare_store.client, tracking_uri=compare_store.uri),
            into,
        )
        for name, run_id in compare_store.ids.items()
    }


def test_parameters_that_differ_or_only_one_run_has(gathered):
    table = differences.parameters(gathered["param"], gathered["base"])
    assert table.to_dict("index") == {"bs": {"newer": "32", "older": "16"}}
    assert differences.parameters(gathered["data"], gathered["base"]).empty
    one_sided = differences.parameters(gathered["infer"], gathered["base"])
    assert one_sided.loc["input_path"].tolist() == ["x", "—"]
    assert one_sided.loc["epochs"].tolist() == ["—", "2"]


def test_metrics_have_their_difference_and_the_run_their_direction_favours(gathered):
    table = differences.metrics(gathered["param"], gathered["base"])
    assert table.loc["test_accuracy", "difference"] == pytest.approx(0.02)
    assert table.loc["test_accuracy", "better"] == "newer"  # higher accuracy
    assert table.loc["test_loss", "better"] == "newer"  # lower loss
    assert table.loc["train_seconds", "better"] == "same"
    assert differences.better("val_loss", 0.1) == "older"
    assert differences.better("auc", -0.1) == "older"


def test_data_same_or_not_by_fingerprint_with_rows_from_the_data_set_it_read(gathered, tmp_path):
    assert differences.same_data(gathered["param"], gathered["base"]) == "same"
    assert differences.same_data(gathered["data"], gathered["base"]) == "different"
    assert differences.same_data(gathered["old"], gathered["base"]) == "unknown"
    base = gathered["base"]
    folder = tmp_path / "processed"
    folder.mkdir()
    manifest = {"fingerprint": "f" * 64, "rows": {"train": {"total": 80}, "test": {"total": 20}}}
    (folder / prep.MANIFEST).write_text(json.dumps(manifest))
    base.params["data_path"] = str(folder)
    try:
        table = differences.data(base, gathered["data"])
        assert table.loc["newer", ["train rows", "test rows"]].tolist() == [80, 20]
        gathered["data"].params["data_path"] = str(folder)  # another data set there now
        assert differences.data(base, gathered["data"]).loc["older", "fingerprint"] == "e" * 64
        assert differences.data(gathered["data"], base).loc["newer"].isna()["train rows"]
    finally:
        base.params["data_path"] = gathered["data"].params["data_path"] = "data/processed"


def test_modules_whose_digests_differ(gathered):
    table = differences.changed_modules(gathered["module"], gathered["base"])
    assert table.to_dict("index") == {"lib/model/training.py": {"change": "changed"}}
    assert differences.changed_modules(gathered["param"], gathered["base"]).empty


def _commit(repo, text):
    (repo / "lib").mkdir(exist_ok=True)
    (repo / "lib" / "m.py").write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True)
    return out.stdout.decode().strip()


def test_a_changed_module_is_diffed_between_the_runs_commits(gathered, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    old_commit = _commit(repo, "def f():\n    return 1\n")
    new_commit = _commit(repo, "def f():\n    return 2\n")
    newer, older = gathered["module"], gathered["base"]
    saved = (dict(newer.tags), dict(older.tags))
    newer.tags["git_commit"], older.tags["git_commit"] = new_commit, old_commit
    try:
        diff = differences.module_diffs(newer, older, ["lib/m.py"], repository=repo)["lib/m.py"]
        assert "-    return 1\n+    return 2\n" in diff
        assert f"older {old_commit[:10]}:lib/m.py" in diff
        newer.tags["git_commit"] = "d" * 40  # a commit this repository does not hold
        diff = differences.module_diffs(newer, older, ["lib/m.py"], repository=repo)["lib/m.py"]
        assert diff == "no diff: this repository does not hold it at newer dddddddddd"
        del newer.tags["git_commit"]
        assert differences.module_diffs(newer, older, ["lib/m.py"], repository=repo) == {
            "lib/m.py": "no diff: a run did not record its git commit"
        }
    finally:
        newer.tags.clear(), older.tags.clear()
        newer.tags.update(saved[0]), older.tags.update(saved[1])


def test_packages_whose_versions_differ_and_the_machine(gathered):
    table = differences.packages(gathered["package"], gathered["base"])
    assert table.to_dict("index") == {"tensorflow": {"newer": "2.18.0", "older": "2.19.0"}}
    assert differences.packages(gathered["param"], gathered["base"]).empty
    old = differences.packages(gathered["old"], gathered["base"])  # no record: all one-sided
    assert sorted(old.index) == sorted(PACKAGES) and set(old["newer"]) == {"—"}
    machine = differences.machine(gathered["package"], gathered["base"])
    assert machine.loc["cpu_count"].tolist() == ["2", "2", True]
