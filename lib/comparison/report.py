"""How the comparison notebook shows two runs' material: who they are and what they lack,
the learning curves of both on the same axes, the other plots side by side, and for two
tuning parent runs the studies' best trials and parameter importances."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib.comparison.differences import json_param
from lib.comparison.material import Material
from lib.comparison.notebook_diff import side_by_side
from lib.model import evaluation

if TYPE_CHECKING:
    import pandas as pd

CURVES_PLOT = "plots/learning_curves.png"  # drawn again from the metrics, on shared axes
_BEST_SHOWN = 5  # trials of each study


@dataclass(frozen=True)
class Html:
    """An HTML piece that a notebook shows as HTML (and as its text elsewhere)."""

    text: str

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def runs(newer: Material, older: Material) -> pd.DataFrame:
    """Which runs are compared: id, how each was named, stage, experiment, start, status."""
    import pandas as pd

    rows = {}
    for side, m in (("newer", newer), ("older", older)):
        info = m.source.run.info
        rows[side] = {
            "run id": m.run_id,
            "named": m.source.reference,
            "stage": m.source.stage,
            "run name": info.run_name,
            "experiment id": info.experiment_id,
            "started": pd.Timestamp(info.start_time, unit="ms", tz="UTC"),
            "status": info.status,
        }
    return pd.DataFrame(rows)


def missing(newer: Material, older: Material) -> list[str]:
    """One line for each thing a run lacks (a run logged before runs recorded it)."""
    return [
        f"the {side} run {m.run_id[:8]} lacks {what}: compared on what it has"
        for side, m in (("newer", newer), ("older", older))
        for what in m.missing
    ]


def learning_curves(newer: Material, older: Material):
    """Both runs' per-epoch curves on the same axes (newer solid, older dashed), one panel
    per quantity (loss, then the metric); None when neither run logged any."""
    import matplotlib.pyplot as plt

    names = sorted(
        {n.removeprefix("val_") for m in (newer, older) for n in m.history},
        key=lambda n: (n != "loss", n),
    )
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for m, side, style in ((newer, "newer", "-"), (older, "older", "--")):
            for key, colour in ((name, "tab:blue"), (f"val_{name}", "tab:orange")):
                values = m.history.get(key)
                if values:
                    epochs = range(1, len(values) + 1)
                    ax.plot(epochs, values, style, color=colour, label=f"{side} {key}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_output(newer: Material, older: Material):
    """:func:`learning_curves` for display with its alternative text; None without curves."""
    fig = learning_curves(newer, older)
    if fig is None:
        return None
    finals = [
        f"{side} {key} {values[-1]:.4f} after {len(values)} epochs"
        for side, m in (("newer", newer), ("older", older))
        for key, values in sorted(m.history.items())
        if values
    ]
    return evaluation.figure_output(fig, "Learning curves of both runs: " + "; ".join(finals))


def _image(path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.name, quote=True)
    return f'<img src="data:image/png;base64,{data}" alt="{alt}" style="max-width:100%">'


def plots(newer: Material, older: Material) -> Html:
    """Every other logged plot of either run, newer and older side by side."""
    names = sorted((set(newer.plots) | set(older.plots)) - {CURVES_PLOT})
    blocks = [
        f"<h4>{html.escape(name)}</h4>"
        + side_by_side(
            _image(newer.plots[name]) if name in newer.plots else "",
            _image(older.plots[name]) if name in older.plots else "",
        )
        for name in names
    ]
    return Html("\n".join(blocks) or "<p>neither run logged other plots</p>")


def _table(material: Material, name: str) -> pd.DataFrame | None:
    import pandas as pd

    path = material.tables.get(name)
    return pd.read_csv(path, index_col=0) if path else None


def best_trials(material: Material) -> pd.DataFrame:
    """The study's best completed trials for its first objective, best first."""
    import pandas as pd

    trials = _table(material, "trials")
    objectives = json_param(material, "objectives") or []
    directions = json_param(material, "directions") or []
    if trials is None or trials.empty or not objectives or objectives[0] not in trials:
        return pd.DataFrame()
    done = trials[trials["state"] == "COMPLETE"]
    ascending = (directions[:1] or ["minimize"])[0] == "minimize"
    columns = [*[o for o in objectives if o in done], *[c for c in done if c.startswith("params.")]]
    return done.sort_values(objectives[0], ascending=ascending)[columns].head(_BEST_SHOWN)


def importances(newer: Material, older: Material) -> pd.DataFrame:
    """Each study's parameter importances side by side (columns: newer/older per objective)."""
    import pandas as pd

    parts = {
        side: table
        for side, m in (("newer", newer), ("older", older))
        if (table := _table(m, "importances")) is not None and not table.empty
    }
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, axis=1).fillna(0.0)


def table_or(frame: pd.DataFrame, nothing: str) -> Any:
    """``frame``, or the sentence ``nothing`` when it is empty (nothing differs)."""
    return Html(f"<p>{html.escape(nothing)}</p>") if frame.empty else frame


def environment_table(frame: pd.DataFrame, what: str, newer: Material, older: Material) -> Any:
    """A table drawn from the environment records (``what`` differs), or why it is empty:
    nothing differs, or a run has no record to compare."""
    lacking = [side for side, m in (("newer", newer), ("older", older)) if m.environment is None]
    if lacking:
        return Html(f"<p>not known: the {' and '.join(lacking)} run has no environment record</p>")
    return table_or(frame, f"no {what} differs")


def show_text(text: str) -> Html:
    """A diff or any plain text, shown as it is."""
    return Html(f"<pre>{html.escape(text)}</pre>")
