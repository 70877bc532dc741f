"""bench/tune_pruning.py: the same study with and without the median pruner, and a trial's
fixed cost (its wall time beyond its epochs)."""

import csv
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from lib.core.progress import MIME, epoch_event
from tests.support.bench_runs import run_bench, tiny_archive

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_pruning", ROOT / "bench" / "tune_pruning.py")
bench_pruning = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_pruning)


def _trained_notebook(path: Path, seconds: list[float]) -> Path:
    """A notebook whose one cell shows an epoch event per epoch, as lib.core.progress emits them."""
    cell = nbformat.v4.new_code_cell("history = train(...)")
    for i, s in enumerate(seconds, 1):
        event = epoch_event(i, len(seconds), {"loss": 0.5, "val_loss": 0.4}, s)
        data = {MIME: event, "text/plain": f"epoch {i}"}
        cell.outputs.append(nbformat.v4.new_output("display_data", data=data))
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="done\n"))
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.write(nb, path)
    return path


def test_the_fixed_cost_is_the_wall_time_beyond_the_epochs_events(tmp_path):
    assert bench_pruning.PROGRESS_MIME == MIME
    one = _trained_notebook(tmp_path / "a.ipynb", [2.0, 1.5, 1.5])
    two = _trained_notebook(tmp_path / "b.ipynb", [3.0])
    assert bench_pruning.epoch_seconds(one) == [2.0, 1.5, 1.5]
    study = tmp_path / "run" / "study"
    study.mkdir(parents=True)
    with open(study / "trials.csv", "w", newline="") as f:
        fields = ["number", "state", "val_loss", "seconds", "notebook"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerow(dict(zip(fields, [0, "COMPLETE", 0.3, 9.0, one], strict=True)))
        writer.writerow(dict(zip(fields, [1, "COMPLETE", 0.25, 10.0, one], strict=True)))
        writer.writerow(dict(zip(fields, [2, "PRUNED", 0.6, 4.0, two], strict=True)))
    rows = bench_pruning.trials(tmp_path / "run")
    assert bench_pruning.fixed_seconds(rows) == pytest.approx(4.5)  # (4 + 5) / 2
    assert bench_pruning.fixed_seconds(rows, "PRUNED") == pytest.approx(1.0)
    assert bench_pruning.best(rows) == 0.25


@pytest.mark.slow
def test_bench_runs_both_studies_and_prints_sane_figures(tmp_path):
    archive = tiny_archive(tmp_path, per_label=40)
    # Three trials: the pruner's start-up ones, never pruned; more would only repeat them.
    # That the pruner prunes is tests/notebooks/test_tune_pruning.py's to show.
    trials, epochs = 3, 2
    options = ("--trials", str(trials), "--epochs", str(epochs), "--keep", str(tmp_path / "runs"))
    lines = run_bench("tune_pruning.py", archive, *options, timeout=600)
    number = r"(\d+\.\d+)"
    match = re.fullmatch(
        rf"pruned_s={number} full_s={number} speedup={number} best_pruned={number} "
        rf"best_full={number} pruned_trials=(\d+) fixed_s={number}",
        lines[-1],
    )
    assert match, lines[-1]
    pruned_s, full_s, speedup, best_pruned, best_full = map(float, match.groups()[:5])
    pruned_trials, fixed_s = int(match[6]), float(match[7])
    assert speedup == pytest.approx(full_s / pruned_s, abs=0.01)
    assert 0 < best_pruned < 1 and 0 < best_full < 1  # val_loss of a model that learnt
    assert 0 <= pruned_trials <= trials - 3  # the first 3 trials are never pruned
    # Every full trial trained all its epochs, each measured, and cost more than them.
    full = next(line for line in lines if line.startswith("(full) ") and "MiB" in line)
    assert f"{trials} complete and 0 pruned trials, {trials * epochs} epochs" in full
    assert 0 < fixed_s < full_s / trials
    report = next(line for line in lines if line.startswith("reporting an epoch"))
    assert 0 < float(re.search(r"([\d.]+) ms$", report)[1]) < 1000
