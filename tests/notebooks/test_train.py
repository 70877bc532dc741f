"""The train notebook, executed for real through the runner on a small generated data set."""

import os
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import mlflow
import nbformat
import pytest
import scrapbook as sb

from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.provenance import check_provenance
from tests.support.runner_process import error_traceback_shown, loud_lines
from tests.support.train_runs import FAST, run_train, train_runner

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=60, words=40)], root / "processed")
    return root / "processed"


def test_train_run_is_tracked_with_its_notebook_and_model(tmp_path, data):
    env = {"MLFLOW_HPTUNING_TAG": "1641159546", "POLYAXON_RUN_UUID": "uuid-123"}
    result, store = run_train(
        tmp_path, data, "-p", "optimiser", "rmsprop", "-p", "early_stopping_patience", "3", env=env
    )
    assert result.returncode == 0, result.stderr
    assert loud_lines(result.stdout + result.stderr) == []  # nothing at WARNING or above
    _check_quiet_notebook_with_alt_text(tmp_path / "run")
    scraps = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps
    for name in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert isinstance(scraps[name].data, float)
    assert scraps["val_accuracy"].data > 0.8  # the generated reviews are easy to tell apart
    run_id = scraps["mlflow_run_id"].data
    client = mlflow.MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optimiser"] == "rmsprop" and run.data.params["epochs"] == "2"
    assert run.data.params["early_stopping_patience"] == "3"  # logged with the run
    assert "tuning_trial" not in run.data.params  # a setting of tuning trials, not training's
    assert run.data.tags["hptuning_tag"] == "1641159546"
    assert run.data.tags["polyaxon_run_uuid"] == "uuid-123"
    fingerprint = prep.read_manifest(data)["fingerprint"]
    check_provenance(client, run_id, "train", fingerprint, ("lib/model/training.py",))
    assert [m.step for m in client.get_metric_history(run_id, "epoch_val_loss")] == [0, 1]
    assert run.data.metrics["test_accuracy"] == pytest.approx(scraps["test_accuracy"].data)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    artifacts |= {a.path for d in ("notebook", "plots") for a in client.list_artifacts(run_id, d)}
    assert {
        "notebook/train.ipynb",
        "notebook/train.html",
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
    } <= artifacts
    model_uri = scraps["model_uri"].data
    assert (tmp_path / "model" / "model.keras").is_file()

    texts = ["A wonderful, superb and moving film!", "Awful, boring and a total waste."]
    for model in (model_uri, str(tmp_path / "model" / "model.keras")):
        env = {"MLFLOW_TRACKING_URI": store}
        out = train_runner(["predict", "--model", model, *texts], tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.strip().splitlines()
        assert lines[0].startswith("positive\t") and lines[1].startswith("negative\t")
        # TensorFlow's C++ lines (oneDNN's, the CUDA probe's) are logged, not printed.
        assert loud_lines(out.stdout + out.stderr) == [], out.stderr
        assert "cuInit" not in out.stderr and "oneDNN" not in out.stderr


def _check_quiet_notebook_with_alt_text(run_dir: Path) -> None:
    """The executed notebook has no stderr and no widget (MLflow's artifact progress bar
    was one), and the plots in its HTML have their alternative text."""
    outputs = [
        o
        for c in nbformat.read(run_dir / "train.ipynb", as_version=4).cells
        for o in c.get("outputs", [])
    ]
    assert [o.text for o in outputs if o.get("name") == "stderr"] == []
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets == []
    # Why it decided: the two example reviews explained, their words marked.
    explained = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    explained = [html for html in explained if html.startswith("<p>P(positive) = ")]
    assert len(explained) == 2 and all('<mark class="word' in html for html in explained)
    assert "&#60;br /&#62;" in explained[0]  # the first example's <br />, shown as written

    alts = _image_alts((run_dir / "train.html").read_text())
    assert len(alts) == 2, alts  # the learning curves, the confusion matrix
    assert alts[0].startswith("Learning curves over 2 epoch(s): loss (train from"), alts
    assert alts[1].startswith("Test confusion matrix: of "), alts


def _image_alts(html: str) -> list[str | None]:
    """The ``alt`` of each ``<img>`` in ``html`` (None where it has none)."""
    alts: list[str | None] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                alts.append(dict(attrs).get("alt"))

    Images().feed(html)
    return alts


def test_a_failing_execution_marks_the_run_failed_with_its_partial_notebook(tmp_path, data):
    model_dir = tmp_path / "model"  # writable, so the checks pass; but the export, after the
    (model_dir / "model.keras").mkdir(parents=True)  # training, cannot replace a folder
    result, store = run_train(tmp_path, data, "-p", "model_dir", str(model_dir))
    assert result.returncode == 1
    assert "error: train failed: cell" in result.stderr
    assert f"partial notebook: {tmp_path / 'run' / 'train.ipynb'}" in result.stderr
    run_id = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps["mlflow_run_id"].data
    client = mlflow.MlflowClient(store)
    assert client.get_run(run_id).info.status == "FAILED"
    logged = client.download_artifacts(run_id, "notebook/train.ipynb", str(tmp_path / "dl"))
    cells = nbformat.read(logged, as_version=4).cells
    assert any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))


