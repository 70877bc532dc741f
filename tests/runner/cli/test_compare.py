"""``python -m runner compare RUN_A RUN_B`` refuses bad input before any kernel: one line,
exit status 2, nothing logged (no comparison run)."""

from __future__ import annotations

import os

import pytest

from tests.support.runner_process import error_traceback_shown, run_runner

MISSING = "0123456789abcdef0123456789abcdef"


def _comparisons(store) -> int:
    found = store.client.get_experiment_by_name("comparisons")
    return len(store.client.search_runs([found.experiment_id])) if found else 0


@pytest.mark.parametrize(
    ("run_a", "run_b", "expected"),
    [
        (MISSING, "base", f"error: run_a: no run '{MISSING}' in the tracking store"),
        (
            "base",
            "models:/imdb-sentiment@nope",
            "error: run_b: registered model 'imdb-sentiment' has no alias 'nope'",
        ),
        (
            "base",
            "tune_new",
            "error: run_a is a train run and run_b a tune run: compare two runs of one stage",
        ),
        ("base", "models:/imdb-sentiment@champion", "error: run_a and run_b are the same run"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_logged(compare_store, run_a, run_b, expected):
    ids = compare_store.ids
    before = _comparisons(compare_store)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = run_runner(
        [
            "compare",
            ids.get(run_a, run_a),
            ids.get(run_b, run_b),
            "-p",
            "mlflow_tracking_uri",
            compare_store.uri,
        ],
        env,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), result.stderr[-2000:]
    assert "executing" not in result.stderr and not error_traceback_shown(result.stderr)
    assert _comparisons(compare_store) == before


def test_two_runs_are_needed():
    result = run_runner(["compare", "abc"], os.environ)
    assert result.returncode == 2
    assert "the following arguments are required: RUN_B" in result.stderr
