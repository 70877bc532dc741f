"""``python -m runner compare`` against the authenticated tracking server with ``gs://``
artifacts (the test stack): as a user who may only read the compared runs (tagging them is
refused: warned, and the comparison goes on) and as their owner (both tagged); no password in
any tag, parameter, artifact or line of output of the comparison."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.server.auth.client import AuthServiceClient

from lib.comparison import record
from tests.notebooks.test_compare import compare, outputs
from tests.support.compare_runs import train_run
from tests.support.services import mlflow_env
from tools import tracking_stack

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _texts(client, run_id: str, tmp_path) -> str:
    """Every tag, parameter and artifact of the run, as text."""
    run = client.get_run(run_id)
    local = client.download_artifacts(run_id, "", str(tmp_path / run_id))
    files = [
        p.read_bytes().decode("utf-8", "replace") for p in Path(local).rglob("*") if p.is_file()
    ]
    return "\n".join([str(run.data.tags), str(run.data.params), *files])


def test_compared_on_the_server_as_a_reader_and_as_the_owner(
    tmp_path, gcs_env, mlflow_tracking_env
):
    server = mlflow_tracking_env
    client = mlflow.MlflowClient(server.url)  # by its URL: see tests/notebooks/test_infer.py
    name = f"compare-{uuid.uuid4().hex[:8]}"
    client.create_experiment(
        name, artifact_location=tracking_stack.experiment_artifact_location(name)
    )
    older = train_run(client, experiment=name, start_time=1000)
    newer = train_run(client, experiment=name, params={"bs": "32"}, start_time=2000)
    reader, password = f"reader-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    AuthServiceClient(server.url).create_user(reader, password)  # READ on others' runs
    reader_env = {
        **mlflow_env(server),
        "MLFLOW_TRACKING_USERNAME": reader,
        "MLFLOW_TRACKING_PASSWORD": password,
    }

    result, scraps = compare(tmp_path / "reader", newer, older, env=reader_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert scraps["changed_params"] == ["bs"] and scraps["untagged_runs"] == [newer, older]
    assert outputs(tmp_path / "reader").count("not tagged with its comparison (") == 2
    assert f"untagged_runs: ['{newer}', '{older}']" in result.stdout  # the runner says it too
    comparison = client.get_run(scraps["mlflow_run_id"])
    assert comparison.info.artifact_uri.startswith("gs://")
    assert comparison.data.tags[record.RUN_A_TAG] == newer
    assert record.COMPARISON_TAG not in client.get_run(newer).data.tags

    result, scraps = compare(tmp_path / "owner", older, newer, env=mlflow_env(server))
    assert result.returncode == 0, result.stderr[-3000:]
    assert scraps["untagged_runs"] == []
    for run_id in (newer, older):
        assert client.get_run(run_id).data.tags[record.COMPARISON_TAG] == scraps["mlflow_run_id"]
    shown = _texts(client, scraps["mlflow_run_id"], tmp_path) + result.stdout + result.stderr
    assert "Parameters that differ" in shown  # the executed notebook was searched too
    for secret in (server.password, password):
        assert secret not in shown
    assert {a.path for a in client.list_artifacts(scraps["mlflow_run_id"], "notebook")} == {
        "notebook/compare.ipynb",
        "notebook/compare.html",
    }
