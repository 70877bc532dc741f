from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from lib.core.errors import OutputError, ParameterError
from lib.core.params import notebook_parameters, parameter_names
from lib.data import prep
from lib.model import train_spec
from lib.model.train_checks import RUN_SETTINGS, check_train_params, logged_params
from tests.support.datagen import make_raw_dir

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "train.ipynb"


def test_logged_params_leave_the_runs_own_settings_out_and_spread_the_model_params():
    params = {
        "epochs": 2,
        "model_params": {"ngram_max": 3},
        "mlflow_exp_name": "sentiment",
        "mlflow_tracking_uri": "https://user@mlflow.example.org",
        "mlflow_tags": {"study": "s"},
        "hptuning_tag": "1641159546",
        "tuning_trial": {"study_name": "s", "storage": "sqlite:///o.db", "trial_number": 1},
        "early_stopping_patience": 2,
    }
    assert logged_params(params) == {
        "early_stopping_patience": 2,
        "epochs": 2,
        "model_params": {"ngram_max": 3},
        "mlflow_exp_name": "sentiment",
        "model.ngram_max": 3,
    }


def test_run_settings_are_parameters_of_the_train_notebook():
    assert RUN_SETTINGS <= set(parameter_names("train"))


# -- check_train_params -----------------------------------------------------------------


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-checks")
    prep.prepare([make_raw_dir(root / "raw", per_label=2)], root / "processed")
    return root / "processed"


