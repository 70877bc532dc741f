"""A run's material: what it logged, and of its artifacts only those a comparison shows;
an old run's gaps listed, not fatal."""

from __future__ import annotations

from lib.comparison import material, sources


def _gather(store, name, into):
    source = sources.resolve("run_a", store.ids[name], store.client, tracking_uri=store.uri)
    return material.gather(store.client, source, into)


def test_a_run_with_provenance_yields_its_record_notebook_plots_and_curves(compare_store, tmp_path):
    got = _gather(compare_store, "base", tmp_path)
    assert got.missing == []
    assert got.environment["packages"]["tensorflow"] == "2.19.0"
    assert [c.cell_type for c in got.notebook.cells][:2] == ["code", "code"]
    assert sorted(got.plots) == ["plots/confusion_matrix.png", "plots/learning_curves.png"]
    assert got.history == {
        "accuracy": [0.6, 0.8],
        "loss": [0.7, 0.5],
        "val_accuracy": [0.58, 0.78],
        "val_loss": [0.72, 0.55],
    }
    assert "epoch_loss" not in got.metrics and got.metrics["test_accuracy"] == 0.8
    downloaded = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert len(downloaded) == 4  # the record, the notebook, two plots: nothing else
    assert got.downloaded_bytes == sum(p.stat().st_size for p in tmp_path.rglob("*.*"))


def test_an_old_run_is_gathered_on_what_it_has_and_says_what_it_lacks(compare_store, tmp_path):
    got = _gather(compare_store, "old", tmp_path)
    assert got.environment is None and got.notebook is not None
    assert got.missing == [
        "its environment record (provenance/environment.json)",
        "its tags stage, git_commit, git_dirty, data_fingerprint",
    ]


def test_a_run_without_a_notebook_or_artifacts_says_so(compare_store, tmp_path):
    got = _gather(compare_store, "infer", tmp_path)
    assert "its executed notebook" in got.missing and got.plots == {}
    assert not any(tmp_path.rglob("*.*"))


def test_a_study_yields_its_tables_and_plot(compare_store, tmp_path):
    got = _gather(compare_store, "tune_new", tmp_path)
    assert sorted(got.tables) == ["importances", "trials"]
    assert list(got.plots) == ["study/history.png"]
