"""Runs named by id, alias, version or latest, each run's stage (old runs included), and the
pairs refused: a run that is not there, one run twice, two runs of different stages."""

from __future__ import annotations

import pytest

from lib.comparison import sources
from lib.core.errors import ComparisonError


def _resolve(store, reference, **options):
    return sources.resolve("run_a", reference, store.client, tracking_uri=store.uri, **options)


def test_a_run_is_named_by_id_alias_version_or_latest(compare_store):
    ids = compare_store.ids
    assert _resolve(compare_store, ids["base"]).run_id == ids["base"]
    champion = _resolve(compare_store, "models:/imdb-sentiment@champion")
    assert champion.run_id == ids["base"] and champion.stage == "train"
    assert "= models:/imdb-sentiment@champion" in champion.label()
    assert _resolve(compare_store, "models:/imdb-sentiment/2").run_id == ids["param"]
    latest = _resolve(compare_store, "latest", experiment="test-exp", stage="train")
    assert latest.run_id == ids["package"]  # the latest finished train run, not the tune's
    assert (
        _resolve(compare_store, "latest", experiment="test-exp", stage="tune").run_id
        == (ids["tune_new"])
    )


def test_an_old_run_is_recognised_by_what_it_logged(compare_store):
    assert _resolve(compare_store, compare_store.ids["old"]).stage == "train"
    assert _resolve(compare_store, compare_store.ids["tune_old"]).stage == "tune"
    assert sources.stage_of({}, {"input_path": "x", "model_uri": "y"}) == "infer"
    assert (
        sources.stage_of(
            {"study_name": "s", "mlflow.parentRunId": "p"}, {"model_name": "m", "epochs": "2"}
        )
        == "train"
    )  # a trial
    assert sources.stage_of({}, {}) is None


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("0123456789abcdef0123456789abcdef", "run_a: no run '0123456789abcdef0123456789abcdef'"),
        ("models:/imdb-sentiment@nope", "run_a: registered model 'imdb-sentiment' has no alias"),
        ("models:/nope@champion", "run_a: no registered model 'nope'"),
        ("models:/imdb-sentiment/9", "run_a: registered model 'imdb-sentiment' has no version 9"),
    ],
)
def test_a_run_or_alias_that_is_not_there_is_one_line(compare_store, reference, message):
    with pytest.raises(ComparisonError, match=message) as caught:
        _resolve(compare_store, reference)
    assert "\n" not in str(caught.value)


def test_latest_in_an_experiment_without_such_runs_says_so(compare_store):
    with pytest.raises(ComparisonError, match="no experiment 'nope'"):
        _resolve(compare_store, "latest", experiment="nope")
    with pytest.raises(ComparisonError, match="has no finished infer run|no finished"):
        sources.resolve(
            "run_b", "latest", compare_store.client, experiment="Default", stage="infer"
        )


def _params(a, b, store):
    return {
        "run_a": a,
        "run_b": b,
        "experiment": "test-exp",
        "stage": "train",
        "mlflow_tracking_uri": store.uri,
    }


def test_one_run_twice_or_two_stages_is_refused_naming_them(compare_store):
    ids = compare_store.ids
    with pytest.raises(ComparisonError, match="same run .*give two different runs"):
        sources.resolve_pair(
            _params(ids["base"], "models:/imdb-sentiment@champion", compare_store),
            compare_store.client,
        )
    with pytest.raises(ComparisonError, match="run_a is a train run and run_b a tune run"):
        sources.resolve_pair(
            _params(ids["base"], ids["tune_new"], compare_store), compare_store.client
        )
    with pytest.raises(ComparisonError, match="run_a is an infer run and run_b a train run"):
        sources.resolve_pair(
            _params(ids["infer"], ids["base"], compare_store), compare_store.client
        )


def test_the_pair_is_shown_newer_first_whatever_the_order_given(compare_store):
    ids = compare_store.ids
    for a, b in ((ids["base"], ids["param"]), (ids["param"], ids["base"])):
        newer, older = sources.resolve_pair(_params(a, b, compare_store), compare_store.client)
        assert (newer.run_id, older.run_id) == (ids["param"], ids["base"])
