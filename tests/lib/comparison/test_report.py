"""How a comparison is shown: the runs, what they lack, both learning curves on one figure,
the other plots side by side, a study's best trials and importances."""

from __future__ import annotations

import pandas as pd
import pytest

from lib.comparison import material, report, sources


@pytest.fixture(scope="module")
def gathered(compare_store, tmp_path_factory):
    into = tmp_path_factory.mktemp("shown")
    client = compare_store.client
    return {
        name: material.gather(
            client, sources.resolve("run_a", compare_store.ids[name], client), into
        )
        for name in ("base", "param", "old", "tune_new", "tune_old", "infer")
    }


def test_the_runs_and_what_an_old_one_lacks(gathered):
    table = report.runs(gathered["param"], gathered["old"])
    assert table.loc["stage"].tolist() == ["train", "train"]
    assert table.loc["started", "newer"] > table.loc["started", "older"]
    lines = report.missing(gathered["param"], gathered["old"])
    assert lines[0].startswith("the older run ") and "environment record" in lines[0]
    assert report.missing(gathered["param"], gathered["base"]) == []


def test_both_learning_curves_share_axes_newer_solid_older_dashed(gathered):
    fig = report.learning_curves(gathered["param"], gathered["base"])
    loss, accuracy = fig.axes
    assert (loss.get_title(), accuracy.get_title()) == ("loss", "accuracy")
    styles = {line.get_label(): line.get_linestyle() for line in loss.get_lines()}
    assert styles == {
        "newer loss": "-",
        "newer val_loss": "-",
        "older loss": "--",
        "older val_loss": "--",
    }
    assert report.learning_curves(gathered["infer"], gathered["tune_new"]) is None
    shown = report.curves_output(gathered["param"], gathered["base"])
    assert "newer val_accuracy 0.8000 after 2 epochs" in shown.alt


def test_the_other_plots_side_by_side_without_the_redrawn_curves(gathered):
    html = report.plots(gathered["param"], gathered["base"]).text
    assert html.count("<h4>") == 1 and "plots/confusion_matrix.png" in html
    assert html.count("data:image/png;base64,") == 2
    one_sided = report.plots(gathered["base"], gathered["infer"]).text
    assert one_sided.count("data:image/png;base64,") == 1 and "—" in one_sided


def test_a_studys_best_trials_and_both_importances(gathered):
    best = report.best_trials(gathered["tune_new"])
    assert best["val_loss"].tolist() == [0.3, pytest.approx(0.4)]  # minimised, pruned left out
    assert list(best.columns) == ["val_loss", "params.learning_rate", "params.bs"]
    both = report.importances(gathered["tune_new"], gathered["tune_old"])
    assert both.loc["params.bs"].tolist() == [0.7, pytest.approx(0.6)]
    assert list(both.columns) == [("newer", "val_loss"), ("older", "val_loss")]
    assert report.best_trials(gathered["base"]).empty


def test_an_empty_table_is_a_sentence():
    assert "nothing" in report.table_or(pd.DataFrame(), "nothing")._repr_html_()
    frame = pd.DataFrame({"a": [1]})
    assert report.table_or(frame, "nothing") is frame
