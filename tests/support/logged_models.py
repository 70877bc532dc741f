"""Small trained models logged as the train notebook logs them, for the registry tests."""

from __future__ import annotations

from pathlib import Path

import mlflow

from lib.model import models, training
from lib.tracking import runs as tracking
from tests.support.reviews import split, synthetic_reviews

EXAMPLES = ["A wonderful, moving film.<br /><br />I loved it!", "Dull plot and awful acting."]


def train_model(seed: int = 4, epochs: int = 2, n: int = 300):
    """An exported nbngram model (raw strings in) trained on synthetic reviews."""
    texts, labels = synthetic_reviews(n, seed=seed)
    train_texts, train_labels, val_texts, val_labels = split(texts, labels, n - 50)
    training.set_seed(seed)
    bundle = models.build_model("nbngram", train_texts, train_labels, seed=seed)
    params = models.default_train_params("nbngram") | {"learning_rate": None, "epochs": epochs}
    training.train(bundle, train_texts, train_labels, val_texts, val_labels, **params)
    return bundle.export_model()


def log_model(
    store: str,
    model,
    *,
    experiment: str = "registry-tests",
    params: dict | None = None,
    export_to: Path | None = None,
) -> str:
    """A finished run in ``store`` holding ``model`` (and ``params``); its model URI."""
    tracking.start_run(tracking_uri=store, experiment_name=experiment)
    try:
        if params:
            tracking.log_params(params)
        return tracking.log_keras_model(model, EXAMPLES, export_to=export_to)
    finally:
        mlflow.end_run()
