"""A model version logged before issue 22's move of ``lib`` still loads after it.

``tests/fixtures/model-logged-2026-12/`` is a model folder that the pre-move code logged (see
its README.md): its ``python_model.pkl`` names ``lib.scoring_model.ScoringModel`` and its
``code/lib/`` is the flat layout's copy of ``MODEL_MODULES``. Real processes load it as users
do: ``runner predict`` on the folder, ``runner promote`` on two registered versions of it, and
``mlflow.pyfunc.load_model`` in a process that has already imported the project's ``lib`` (then
MLflow's ``code/`` on ``sys.path`` does not help: ``lib`` is the project's package, so the
pickle's ``lib.scoring_model`` must still import from it; checked by hand on a copy of ``lib``
without that module and without the editable install's finder: ModuleNotFoundError).

Only ``mlflow`` and ``tests`` are imported here (and ``lib``'s prep, for the data set promote
scores on), so these tests hold whatever the layout of ``lib`` is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from tests.support.datagen import make_raw_dir
from tests.support.runner_process import ROOT, run_python, run_runner

FIXTURE = ROOT / "tests" / "fixtures" / "model-logged-2026-12"
RECORD = json.loads((FIXTURE / "probabilities.json").read_text(encoding="utf-8"))
TEXTS: list[str] = RECORD["texts"]
EXPECTED: list[float] = RECORD["probabilities"]

pytestmark = pytest.mark.slow  # each test starts TensorFlow in a fresh process


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without TF_* settings, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TF_")} | extra


def test_the_fixture_is_the_old_layout_and_small():
    """What makes the fixture old: the pickle names the flat module, code/ is the flat lib."""
    assert b"lib.scoring_model" in (FIXTURE / "python_model.pkl").read_bytes()
    assert (FIXTURE / "code" / "lib" / "scoring_model.py").is_file()
    assert (FIXTURE / "code" / "lib" / "models.py").is_file()
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size < 1_000_000
    assert len(TEXTS) == len(EXPECTED) == 3


def test_runner_predict_gives_the_recorded_probabilities(tmp_path):
    result = run_runner(
        ["predict", "--model", str(FIXTURE), *TEXTS], _env(LOG_DIR=str(tmp_path / "logs"))
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "\t" in line]
    assert len(lines) == len(TEXTS), result.stdout
    for line, expected in zip(lines, EXPECTED, strict=True):
        label, probability, _ = line.split("\t", 2)
        assert float(probability) == pytest.approx(expected, abs=1e-4), line
        assert label == ("positive" if expected >= 0.5 else "negative")


def test_loaded_in_a_process_that_imported_lib_first():
    """The pickle's ``lib.scoring_model`` resolves against the project's ``lib``, already
    imported: the case that moving the module breaks (MLflow's ``code/`` comes too late)."""
    out = run_python(
        f"""
        import json, sys
        import lib.model.models  # the project's lib, as in predict, promote or a scoring page
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model({str(FIXTURE)!r})
        probabilities = model.predict({TEXTS!r})
        print(json.dumps({{
            "probabilities": [float(p) for p in probabilities],
            "lib": lib.__file__,
        }}))
        """
    )
    loaded = json.loads(out.splitlines()[-1])
    assert Path(loaded["lib"]).is_relative_to(ROOT / "lib")  # the project's lib, not code/
    assert loaded["probabilities"] == pytest.approx(EXPECTED, abs=1e-4)


@dataclass
class Registered:
    store: str
    name: str
    root: Path


@pytest.fixture
def registered(tmp_path) -> Registered:
    """Two versions of one registered model, both the fixture, in a fresh local store; v1
    the champion. Each run's ``data_path`` is a processed data set of generated reviews."""
    from lib.data import prep  # the data set that promote scores both versions on

    prep.prepare([make_raw_dir(tmp_path / "raw", per_label=30)], tmp_path / "processed")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.create_experiment(
        "legacy-models", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    name = "legacy"
    client.create_registered_model(name)
    for _ in range(2):
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "data_path", str(tmp_path / "processed"))
        client.log_artifacts(run.info.run_id, str(FIXTURE), "model")
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    return Registered(store, name, tmp_path)


def test_runner_promote_loads_two_old_versions_and_decides(registered):
    result = run_runner(
        ["promote", "--model-name", registered.name, "--version", "2"],
        _env(MLFLOW_TRACKING_URI=registered.store, LOG_DIR=str(registered.root / "logs")),
    )
    assert result.returncode == 0, result.stderr
    # The same model twice: equal scores, so the champion stays (both were loaded and scored).
    line = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"kept {registered.name} v1 as champion over v2: "
        r"test_accuracy (\d\.\d{4}) vs (\d\.\d{4}) \(v1\), \+0\.0000 < 0\.002",
        line,
    )
    assert match, line
    assert match[1] == match[2]
    client = mlflow.MlflowClient(tracking_uri=registered.store, registry_uri=registered.store)
    aliases = client.get_registered_model(registered.name).aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "1"}
    assert client.get_model_version(registered.name, "2").tags["promotion_decision"] == "kept"
