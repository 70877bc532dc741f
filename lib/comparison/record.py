"""The comparison's own MLflow run, in the experiment ``comparisons``: tagged with both run
ids, and each compared run tagged with it. A compared run that the server will not let this
user tag (another's experiment) is warned about, and the comparison goes on."""

from __future__ import annotations

import logging
from typing import Any

from lib.comparison.sources import Source
from lib.core.errors import first_line
from lib.tracking import runs as tracking

log = logging.getLogger(__name__)

EXPERIMENT = "comparisons"
RUN_A_TAG = "compared_run_a"  # the newer run
RUN_B_TAG = "compared_run_b"  # the older run
STAGE_TAG = "compared_stage"
COMPARISON_TAG = "comparison_run_id"  # on each compared run: its latest comparison


def start(params: dict[str, Any], newer: Source, older: Source):
    """Start the comparison's run (checked store, experiment ``mlflow_exp_name``)."""
    tags = {RUN_A_TAG: newer.run_id, RUN_B_TAG: older.run_id, STAGE_TAG: newer.stage}
    return tracking.start_run(
        tracking_uri=params["mlflow_tracking_uri"],
        experiment_name=params["mlflow_exp_name"],
        artifact_location=params["mlflow_artifact_location"],
        run_name=params["mlflow_run_name"] or f"{newer.run_id[:8]}-vs-{older.run_id[:8]}",
        tags=tracking.run_tags(None, {**params["mlflow_tags"], **tags}),
    )


def tag_compared(client, comparison_run_id: str, sources: list[Source]) -> list[str]:
    """Tag each compared run with the comparison's id; the runs it could not tag (a warning
    each: the server refused this user, say), which the comparison goes on without."""
    import mlflow
    import requests

    refused = []
    for source in sources:
        try:
            client.set_tag(source.run_id, COMPARISON_TAG, comparison_run_id)
        except (mlflow.exceptions.MlflowException, requests.RequestException) as exc:
            log.warning(
                "run %s not tagged with its comparison (%s); going on",
                source.run_id,
                first_line(exc)[:200],
            )
            refused.append(source.run_id)
    return refused
