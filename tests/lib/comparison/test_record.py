"""The comparison's own run in ``comparisons``, tagged with both runs; each compared run
tagged with it, or warned about when the store refuses."""

from __future__ import annotations

import logging

import mlflow

from lib.comparison import record, sources
from lib.comparison.compare_checks import check_compare_params
from lib.core.params import parameter_defaults
from lib.core.paths import notebooks_dir


def test_the_run_is_tagged_with_both_and_both_with_it(compare_store, caplog):
    client, ids = compare_store.client, compare_store.ids
    params = check_compare_params(
        {
            **parameter_defaults(notebooks_dir() / "compare.ipynb"),
            "mlflow_tracking_uri": compare_store.uri,
        }
    )
    newer = sources.resolve("run_a", ids["param"], client)
    older = sources.resolve("run_b", ids["base"], client)
    run = record.start(params, newer, older)
    try:
        assert mlflow.get_experiment(run.info.experiment_id).name == "comparisons"
        assert run.data.tags[record.RUN_A_TAG] == ids["param"]
        assert run.data.tags[record.RUN_B_TAG] == ids["base"]
        assert run.info.run_name == f"{ids['param'][:8]}-vs-{ids['base'][:8]}"
        assert record.tag_compared(client, run.info.run_id, [newer, older]) == []
        for run_id in (ids["param"], ids["base"]):
            assert client.get_run(run_id).data.tags[record.COMPARISON_TAG] == run.info.run_id
    finally:
        mlflow.end_run()
    client.delete_run(ids["infer"])  # a deleted run cannot be tagged: warned, not raised
    try:
        gone = sources.Source("run_a", "x", client.get_run(ids["infer"]), "infer")
        with caplog.at_level(logging.WARNING):
            assert record.tag_compared(client, "r", [gone]) == [ids["infer"]]
        assert "not tagged with its comparison" in caplog.text
    finally:
        client.restore_run(ids["infer"])