def _defaults() -> dict[str, Any]:
    """The train notebook's parameters as its parameters cell sets them."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict[str, Any] = {}
    exec(cell.source, namespace)
    return notebook_parameters(namespace, NOTEBOOK)


def _params(processed: Path, **changes: Any) -> dict[str, Any]:
    model_dir = str(processed.parent / "model")  # the check makes it: not in the project
    return {**_defaults(), "data_path": str(processed), "model_dir": model_dir, **changes}


def test_the_notebooks_defaults_pass(processed):
    params = _params(processed)
    checked = check_train_params(params)
    assert checked == {**params, "model_params": train_spec.default_hparams("nbngram")}


def test_strings_as_polyaxon_passes_them_come_back_typed(processed, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(processed.parent))
    given = {
        "val_split": "0.25",
        "bs": "16",
        "epochs": "3",
        "seed": "7",
        "learning_rate": "0.01",
        "setup_mlflow": "false",
        "mlflow_autolog": "True",
        "model_params": {"ngrams": "2"},
        "data_path": "processed",  # relative: from the project root
    }
    params = _params(processed, **given)
    checked = check_train_params(params)
    assert (checked["val_split"], checked["bs"], checked["epochs"]) == (0.25, 16, 3)
    assert (checked["seed"], checked["learning_rate"]) == (7, 0.01)
    assert checked["setup_mlflow"] is False and checked["mlflow_autolog"] is True
    assert checked["model_params"]["ngrams"] == 2
    assert checked["data_path"] == str(processed)
    assert params["bs"] == "16" and params["model_params"] == {"ngrams": "2"}  # not changed


@pytest.mark.parametrize(
    "changes, name, words",
    [
        ({"val_split": 1.5}, "val_split", "(0, 1)"),
        ({"bs": 0}, "bs", ">= 1"),
        ({"epochs": "many"}, "epochs", "an integer"),
        ({"seed": -1}, "seed", ">= 0"),
        ({"optimiser": "adamx"}, "optimiser", "'adam'"),
        ({"learning_rate": 0}, "learning_rate", "a number in (0, inf)"),
        ({"metric": "f1"}, "metric", "'auc'"),
        ({"model_name": "svm"}, "model_name", "'nbngram'"),
        ({"model_params": "ngrams=2"}, "model_params", "a mapping"),
        ({"model_params": {"ngrams": 0}}, "model_params.ngrams", "0"),
        ({"model_params": {"ngram": 2}}, "model_params.ngram", "did you mean 'ngrams'?"),
        ({"model_dir": "notebooks"}, "model_dir", "notebooks folder"),
        ({"model_dir": "notebooks/model"}, "model_dir", "is inside the project's notebooks"),
        ({"setup_mlflow": "perhaps"}, "setup_mlflow", "true or false"),
        ({"mlflow_exp_name": " "}, "mlflow_exp_name", "a non-empty name"),
        ({"model_dir": ""}, "model_dir", "a folder"),
        ({"bs": 0, "epochs": 0}, "bs", ">= 1"),  # the first bad one
        ({"early_stopping_patience": 0}, "early_stopping_patience", ">= 1"),
        ({"early_stopping_patience": "soon"}, "early_stopping_patience", "an integer"),
        ({"tuning_trial": {"study_name": "s"}}, "tuning_trial", "the mapping the tune"),
        ({"tuning_trial": "trial 1"}, "tuning_trial", "prune_on"),
    ],
)
def test_a_bad_value_is_a_parameter_error_naming_the_parameter(processed, changes, name, words):
    with pytest.raises(ParameterError) as info:
        check_train_params(_params(processed, **changes))
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ") and words in str(info.value)


def test_early_stopping_and_the_tuning_trial_are_checked_and_kept(processed):
    trial = {
        "study_name": "s",
        "storage": "sqlite:///o.db",
        "trial_number": 3,
        "pruner": {"name": "median"},
        "prune_on": "val_loss",
    }
    checked = check_train_params(
        _params(processed, early_stopping_patience="2", tuning_trial=trial)
    )
    assert checked["early_stopping_patience"] == 2 and checked["tuning_trial"] == trial
    defaults = check_train_params(_params(processed))
    assert defaults["early_stopping_patience"] is None and defaults["tuning_trial"] is None


def test_an_experiment_name_is_needed_only_when_tracking(processed):
    checked = check_train_params(_params(processed, setup_mlflow=False, mlflow_exp_name=""))
    assert checked["mlflow_exp_name"] == ""


def test_a_data_path_that_is_missing_or_not_processed_is_named(processed, tmp_path):
    with pytest.raises(ParameterError) as info:
        check_train_params(_params(processed, data_path=str(tmp_path / "nope")))
    assert info.value.name == "data_path" and "runner prep" in str(info.value)
    with pytest.raises(ParameterError) as info:
        check_train_params(_params(processed, data_path=str(tmp_path)))
    assert info.value.name == "data_path" and "not a processed data set" in str(info.value)


def test_a_model_dir_that_cannot_be_written_is_one_line_before_the_training(
    processed, read_only_dir
):
    with pytest.raises(OutputError) as info:
        check_train_params(_params(processed, model_dir=str(read_only_dir / "model")))
    assert str(info.value).startswith(f"model_dir {read_only_dir / 'model'} cannot be written")
    assert "\n" not in str(info.value)
    blocker = processed.parent / "a-file"
    blocker.write_text("where model_dir's parent should be")
    with pytest.raises(OutputError, match="a file stands where a folder of its path should be"):
        check_train_params(_params(processed, model_dir=str(blocker / "model")))
    nested = processed.parent / "new" / "model"
    check_train_params(_params(processed, model_dir=str(nested)))
    assert not (processed.parent / "new").exists()  # probed, and no trace left


def test_a_parameter_named_like_a_secret_is_refused(processed):
    with pytest.raises(ParameterError) as info:
        check_train_params(_params(processed, mlflow_tracking_password="s3cret-value"))
    assert info.value.name == "mlflow_tracking_password"
    assert "environment" in str(info.value) and "s3cret-value" not in str(info.value)


def test_the_checks_need_no_data_and_import_no_tensorflow(tmp_path):
    """check_train_values is what the runner runs before it starts a kernel: it must not
    import TensorFlow or Keras (seconds), nor look for the data set."""
    code = (
        "import sys\n"
        "from lib.core.params import parameter_defaults\n"
        "from lib.model.train_checks import check_train_values\n"
        "params = {**parameter_defaults('train'), 'data_path': 'no/such/folder'}\n"
        "assert check_train_values(params)['optimiser'] == 'adam'\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})\n"
        "print(heavy)\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
