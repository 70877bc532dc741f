"""lib.tuning.summary: the trials table, the best trials, the plots and importances."""

import matplotlib
import pytest
from optuna.trial import TrialState

from lib import tuning
from tests.support.tuning import config, fake_trial

matplotlib.use("Agg")


def test_the_trials_table_has_a_row_per_trial_with_values_params_and_errors():
    cfg = config(n_trials=2, max_failures=5)
    handle = tuning.open_study(cfg)

    def trial(number, sampled):
        if number == 0:
            return tuning.TrialOutcome(error="cell 3: ValueError: boom")
        return fake_trial(number, sampled)

    tuning.run_study(handle.study, cfg, trial, poll_interval=0.05)
    surplus = handle.study.ask()
    surplus.set_user_attr(tuning.SURPLUS_ATTR, True)
    handle.study.tell(surplus, state=TrialState.PRUNED)
    table = tuning.trials_table(handle.study, cfg.objectives)
    assert list(table.index) == [0, 1, 2, 3]
    # An earlier version's surplus trial (told PRUNED, never run) shows as what it was.
    assert list(table["state"]) == ["FAIL", "COMPLETE", "COMPLETE", "SURPLUS"]
    assert table.loc[0, "error"] == "cell 3: ValueError: boom"
    assert {"val_loss", "val_accuracy", "params.val_split", "params.optimiser"} <= set(table)
    assert table.loc[1, "val_loss"] == table.loc[1, "params.val_split"]
    assert table.loc[1, "seconds"] >= 0 and table.loc[1, "retry_of"] is None


def test_an_empty_study_has_an_empty_table_and_no_best_trial():
    cfg = config()
    study = tuning.open_study(cfg).study
    assert tuning.trials_table(study, cfg.objectives).empty
    assert tuning.best_trials(study, cfg.objectives) == []
    assert tuning.plot_study(study, cfg.objectives) is None


@pytest.mark.parametrize(
    "params, title",
    [
        ({"directions": ["maximize"], "objectives": ["val_accuracy"]}, "Optimisation history"),
        ({}, "Pareto front"),
    ],
)
def test_summaries_for_one_and_two_objectives(tmp_path, params, title):
    cfg = config(n_trials=4, **params)
    handle = tuning.open_study(cfg)
    tuning.run_study(handle.study, cfg, fake_trial, poll_interval=0.05)
    figure = tuning.plot_study(handle.study, cfg.objectives)
    assert figure.axes[0].get_title() == title
    figure.savefig(tmp_path / "plot.png")
    importances = tuning.param_importances(handle.study, cfg.objectives)
    assert list(importances.columns) == cfg.objectives
    assert set(importances.index) == {"val_split", "optimiser"}
    assert tuning.plot_importances(importances).axes[0].get_title() == "Parameter importances"
    described = tuning.describe_importances(importances)
    assert described.startswith("Parameter importances (fANOVA): for val_")
    assert described.count("val_split ") == described.count("optimiser ") == len(cfg.objectives)
    best = tuning.best_trials(handle.study, cfg.objectives)
    assert best and all(b["number"] in range(4) for b in best)
    assert all(set(b) >= {"number", "params", "values", "model_uri"} for b in best)
    assert all(set(b["values"]) == set(cfg.objectives) for b in best)
    if len(cfg.objectives) == 1:  # the best value of all four
        assert best[0]["values"]["val_accuracy"] == handle.study.best_value
    front = ", ".join(str(b["number"]) for b in best)
    assert tuning.describe_study(handle.study, cfg.objectives) == (
        "Pareto front of 4 complete trial(s), val_loss against val_accuracy: "
        f"trial(s) {front} on the front."
        if len(cfg.objectives) == 2
        else "Optimisation history of 4 complete trial(s): val_accuracy of each trial and the "
        f"best so far; the best, {handle.study.best_value:.4f}, from trial {front}."
    )


def test_the_learning_curves_show_every_reporting_trial_the_pruned_ones_too(tmp_path):
    cfg = config(directions=["minimize"], objectives=["val_loss"])
    study = tuning.open_study(cfg).study
    assert tuning.plot_learning_curves(study, "val_loss") is None  # nothing reported
    for number, epochs in enumerate((3, 1, 3)):
        trial = study.ask()
        tuning.sample(trial, cfg.search_space)
        for epoch in range(epochs):
            trial.report(0.7 - 0.1 * epoch + 0.01 * number, epoch)
        if epochs == 1:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, 0.5)
    figure = tuning.plot_learning_curves(study, "val_loss")
    ax = figure.axes[0]
    assert ax.get_ylabel() == "val_loss" and "Learning curves" in ax.get_title()
    lengths = sorted(len(line.get_xdata()) for line in ax.get_lines())
    assert lengths == [1, 3, 3]  # the pruned trial's curve ends at its one epoch
    assert tuning.describe_learning_curves(study, "val_loss") == (
        "Learning curves: val_loss reported after each epoch by 3 trial(s), 1 of them pruned "
        "(a pruned trial's curve ends where it was stopped)."
    )
    figure.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_no_importances_without_a_completed_trial():
    cfg = config(n_trials=1, max_failures=1)
    handle = tuning.open_study(cfg)
    tuning.run_study(handle.study, cfg, lambda n, s: tuning.TrialOutcome(error="x"))
    importances = tuning.param_importances(handle.study, cfg.objectives)
    assert importances.empty and tuning.plot_importances(importances) is None
