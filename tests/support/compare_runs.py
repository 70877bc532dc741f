"""Runs to compare, written by hand into an MLflow store as the train and tune notebooks
log them: parameters, final and per-epoch metrics, the provenance tags and environment record
(``provenance/environment.json``, the contract with the runs' capture), an executed notebook
and plots. ``provenance=False`` makes a run logged before runs recorded what they were made of.
A plugin of tests/conftest.py: the session's store of such runs is :func:`compare_store`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lib.comparison.material import ENVIRONMENT_ARTIFACT
from lib.core import paths

PACKAGES = {"tensorflow": "2.19.0", "numpy": "2.1.3", "pandas": "2.2.3", "mlflow": "3.1.0"}
MODULES = ("lib/model/models.py", "lib/model/training.py", "lib/data/datasets.py")
TRAIN_PARAMS = {
    "data_path": "data/processed",
    "epochs": "2",
    "bs": "16",
    "model_name": "nbngram",
    "optimiser": "adam",
    "seed": "4002",
}


def module_digests(modules: tuple[str, ...] = MODULES) -> dict[str, str]:
    """The sha256 of each project module as this checkout holds it."""
    root = paths.project_root()
    return {m: hashlib.sha256((root / m).read_bytes()).hexdigest() for m in modules}


def environment(packages: dict[str, str] | None = None, modules: dict[str, str] | None = None):
    """An environment record as the contract has it."""
    return {
        "schema": 1,
        "python": "3.11.14",
        "packages": dict(packages or PACKAGES),
        "tensorflow": (packages or PACKAGES).get("tensorflow"),
        "gpu": None,
        "cpu_count": 2,
        "memory_bytes": 25_000_000_000,
        "modules": dict(module_digests() if modules is None else modules),
        "notebook": "notebooks/train.ipynb",
    }


def executed_notebook(params: dict[str, Any], accuracy: float, extra_cell: str | None = None):
    """A small executed train notebook: the injected parameters, a table, a printed result."""
    injected = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cells = [
        new_code_cell(
            "data_path = 'data/processed'\nepochs = 5", metadata={"tags": ["parameters"]}
        ),
        new_code_cell(f"# Parameters\n{injected}", metadata={"tags": ["injected-parameters"]}),
        new_code_cell(
            "results = evaluate()",
            outputs=[new_output("stream", name="stdout", text=f"test_accuracy {accuracy}\n")],
        ),
        new_code_cell(
            "table",
            outputs=[
                new_output(
                    "execute_result",
                    data={
                        "text/html": f"<table><tr><td>{accuracy}</td></tr></table>",
                        "text/plain": str(accuracy),
                    },
                    execution_count=4,
                )
            ],
        ),
    ]
    if extra_cell:
        cells.append(new_code_cell(extra_cell))
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def png(value: float) -> bytes:
    """A small plot whose pixels depend on ``value``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.bar([0, 1], [value, 1 - value])
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=40)
    plt.close(fig)
    return out.getvalue()


