"""The infer stage in the pipeline, decided on real files without a kernel: it scores train's
model unless given one, is up to date until its reviews, its model or its notebook change,
replaces only the output its own last run left, and `status` says in infer's line, exit 0,
when the tracking store that would resolve its alias does not answer."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from lib.core.errors import ParameterError
from runner.pipeline.plan import State, judge, plan
from tests.support.pipeline_project import (
    prepared_project,
    project_env,
    runner_in,
    stamp_as_if_run,
    without_heavy_imports,
)

GIVEN = {"train": {"epochs": 1}}  # infer's own defaults: data/new-reviews -> data/scores.jsonl
REVIEWS = Path("data/new-reviews")
SCORES = Path("data/scores.jsonl")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = prepared_project(tmp_path / "project")
    (root / REVIEWS / "pos").mkdir(parents=True)
    (root / REVIEWS / "pos" / "1.txt").write_text("a wonderful film")
    (root / REVIEWS / "2.txt").write_text("a dull film")
    return root


def _score(root: Path, text: str = '{"id": "2.txt", "probability": 0.1}\n') -> None:
    (root / SCORES).write_text(text)  # what a run of infer leaves


def _judge(given: dict = GIVEN):
    (planned,) = plan(["infer"], given)
    return judge(planned, State(), State().digests())[0]


def test_infer_scores_train_s_model_unless_given_one(project):
    (infer,) = plan(["infer"], GIVEN)
    assert infer.overrides["model_uri"] == "models/latest/model.keras"
    (given,) = plan(["infer"], {"infer": {"model_uri": "models:/imdb-sentiment@champion"}})
    assert given.overrides["model_uri"] == "models:/imdb-sentiment@champion"


def test_infer_is_up_to_date_until_its_reviews_or_its_model_change(project):
    stamp_as_if_run("infer", GIVEN, make=lambda: _score(project))
    decision = _judge()
    assert decision.up_to_date, decision.reasons
    assert decision.line().startswith("infer: up to date: reviews sha256:")
    assert ", model sha256:" in decision.line()
    (project / REVIEWS / "2.txt").write_text("a dull, dull film")
    assert _judge().reasons == ["reviews changed"]
    stamp_as_if_run("infer", GIVEN)
    (project / "models" / "latest" / "model.keras").write_bytes(b"a model trained again")
    assert _judge().reasons == ["model changed"]
    stamp_as_if_run("infer", GIVEN)
    (project / SCORES).unlink()
    assert _judge().reasons == [f"scores {SCORES} is gone"]


def test_the_pipeline_replaces_the_output_its_own_run_left_and_no_other_file(project):
    _score(project)  # not made by the pipeline: no stamp lists it
    with pytest.raises(ParameterError, match=r"^infer\.output_path: .*scores\.jsonl already"):
        plan(["infer"], GIVEN)
    (project / SCORES).unlink()
    stamp_as_if_run("infer", GIVEN, make=lambda: _score(project))
    (infer,) = plan(["infer"], GIVEN)
    assert infer.overrides["overwrite"] is True  # its own output: replaced when it re-runs
    assert infer.parameters["overwrite"] is False  # and not recorded as a changed parameter
    assert _judge().up_to_date
    with pytest.raises(ParameterError, match="already exists"):  # the user's word wins
        plan(["infer"], {**GIVEN, "infer": {"overwrite": False}})
    other = {**GIVEN, "infer": {"output_path": "data/other.jsonl"}}
    (project / "data" / "other.jsonl").write_text("someone else's\n")
    with pytest.raises(ParameterError, match="other.jsonl already exists"):
        plan(["infer"], other)  # not where its last run wrote
    _score(project, '{"id": "2.txt", "probability": 0.9}\n')  # changed since: not its own
    with pytest.raises(ParameterError, match="scores.jsonl already exists"):
        plan(["infer"], GIVEN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_says_in_infer_s_line_that_the_store_to_resolve_its_alias_does_not_answer(
    project, tmp_path
):
    alias = {"infer": {"model_uri": "models:/imdb-sentiment@champion"}}
    # Its last run scored with train's model.
    stamp_as_if_run("infer", GIVEN, mlflow_run_id="89abcdef", make=lambda: _score(project))
    stopped = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: a stopped server
    env = project_env(
        project,
        {"PYTHONPATH": without_heavy_imports(tmp_path / "blocked"), "MLFLOW_TRACKING_URI": stopped},
    )
    argv = ["status", "--stages", "prep,train,infer", "-p", "train.epochs", "1"]
    argv += ["-y", json.dumps(alias)]
    result = runner_in(project, argv, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("prep: ")
    line = next(i for i, text in enumerate(lines) if text.startswith("infer: "))
    assert lines[line].startswith(
        "infer: cannot tell whether it is up to date: cannot resolve "
        f"models:/imdb-sentiment@champion: cannot reach the MLflow tracking server at {stopped}"
    )
    assert lines[line + 1].startswith("  last run: runs/20261201T090559Z-infer")
    pipeline = runner_in(project, ["pipeline", "--stages", "infer", "-y", json.dumps(alias)], env)
    assert pipeline.returncode == 2 and "Traceback" not in pipeline.stderr
    assert pipeline.stderr.startswith("error: cannot resolve models:/imdb-sentiment@champion")
