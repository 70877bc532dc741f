"""``python -m runner`` (runner.cli.main): bad input exits 2 with one line naming the problem,
before any kernel starts or anything is written; a read-only or full output folder is one line.
"""

import os
import shlex
import socket
from pathlib import Path

import pytest

from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import ROOT, error_traceback_shown, run_runner


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory) -> Path:
    """A raw folder (``raw``) and the processed data set made from it (``processed``)."""
    root = tmp_path_factory.mktemp("cli-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=10, words=20)], root / "processed")
    return root


def _closed_port() -> int:
    with socket.socket() as s:  # a port that was just free and now has no listener
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _case(name: str, args: str, expected: str, notebook: bool = False):
    """A bad input: ``args`` (split on spaces; ``{tmp}``, ``{raw}``, ``{data}``, ``{port}``
    filled in), and what the error line says. One that reaches a notebook starts a kernel."""
    return pytest.param(
        args, expected, notebook, id=name, marks=[pytest.mark.slow] if notebook else []
    )


_PREP_RUN = "--output-dir {tmp}/run"  # prep has no MLflow parameters
_RUN = f"{_PREP_RUN} -p mlflow_tracking_uri sqlite:///{{tmp}}/mlflow.db"
_TRAIN = f"train {_RUN} -p model_dir {{tmp}}/model"
_TUNE = f'tune {_RUN} -y {{{{"train_params":{{{{"data_path":"{{data}}","epochs":1}}}}}}}}'
_INFER = f"infer {_RUN} -r input_path {{raw}} -r output_path {{tmp}}/scores.jsonl"


def _model_file(model, tmp_path: Path) -> Path:
    from lib.tracking import model_io

    return model_io.save_model(model, tmp_path / "model" / "model.keras")


def _registry_store(tmp_path: Path) -> str:
    """An SQLite store whose registry has imdb-sentiment version 1 as champion (its files
    never read: resolving the alias fails first)."""
    import mlflow

    from lib.tracking import registry

    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("models", (tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    registry.register(f"runs:/{run.info.run_id}/model", "imdb-sentiment", {}, tracking_uri=uri)
    registry.set_alias("imdb-sentiment", registry.CHAMPION, 1, tracking_uri=uri)
    return uri


@pytest.mark.parametrize(
    "args, expected, notebook",
    [
        _case("secret-name", "train -p mlflow_password x", "mlflow_password: this name looks like"),
        _case("y-not-mapping", "train -y [epochs]", "-y: a YAML list, not a mapping"),
        _case("f-missing", "train -f {tmp}/none.yml", "-f {tmp}/none.yml: no such file"),
        _case("usage", "train -p epochs", "argument -p/--parameters: expected 2 arguments"),
        _case("bucket-missing", "prep --output-dir gs:///runs", "no bucket in 'gs:///runs'"),
        _case(
            "fetch-source-missing",
            "fetch-data --source {tmp}/none.tar.gz --dest {tmp}/raw",
            "source archive {tmp}/none.tar.gz does not exist",
        ),
        _case(
            "model-missing", "predict --model {tmp}/m.keras good", "model {tmp}/m.keras does not"
        ),
        _case(
            "raw-missing",
            f"prep {_PREP_RUN} -p raw_dirs {{tmp}}/none -p processed_dir {{tmp}}/out",
            "DatasetError: raw data folder {tmp}/none does not exist",
            notebook=True,
        ),
        _case(
            "processed-inside-raw",
            f"prep {_PREP_RUN} -p raw_dirs {{raw}} -p processed_dir {{raw}}/processed",
            "processed_dir {raw}/processed is inside raw dir {raw}",
            notebook=True,
        ),
        _case("epochs", f"{_TRAIN} -p epochs 0", "epochs: 0 is not allowed: an integer >= 1"),
        _case("optimiser", f"{_TRAIN} -p optimiser nope", "optimiser: 'nope' is not allowed"),
        _case(
            "data-not-processed",
            f"{_TRAIN} -p data_path {{tmp}}",
            "data_path: {tmp} is not a processed data set",
            notebook=True,
        ),
        _case(
            "tracking-unreachable",
            f"{_TRAIN} -p data_path {{data}} -p mlflow_tracking_uri http://127.0.0.1:{{port}}",
            "cannot reach the MLflow tracking server at http://127.0.0.1:{port}",
            notebook=True,
        ),
        _case("n-trials", f"{_TUNE} -p n_trials 0", "n_trials: 0 is not allowed"),
        _case(
            "search-space-type",
            _TUNE
            + ' -y {{"search_space":{{"val_split":{{"type":"floaty","low":0,"high":1}}}}}}',  # JSON
            "search_space.val_split.type: unknown type 'floaty'",
        ),
        _case(
            "infer-alias-missing",
            f"{_INFER} -p mlflow_tracking_uri {{registry}} -r model_uri "
            "models:/imdb-sentiment@nope",
            "registered model 'imdb-sentiment' has no alias 'nope'; its aliases: champion "
            "(version 1)",
            notebook=True,
        ),
        _case(
            "infer-text-column-missing",
            f"{_INFER} -r model_uri {{model}} -r input_path {{tmp}}/reviews.csv",
            "ParameterError: text_column: 'text' is not a column of reviews.csv; its columns "
            "are 'id', 'review': pass one of them",
            notebook=True,
        ),
        _case(
            "infer-input-empty",
            f"{_INFER} -r model_uri {{model}} -r input_path {{tmp}}/empty",
            "DatasetError: input_path {tmp}/empty holds no reviews",
            notebook=True,
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_problem(
    tmp_path: Path, cli_data: Path, args: str, expected: str, notebook: bool, request
):
    values = {
        "tmp": tmp_path,
        "raw": cli_data / "raw",
        "data": cli_data / "processed",
        "port": _closed_port(),
    }
    # infer's: a model (trained once per process), a store whose registry has one, inputs.
    if "{model}" in args:
        values["model"] = _model_file(request.getfixturevalue("trained_model"), tmp_path)
    if "{registry}" in args:
        values["registry"] = _registry_store(tmp_path)
    (tmp_path / "reviews.csv").write_text("id,review\n1,Good.\n")
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # An unreachable server is given up on after 3 s, not the default 30 (the same check).
    env.update(LOG_DIR=str(tmp_path / "logs"), TF_CPP_MIN_LOG_LEVEL="2", IMDB_TRACKING_CHECK_S="3")
    result = run_runner([a.format(**values) for a in args.split()], env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and expected.format(**values) in errors[0], result.stderr[-3000:]
    assert not error_traceback_shown(result.stderr)
    if notebook:
        # Around it only the log's JSON records and the kernel's own chatter; the error is last.
        assert lines[-1] == errors[0] and "(partial notebook: " in errors[0]
    else:
        assert lines == errors


# -- refused before any kernel: names the notebook lacks, values, output folders ----------

# What a stage command must not import before it refuses its input: a kernel's client,
# papermill, TensorFlow, Keras, MLflow (each one, imported, fails in these tests).
_NO_KERNEL = ("jupyter_client", "nbclient", "papermill", "tensorflow", "keras", "mlflow")


def _blocked_imports(folder: Path) -> str:
    for name in _NO_KERNEL:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} imported')\n")
    return str(folder)


_OUT = "--output-dir {tmp}/run"
_SCORE = f"infer {_OUT} -r input_path {{tmp}}/reviews -r output_path {{tmp}}/out/scores.jsonl"


@pytest.mark.parametrize(
    "args, expected",
    [
        pytest.param(
            f"train {_OUT} -p optimizer rmsprop",
            "train: unknown parameter 'optimizer'; did you mean 'optimiser'?",
            id="p-unknown",
        ),
        pytest.param(
            f"train {_OUT} -r optimizer rmsprop",
            "train: unknown parameter 'optimizer'; did you mean 'optimiser'?",
            id="r-unknown",
        ),
        pytest.param(
            f"train {_OUT} -y '{{optimzer: sgd}}'",
            "train: unknown parameter 'optimzer'; did you mean 'optimiser'?",
            id="y-unknown",
        ),
        pytest.param(
            f"train {_OUT} -f {{tmp}}/train.yml",
            "train: unknown parameter 'optimzer'; did you mean 'optimiser'?",
            id="f-train",
        ),
        pytest.param(
            f"tune {_OUT} -f {{tmp}}/tune.yml",
            "tune: unknown parameter 'n_trails'; did you mean 'n_trials'?",
            id="f-tune",
        ),
        pytest.param(
            f"prep {_OUT} -p raw_dir x",
            "prep: unknown parameter 'raw_dir'; did you mean 'raw_dirs'?",
            id="prep-unknown",
        ),
        pytest.param(
            f"train {_OUT} -p epochs abc", "epochs: 'abc' is not allowed: an integer", id="epochs"
        ),
        pytest.param(
            f"train {_OUT} -p val_split 1.5",
            "val_split: 1.5 is not allowed: a number in (0, 1)",
            id="val-split",
        ),
        pytest.param(
            f"train {_OUT} -p model_name nbgram",
            "model_name: 'nbgram' is not allowed: one of 'nbngram', 'reference'",
            id="model-name",
        ),
        pytest.param(
            f"train {_OUT} -y '{{model_params: {{ngram: 2}}}}'",
            "model_params.ngram: not a hyperparameter of model 'nbngram'; did you mean 'ngrams'?",
            id="model-params",
        ),
        pytest.param(
            f"tune {_OUT} -y '{{train_params: {{optimizer: sgd}}}}'",
            "train_params.optimizer: not a parameter of the train notebook; did you mean "
            "'optimiser'?",
            id="tune-train-params-name",
        ),
        pytest.param(
            f"tune {_OUT} -y '{{train_params: {{epochs: abc}}}}'",
            "train_params.epochs: the train notebook refuses it: ParameterError: epochs: 'abc'",
            id="tune-train-params-value",
        ),
        pytest.param(
            "prep --output-dir notebooks",
            "--output-dir: notebooks is the project's notebooks folder",
            id="output-dir-notebooks",
        ),
        pytest.param(
            f"train {_OUT} -p model_dir notebooks",
            "model_dir: notebooks is the project's notebooks folder",
            id="model-dir-notebooks",
        ),
        pytest.param(
            f"prep {_OUT} -p processed_dir notebooks/processed",
            "processed_dir: notebooks/processed is inside the project's notebooks folder",
            id="processed-dir-in-notebooks",
        ),
        pytest.param(
            f"tune {_OUT} -p trials_dir notebooks/trials",
            "trials_dir: notebooks/trials is inside the project's notebooks folder",
            id="trials-dir-in-notebooks",
        ),
        pytest.param(
            f"infer {_OUT} -p treshold 0.4",
            "infer: unknown parameter 'treshold'; did you mean 'threshold'?",
            id="infer-unknown",
        ),
        pytest.param(
            f"{_SCORE} -p threshold 1.5",
            "threshold: 1.5 is not allowed: a number in (0, 1)",
            id="infer-threshold",
        ),
        pytest.param(
            f"{_SCORE} -p batch_size 0",
            "batch_size: 0 is not allowed: an integer >= 1",
            id="infer-batch-size",
        ),
        pytest.param(
            f"infer {_OUT} -r input_path {{tmp}}/none",
            "input_path: {tmp}/none does not exist: pass a folder of .txt reviews or a .csv, "
            ".parquet, .jsonl file",
            id="infer-input-missing",
        ),
        pytest.param(
            f"infer {_OUT} -r input_path {{tmp}}/train.yml",
            "input_path: {tmp}/train.yml has the extension '.yml', not one accepted",
            id="infer-input-extension",
        ),
        pytest.param(
            f"{_SCORE} -r output_path {{tmp}}/scores.txt",
            "output_path: {tmp}/scores.txt has the extension '.txt': write scores to a file "
            "ending in .jsonl, .parquet, .csv",
            id="infer-output-extension",
        ),
        pytest.param(
            f"{_SCORE} -r output_path {{tmp}}/done.jsonl",
            "output_path: {tmp}/done.jsonl already exists: choose another output or set "
            "overwrite to True",
            id="infer-output-exists",
        ),
    ],
)
def test_bad_input_is_refused_before_any_kernel_starts_or_anything_is_written(
    tmp_path: Path, args: str, expected: str
):
    (tmp_path / "train.yml").write_text("epochs: 1\noptimzer: sgd\n")
    (tmp_path / "tune.yml").write_text("n_trails: 20\n")
    (tmp_path / "reviews").mkdir()  # infer's input, and an output that is there
    (tmp_path / "done.jsonl").write_text("")
    expected = expected.replace("{tmp}", str(tmp_path))
    notebooks_dir = ROOT / "notebooks"
    before = {p.name: p.read_bytes() for p in notebooks_dir.iterdir() if p.is_file()}
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(LOG_DIR=str(tmp_path / "logs"), PYTHONPATH=_blocked_imports(tmp_path / "blocked"))
    result = run_runner(shlex.split(args.replace("{tmp}", str(tmp_path))), env, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"error: {expected}"] or (
        result.stderr.startswith(f"error: {expected}") and result.stderr.count("\n") == 1
    ), result.stderr[-3000:]
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()  # no run folder: no notebook, no MLflow run
    after = {p.name: p.read_bytes() for p in notebooks_dir.iterdir() if p.is_file()}
    assert after == before and not (notebooks_dir / "processed").exists()
    assert not (notebooks_dir / "trials").exists()


@pytest.mark.parametrize("fault", ["read_only_dir", "full_dir"])
def test_a_read_only_or_full_output_dir_is_one_line_before_any_kernel(tmp_path, request, fault):
    folder = request.getfixturevalue(fault)  # there already: only a write finds the fault
    raw = make_raw_dir(tmp_path / "raw", per_label=2)
    processed = tmp_path / "processed"
    params = f"{{raw_dirs: ['{raw}'], processed_dir: '{processed}'}}"
    env = {**os.environ, "LOG_DIR": str(tmp_path / "logs")}
    result = run_runner(["prep", "--output-dir", str(folder), "-y", params], env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: --output-dir {folder} cannot be written: ")
    assert ("read-only" if fault == "read_only_dir" else "no space left") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not processed.exists()  # no kernel ran
