from lib.params import parameter_names
from lib.train_checks import RUN_SETTINGS, logged_params


def test_logged_params_leave_the_runs_own_settings_out_and_spread_the_model_params():
    params = {
        "epochs": 2,
        "model_params": {"ngram_max": 3},
        "mlflow_exp_name": "sentiment",
        "mlflow_tracking_uri": "https://user@mlflow.example.org",
        "mlflow_tags": {"study": "s"},
        "hptuning_tag": "1641159546",
    }
    assert logged_params(params) == {
        "epochs": 2,
        "model_params": {"ngram_max": 3},
        "mlflow_exp_name": "sentiment",
        "model.ngram_max": 3,
    }


def test_run_settings_are_parameters_of_the_train_notebook():
    assert RUN_SETTINGS <= set(parameter_names("train"))
