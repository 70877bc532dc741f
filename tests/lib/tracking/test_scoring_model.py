"""lib.tracking.scoring_model and lib.tracking.runs.log_keras_model: the logged model is a pyfunc
model
that loads, from its own code, in a process that cannot import this project.

One small model is trained and logged for the module, into a local store in a temporary
project root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from lib.core.errors import OutputError
from lib.core.pins import direct_names, normalized, read_lock
from lib.model import training
from lib.tracking import model_io, model_requirements, scoring_model
from tests.support import logged_models
from tests.support.runner_process import loud_lines

pytestmark = pytest.mark.slow  # trains a model, loads it in a fresh interpreter
REVIEWS = ["A wonderful film.", "Dull and far too long.", "<b>Superb</b>, I loved it!"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, trained_model):
    """(store URI, model URI, the in-process Keras model, the exported .keras file)."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROJECT_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        store = f"sqlite:///{root / 'mlflow.db'}"
        model = trained_model
        exported = root / "models" / "latest" / "model.keras"
        uri = logged_models.log_model(store, model, export_to=exported)
        yield store, uri, model, exported


@pytest.fixture
def store_env(logged, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged[0])
    monkeypatch.setenv("PROJECT_ROOT", str(Path(logged[3]).parents[2]))
    return logged


# Drops the editable install's finder (the venv has this project installed editable), so
# that `lib` can come only from the model's code_paths; then loads and predicts.
_FRESH = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in repr(h)]
    sys.path[:] = [p for p in sys.path if "__editable__" not in p]
    sys.path_importer_cache.clear()
    assert importlib.util.find_spec("lib") is None, importlib.util.find_spec("lib")
    import mlflow
    model = mlflow.pyfunc.load_model(sys.argv[1])
    probabilities = model.predict(json.loads(sys.argv[2]))
    import lib
    print(json.dumps({"p": [float(p) for p in probabilities], "lib": lib.__file__}))
    """
)


def test_the_logged_model_loads_in_a_process_that_cannot_import_lib(store_env, tmp_path):
    store, uri, model, _ = store_env
    # As a fresh `mlflow models serve` finds it: no TF_* settings from this process.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("TF_")}
    done = subprocess.run(
        [sys.executable, "-I", "-c", _FRESH, uri, json.dumps(REVIEWS)],
        cwd=tmp_path,  # not the project root: nothing importable from the working directory
        env=env | {"MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # load_context starts TensorFlow through lib.core.tf_runtime: its C++ lines are not printed.
    # The model records the serving image's tensorflow-cpu, which this environment replaces by
    # tensorflow (same version): MLflow names it missing here, and nothing else.
    loud = loud_lines(done.stderr)
    assert [line for line in loud if "Detected one or more mismatches" not in line] == [], loud
    listed = [line for line in done.stderr.splitlines() if line.startswith(" - ")]
    assert all(line.startswith(" - tensorflow-cpu (current: uninstalled") for line in listed)
    assert "cuInit" not in done.stderr and "oneDNN" not in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # lib came from the model's own code folder, downloaded with it.
    assert Path(result["lib"]).parent.name == "lib"
    assert Path(result["lib"]).parents[1].name == "code"
    assert not Path(result["lib"]).is_relative_to(Path(scoring_model.__file__).parents[2])
    np.testing.assert_allclose(result["p"], training.predict_proba(model, REVIEWS), atol=1e-6)


def test_pyfunc_predict_takes_a_list_or_a_one_column_frame(store_env):
    _, uri, model, _ = store_env
    loaded = mlflow.pyfunc.load_model(uri)
    expected = training.predict_proba(model, REVIEWS)
    for given in (REVIEWS, pd.DataFrame({"review": REVIEWS})):
        probabilities = np.asarray(loaded.predict(given))
        assert probabilities.shape == (len(REVIEWS),)
        assert probabilities.dtype == np.float64
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert probabilities[0] > 0.5 > probabilities[1]


def test_the_signature_declares_strings_and_refuses_anything_else(store_env):
    _, uri, _, _ = store_env
    loaded = mlflow.pyfunc.load_model(uri)
    schema = loaded.metadata.get_input_schema()
    assert [t.name for t in schema.input_types()] == ["string"]
    assert [t.name for t in loaded.metadata.get_output_schema().input_types()] == ["double"]
    with pytest.raises(mlflow.exceptions.MlflowException, match="got int"):
        loaded.predict([1, 2])


def test_review_texts_refuses_frames_of_several_columns_and_non_strings():
    with pytest.raises(ValueError, match="one column"):
        scoring_model.review_texts(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(TypeError, match="expected review strings, got int 3"):
        scoring_model.review_texts(["fine", 3])


def test_the_model_holds_only_the_code_it_needs(store_env, tmp_path):
    from lib.core.code_deps import closure

    _, uri, _, _ = store_env
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    code = sorted(str(p.relative_to(local / "code")) for p in (local / "code").rglob("*.py"))
    assert code == list(scoring_model.MODEL_MODULES)
    # The list is the static import closure of the model's class: nothing missing, no more.
    root = Path(scoring_model.__file__).parents[2]
    needed = closure([], extra=["lib.tracking.scoring_model"], root=root)
    assert sorted(str(p.relative_to(root)) for p in needed.values()) == code
    assert [p.name for p in (local / "artifacts").iterdir()] == ["model.keras"]


def test_the_model_records_the_serving_locks_versions(store_env, tmp_path):
    """The serving role's direct packages at their locked versions, the rest of the serving lock
    as constraints.txt: serving the model resolves what the serving image holds."""
    _, uri, _, _ = store_env
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    lock = Path(scoring_model.__file__).parents[2] / model_requirements.SERVE_LOCK
    pins = {name: version for name, (version, _) in read_lock(lock).items()}
    requirements = (local / "requirements.txt").read_text().splitlines()
    direct = {normalized(r.split("==")[0]): r.split("==")[1] for r in requirements if "==" in r}
    assert direct == {name: pins[name] for name in direct_names(lock)}, requirements
    for package in ("mlflow-skinny", "tensorflow-cpu", "keras", "numpy", "pandas", "pyarrow"):
        assert package in direct, requirements
    assert "-c constraints.txt" in requirements
    constraints = (local / "constraints.txt").read_text().splitlines()
    assert sorted(constraints) == sorted(f"{n}=={v}" for n, v in pins.items() if n not in direct)
    run = mlflow.get_run(uri.split("/")[1])
    assert run.data.tags[model_requirements.SOURCE_TAG] == model_requirements.SERVE_LOCK


def test_the_exported_file_and_model_io_still_work_on_the_run_uri(store_env):
    _, uri, model, exported = store_env
    expected = training.predict_proba(model, REVIEWS)
    from_file = model_io.load_model(str(exported))
    np.testing.assert_allclose(training.predict_proba(from_file, REVIEWS), expected, atol=1e-6)
    labelled = model_io.predict_texts(uri, REVIEWS)
    assert [label for _, label, _ in labelled][:2] == ["positive", "negative"]
    np.testing.assert_allclose([p for _, _, p in labelled], expected, atol=1e-6)


def test_an_export_into_a_read_only_folder_is_one_line_naming_it(store_env, read_only_dir):
    store, _, model, _ = store_env
    with pytest.raises(OutputError) as info:
        logged_models.log_model(store, model, export_to=read_only_dir / "model" / "model.keras")
    assert str(info.value).startswith(f"model folder {read_only_dir / 'model'} cannot be written")
