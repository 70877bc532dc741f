"""What a run holds for a comparison, read from the tracking store: its parameters, metrics
and tags, the per-epoch metrics, and of its artifacts only those the comparison shows (the
environment record, the executed notebook, the plots and a study's tables), downloaded into a
folder of the caller's. What a run lacks (a run logged before runs recorded what they were
made of) is listed in :attr:`Material.missing`, and the comparison goes on without it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.comparison.sources import GIT_DIRTY_TAG, STAGE_TAG, Source
from lib.tracking.registry import DATA_FINGERPRINT_TAG, GIT_COMMIT_TAG
from lib.tracking.runs import no_artifact_progress_bar, server_errors

log = logging.getLogger(__name__)

ENVIRONMENT_ARTIFACT = "provenance/environment.json"  # the contract with the run's capture
NOTEBOOK_FOLDER = "notebook"  # where the runner logs the executed notebook
PLOT_FOLDERS = ("plots", "study")  # train and infer runs' figures; a study's
STUDY_TABLES = {"trials": "study/trials.csv", "importances": "study/importances.csv"}
HISTORY_PREFIX = "epoch_"  # per-epoch metrics (lib.tracking.runs.log_history)
PROVENANCE_TAGS = (STAGE_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG, DATA_FINGERPRINT_TAG)


@dataclass
class Material:
    """One run's side of a comparison."""

    source: Source
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    history: dict[str, list[float]] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    notebook: Any = None  # the executed notebook (nbformat), or None
    plots: dict[str, Path] = field(default_factory=dict)  # file name -> local PNG
    tables: dict[str, Path] = field(default_factory=dict)  # STUDY_TABLES' names -> local CSV
    missing: list[str] = field(default_factory=list)
    downloaded_bytes: int = 0

    @property
    def run_id(self) -> str:
        return self.source.run_id


def _listing(client, run_id: str, folder: str | None = None) -> list[str]:
    """The paths of the files directly in ``folder`` of the run's artifacts."""
    return [f.path for f in client.list_artifacts(run_id, folder) if not f.is_dir]


def _download(client, material: Material, path: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    # No progress bar: one per file would fill the notebook.
    with server_errors(f"downloading {path} of run {material.run_id}"), no_artifact_progress_bar():
        local = Path(client.download_artifacts(material.run_id, path, str(into)))
    material.downloaded_bytes += local.stat().st_size
    return local


def gather(client, source: Source, into: Path) -> Material:
    """Read ``source``'s run and download the artifacts a comparison shows into ``into``."""
    import nbformat

    run = source.run
    material = Material(
        source,
        dict(run.data.params),
        {k: v for k, v in run.data.metrics.items() if not k.startswith(HISTORY_PREFIX)},
        dict(run.data.tags),
    )
    with server_errors(f"reading the metrics of run {source.run_id}"):
        for key in sorted(k for k in run.data.metrics if k.startswith(HISTORY_PREFIX)):
            points = sorted(client.get_metric_history(source.run_id, key), key=lambda m: m.step)
            material.history[key[len(HISTORY_PREFIX) :]] = [m.value for m in points]
        top = {f.path for f in client.list_artifacts(source.run_id)}
        folders = {
            folder: _listing(client, source.run_id, folder)
            for folder in ("provenance", NOTEBOOK_FOLDER, *PLOT_FOLDERS)
            if folder in top
        }
    folder = into / source.run_id
    if ENVIRONMENT_ARTIFACT in folders.get("provenance", []):
        local = _download(client, material, ENVIRONMENT_ARTIFACT, folder)
        material.environment = json.loads(local.read_text(encoding="utf-8"))
    else:
        material.missing.append(f"its environment record ({ENVIRONMENT_ARTIFACT})")
    notebooks = [p for p in folders.get(NOTEBOOK_FOLDER, []) if p.endswith(".ipynb")]
    if notebooks:
        local = _download(client, material, notebooks[0], folder)
        material.notebook = nbformat.read(str(local), as_version=4)
    else:
        material.missing.append("its executed notebook")
    for plots in PLOT_FOLDERS:
        for path in folders.get(plots, []):
            if path.endswith(".png"):
                material.plots[path] = _download(client, material, path, folder)
    for name, path in STUDY_TABLES.items():
        if path in folders.get("study", []):
            material.tables[name] = _download(client, material, path, folder)
    absent = [tag for tag in PROVENANCE_TAGS if tag not in material.tags]
    if absent:
        material.missing.append(f"its tags {', '.join(absent)}")
    return material