def test_unreachable_tracking_stops_before_training(tmp_path, data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, _ = run_train(
        tmp_path,
        data,
        "-p",
        "mlflow_tracking_uri",
        f"http://127.0.0.1:{port}",
        env={"IMDB_TRACKING_CHECK_S": "3"},  # given up after 3 s, not 30
    )
    assert result.returncode == 2
    assert f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}" in result.stderr
    assert not error_traceback_shown(result.stderr)
    nb = nbformat.read(tmp_path / "run" / "train.ipynb", as_version=4)
    train_cell = next(c for c in nb.cells if "training.train(" in c.source)
    assert train_cell.get("execution_count") is None and not train_cell.get("outputs")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("val_split", "1.5", "ParameterError: val_split: 1.5 is not allowed: a number in (0, 1)"),
        ("optimiser", "adamx", "ParameterError: optimiser: 'adamx' is not allowed: one of 'adam'"),
        ("epochs", "0", "ParameterError: epochs: 0 is not allowed: an integer >= 1"),
    ],
)
def test_bad_parameters_are_named_before_data_is_loaded(tmp_path, data, name, value, expected):
    # The runner refuses them before any kernel (tests/runner/cli/test_main.py); the notebook
    # checks them too, for plain papermill and JupyterLab.
    papermill = Path(sys.executable).with_name("papermill")
    out = tmp_path / "out.ipynb"
    args = ["-p", "data_path", str(data), "-p", "setup_mlflow", "False", "-p", name, value]
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run(
        [str(papermill), "notebooks/train.ipynb", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0 and expected in result.stderr, result.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    data_cell = next(c for c in nb.cells if "datasets.load(" in c.source)
    assert data_cell.get("execution_count") is None
    tf_cell = next(c for c in nb.cells if "tf_runtime.start()" in c.source)
    assert tf_cell.get("execution_count") is None  # named in seconds: TensorFlow never started


def test_plain_papermill_without_tracking(tmp_path, data):
    papermill = Path(sys.executable).with_name("papermill")
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [
            str(papermill),
            "notebooks/train.ipynb",
            str(tmp_path / "out.ipynb"),
            "-p",
            "data_path",
            str(data),
            "-p",
            "setup_mlflow",
            "False",
            "-p",
            "model_dir",
            str(tmp_path / "model"),
            *FAST,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    scraps = sb.read_notebook(str(tmp_path / "out.ipynb")).scraps
    assert "mlflow_run_id" not in scraps
    assert scraps["model_uri"].data == str(tmp_path / "model" / "model.keras")


def test_mlflow_autolog_adds_keras_own_logging(tmp_path, data):
    result, store = run_train(tmp_path, data, "-p", "mlflow_autolog", "True")
    assert result.returncode == 0, result.stderr
    run_id = sb.read_notebook(str(tmp_path / "run" / "train.ipynb")).scraps["mlflow_run_id"].data
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.data.params["mlflow_autolog"] == "True"
    autologged = set(run.data.params) - {"epochs", "bs", "optimiser", "learning_rate"}
    assert {"batch_size", "optimizer_name"} & autologged, sorted(run.data.params)