def log_run(
    client,
    experiment: str,
    *,
    params: dict[str, str],
    metrics: dict[str, float],
    history: dict[str, list[float]] | None = None,
    tags: dict[str, str] | None = None,
    env: dict[str, Any] | None = None,
    notebook=None,
    files: dict[str, bytes] | None = None,
    start_time: int | None = None,
) -> str:
    """A finished run in ``experiment`` holding what it is given; its id."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, start_time=start_time, tags=tags or {})
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    for key, values in (history or {}).items():
        for step, value in enumerate(values):
            client.log_metric(run_id, f"epoch_{key}", value, step=step)
    payload = dict(files or {})
    if env is not None:
        payload[ENVIRONMENT_ARTIFACT] = json.dumps(env).encode()
    if notebook is not None:
        payload["notebook/train.ipynb"] = nbformat.writes(notebook).encode()
    with tempfile.TemporaryDirectory() as tmp:
        for path, data in payload.items():
            local = Path(tmp, path)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            client.log_artifact(run_id, str(local), artifact_path=str(Path(path).parent))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def train_run(
    client,
    *,
    experiment: str = "test-exp",
    params: dict[str, str] | None = None,
    accuracy: float = 0.8,
    provenance: bool = True,
    commit: str | None = "c" * 40,
    fingerprint: str = "f" * 64,
    env: dict[str, Any] | None = None,
    start_time: int | None = None,
    extra_cell: str | None = None,
) -> str:
    """A train run as the train notebook logs it, with (by default) its provenance."""
    full = {**TRAIN_PARAMS, **(params or {})}
    tags = {}
    if provenance:
        tags = {"stage": "train", "data_fingerprint": fingerprint, "git_dirty": "false"}
        if commit:
            tags["git_commit"] = commit
    return log_run(
        client,
        experiment,
        params=full,
        metrics={"test_accuracy": accuracy, "test_loss": 1 - accuracy, "train_seconds": 3.0},
        history={
            "loss": [0.7, 0.5],
            "val_loss": [0.72, 0.55],
            "accuracy": [0.6, accuracy],
            "val_accuracy": [0.58, accuracy - 0.02],
        },
        tags=tags,
        env=(env or environment()) if provenance else None,
        notebook=executed_notebook(full, accuracy, extra_cell),
        files={
            "plots/confusion_matrix.png": png(accuracy),
            "plots/learning_curves.png": png(accuracy / 2),
        },
        start_time=start_time,
    )


def tune_parent(
    client,
    *,
    experiment: str = "test-exp",
    best: float,
    provenance: bool = True,
    start_time: int | None = None,
) -> str:
    """A tune parent run as lib.tuning.parent_run logs it: the study's summary as parameters,
    its tables and a plot under ``study/``; old-style (no ``stage`` tag) without provenance."""
    trials = (
        "number,state,val_loss,params.learning_rate,params.bs\n"
        f"0,COMPLETE,{best + 0.1},0.01,16\n1,COMPLETE,{best},0.001,32\n2,PRUNED,0.9,0.1,16\n"
    )
    importances = f"param,val_loss\nparams.learning_rate,{best}\nparams.bs,{1 - best}\n"
    tags = {"study_name": f"study-{best}"}
    if provenance:
        tags.update(stage="tune", data_fingerprint="f" * 64, git_dirty="false")
    return log_run(
        client,
        experiment,
        params={
            "study_name": f"study-{best}",
            "n_trials": "3",
            "objectives": '["val_loss"]',
            "directions": '["minimize"]',
        },
        metrics={"n_complete": 2, "n_pruned": 1, "best_val_loss": best},
        tags=tags,
        env=environment() if provenance else None,
        files={
            "study/trials.csv": trials.encode(),
            "study/importances.csv": importances.encode(),
            "study/history.png": png(best),
        },
        start_time=start_time,
    )


def register(client, name: str, run_id: str, alias: str) -> None:
    """``run_id``'s model as a new version of ``name``, named by ``alias``."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException:  # there already
        pass
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, alias, version.version)


@pytest.fixture(scope="session")
def compare_store(tmp_path_factory):
    """An SQLite store holding runs to compare (ids by name): ``base`` and runs that differ
    from it in one thing each (``param``: bs; ``data``: the data set; ``module``:
    lib/model/training.py; ``package``: tensorflow), an ``old`` run without provenance, an
    ``infer`` run, two tune parents (``tune_new``, ``tune_old``: the older old-style); base
    is the champion of imdb-sentiment and param the challenger."""
    import mlflow

    root = tmp_path_factory.mktemp("compare-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    client.create_experiment("test-exp", artifact_location=(root / "artifacts").as_uri())
    digests = module_digests()
    changed = {**digests, "lib/model/training.py": "0" * 64}
    ids = {
        "old": train_run(client, provenance=False, accuracy=0.7, start_time=500),
        "base": train_run(client, start_time=1000),
        "param": train_run(client, params={"bs": "32"}, accuracy=0.82, start_time=2000),
        "data": train_run(client, fingerprint="e" * 64, start_time=3000),
        "module": train_run(client, env=environment(modules=changed), start_time=4000),
        "package": train_run(
            client, env=environment(packages={**PACKAGES, "tensorflow": "2.18.0"}), start_time=5000
        ),
        "tune_old": tune_parent(client, best=0.4, provenance=False, start_time=6000),
        "tune_new": tune_parent(client, best=0.3, start_time=7000),
        "infer": log_run(
            client,
            "test-exp",
            params={"input_path": "x", "model_uri": "y"},
            metrics={"accuracy": 0.8},
            tags={"stage": "infer"},
            start_time=8000,
        ),
    }
    register(client, "imdb-sentiment", ids["base"], "champion")
    register(client, "imdb-sentiment", ids["param"], "challenger")
    return SimpleNamespace(uri=uri, client=client, ids=ids, root=root)
