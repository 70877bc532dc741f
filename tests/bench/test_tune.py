"""bench/tune.py's direct overhead: trial wall time minus its cells' own work."""

import csv
import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_tune", ROOT / "bench" / "tune.py")
bench_tune = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tune)


def _notebook(path: Path, spans: list[tuple[str, str] | None]) -> Path:
    nb = nbformat.v4.new_notebook()
    for i, span in enumerate(spans):
        cell = nbformat.v4.new_code_cell(f"x = {i}")
        if span is not None:
            cell.metadata["execution"] = {
                "iopub.status.busy": span[0],
                "iopub.execute_input": span[0],
                "shell.execute_reply": span[1],
                "iopub.status.idle": span[1],
            }
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_cell_work_adds_each_cells_busy_to_idle_span(tmp_path):
    nb = _notebook(
        tmp_path / "t.ipynb",
        [
            ("2026-12-01T10:00:00.000000Z", "2026-12-01T10:00:01.500000Z"),
            None,  # a cell that did not run counts nothing
            ("2026-12-01T10:00:02.000000Z", "2026-12-01T10:00:02.250000Z"),
        ],
    )
    assert abs(bench_tune._cell_work_seconds(nb) - 1.75) < 1e-9


def test_direct_overhead_is_the_mean_gap_over_complete_trials(tmp_path):
    one = _notebook(tmp_path / "a.ipynb", [("2026-12-01T10:00:00Z", "2026-12-01T10:00:10Z")])
    two = _notebook(tmp_path / "b.ipynb", [("2026-12-01T10:00:00Z", "2026-12-01T10:00:04Z")])
    study = tmp_path / "run" / "study"
    study.mkdir(parents=True)
    with open(study / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["number", "state", "seconds", "notebook"])
        writer.writeheader()
        writer.writerow({"number": 0, "state": "COMPLETE", "seconds": 10.5, "notebook": one})
        writer.writerow({"number": 1, "state": "COMPLETE", "seconds": 5.5, "notebook": two})
        writer.writerow({"number": 2, "state": "FAIL", "seconds": 99, "notebook": two})
    assert abs(bench_tune.direct_overhead(tmp_path / "run") - 1.0) < 1e-9
