"""What a study found: the trials table, the best trials, plots (each with its alternative
text, ``describe_*``) and importances.

Each takes the study and its objectives' names; plotting and pandas are imported when
used (:data:`SUMMARY_MODULES` lists them, for importing ahead while the trials run).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lib.tuning.attrs import (
    ERROR_ATTR,
    MODEL_URI_ATTR,
    NOTEBOOK_ATTR,
    PRUNED_SCRAP,
    RETRIED_ATTR,
    RUN_ID_ATTR,
    SECONDS_ATTR,
    SURPLUS_ATTR,
)

if TYPE_CHECKING:
    import matplotlib.figure
    import optuna
    import pandas as pd

log = logging.getLogger(__name__)

# What the summary imports (optuna.importance alone takes seconds).
SUMMARY_MODULES = (
    "pandas",
    "optuna.importance",
    "matplotlib.pyplot",
    "optuna.visualization.matplotlib",
)


def trials_table(study: optuna.Study, objectives: Sequence[str]) -> pd.DataFrame:
    """One row per trial: state, objective values (a pruned trial's: its last reported
    value), parameters, the epoch it was pruned at, time, error, MLflow run. The state is
    Optuna's, but SURPLUS for a trial that was asked and never run (an earlier version's
    PRUNED surplus trials, or one failed as surplus); a surplus trial put back is WAITING."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if t.user_attrs.get(SURPLUS_ATTR):
            row["state"] = "SURPLUS"
        values = t.values or [None] * len(objectives)
        row.update(dict(zip(objectives, values, strict=False)))
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row[PRUNED_SCRAP] = t.user_attrs.get(PRUNED_SCRAP)
        row["seconds"] = t.user_attrs.get(SECONDS_ATTR)
        row["retry_of"] = t.system_attrs.get(RETRIED_ATTR)
        row["error"] = t.user_attrs.get(ERROR_ATTR)
        row["mlflow_run_id"] = t.user_attrs.get(RUN_ID_ATTR)
        row["model_uri"] = t.user_attrs.get(MODEL_URI_ATTR)
        row["notebook"] = t.user_attrs.get(NOTEBOOK_ATTR)
        rows.append(row)
    return pd.DataFrame(rows).set_index("number") if rows else pd.DataFrame()


def best_trials(study: optuna.Study, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """The best trial (one objective) or the Pareto-optimal trials (several), as plain
    dicts: number, params, values by objective, model URI and MLflow run."""
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return [
        {
            "number": t.number,
            "params": t.params,
            "values": dict(zip(objectives, t.values, strict=True)),
            "model_uri": t.user_attrs.get(MODEL_URI_ATTR),
            "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR),
        }
        for t in sorted(trials, key=lambda t: t.number)
    ]


def plot_study(study: optuna.Study, objectives: Sequence[str]) -> matplotlib.figure.Figure | None:
    """The Pareto front (two objectives; best trials highlighted) or the optimisation
    history (one objective; best so far as a line). None for other counts."""
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(objectives) > 2 or not complete:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if len(objectives) == 2:
        best = {t.number for t in study.best_trials}
        for group, style in ((False, {"c": "0.6"}), (True, {"c": "tab:red"})):
            pts = [t for t in complete if (t.number in best) == group]
            ax.scatter(
                [t.values[0] for t in pts],
                [t.values[1] for t in pts],
                label="Pareto front" if group else "other trials",
                **style,
            )
            for t in pts:
                ax.annotate(str(t.number), (t.values[0], t.values[1]), fontsize=8)
        ax.set_xlabel(f"{objectives[0]} ({study.directions[0].name.lower()})")
        ax.set_ylabel(f"{objectives[1]} ({study.directions[1].name.lower()})")
        ax.set_title("Pareto front")
    else:
        numbers = [t.number for t in complete]
        values = [t.values[0] for t in complete]
        pick = min if study.direction.name == "MINIMIZE" else max
        best_so_far = [pick(values[: i + 1]) for i in range(len(values))]
        ax.scatter(numbers, values, label="trial")
        ax.plot(numbers, best_so_far, c="tab:red", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(objectives[0])
        ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_learning_curves(study: optuna.Study, prune_on: str) -> matplotlib.figure.Figure | None:
    """Every trial's reported ``prune_on`` by epoch (Optuna's intermediate-values plot),
    the pruned trials' curves ending where they were stopped; None when no trial reported
    (no pruner)."""
    import warnings

    import optuna
    from optuna.visualization.matplotlib import plot_intermediate_values

    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_intermediate_values(study)
    ax.set_xlabel("epoch (0-based, as reported)")
    ax.set_ylabel(prune_on)
    ax.set_title(f"Learning curves ({prune_on} reported to the pruner)")
    figure = ax.get_figure()
    figure.set_size_inches(6.4, 4.2)
    figure.tight_layout()
    return figure


def param_importances(study: optuna.Study, objectives: Sequence[str]) -> pd.DataFrame:
    """fANOVA importance of each parameter for each objective (columns); empty when there
    are too few completed trials or nothing varied."""
    import warnings

    import optuna
    import pandas as pd

    columns = {}
    for i, name in enumerate(objectives):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                columns[name] = optuna.importance.get_param_importances(
                    study, target=lambda t, i=i: t.values[i]
                )
        except (RuntimeError, ValueError) as exc:
            log.info("no parameter importances for %s: %s", name, exc)
    return pd.DataFrame(columns).fillna(0.0)


def plot_importances(importances: pd.DataFrame) -> matplotlib.figure.Figure | None:
    """A horizontal bar chart of ``param_importances``; None when it is empty."""
    import matplotlib.pyplot as plt

    if importances.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.5 * len(importances) * len(importances.columns)))
    importances.iloc[::-1].plot.barh(ax=ax)
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title("Parameter importances")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def describe_study(study: optuna.Study, objectives: Sequence[str]) -> str:
    """The alternative text of :func:`plot_study`'s figure (when it has one)."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(objectives) == 2:
        front = ", ".join(str(t.number) for t in sorted(study.best_trials, key=lambda t: t.number))
        return (
            f"Pareto front of {len(complete)} complete trial(s), {objectives[0]} against "
            f"{objectives[1]}: trial(s) {front} on the front."
        )
    best = study.best_trial
    return (
        f"Optimisation history of {len(complete)} complete trial(s): {objectives[0]} of each "
        f"trial and the best so far; the best, {best.values[0]:.4f}, from trial {best.number}."
    )


def describe_learning_curves(study: optuna.Study, prune_on: str) -> str:
    """The alternative text of :func:`plot_learning_curves`' figure (when it has one)."""
    from optuna.trial import TrialState

    reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    pruned = sum(t.state == TrialState.PRUNED for t in reported)
    return (
        f"Learning curves: {prune_on} reported after each epoch by {len(reported)} trial(s), "
        f"{pruned} of them pruned (a pruned trial's curve ends where it was stopped)."
    )


def describe_importances(importances: pd.DataFrame) -> str:
    """The alternative text of :func:`plot_importances`' figure (when it has one)."""
    parts = [
        f"for {objective}, " + ", ".join(f"{name} {value:.2f}" for name, value in column.items())
        for objective, column in importances.items()
    ]
    return f"Parameter importances (fANOVA): {'; '.join(parts)}."
