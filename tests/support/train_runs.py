"""``python -m runner train`` run as a user runs it, for the tests of the train notebook: two
quick epochs on a small processed data set, tracked to an SQLite store under the
test's folder."""

import os

from tests.support.runner_process import run_runner

FAST = ["-p", "epochs", "2", "-p", "bs", "16"]


def train_runner(args, tmp_path, env=None):
    """``python -m runner ARGS`` with the test's own LOG_DIR, no tracking store of the caller's."""
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env = {**base, "LOG_DIR": str(tmp_path / "logs")}  # TensorFlow's C++ logs as a user's
    full_env.update(env or {})
    return run_runner(args, full_env)


def run_train(tmp_path, data, *extra, env=None):
    """The train stage on ``data`` for two quick epochs: (the finished process, its store URI)."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "train",
        "-p",
        "data_path",
        str(data),
        "-p",
        "mlflow_tracking_uri",
        store,
        "-p",
        "model_dir",
        str(tmp_path / "model"),
        "-p",
        "mlflow_exp_name",
        "test-exp",
        "--output-dir",
        str(tmp_path / "run"),
        *FAST,
        *extra,
    ]
    return train_runner(args, tmp_path, env), store
