"""Small trained models logged as the train notebook logs them, for the registry and promotion
tests; a worse model of the same signature, and a model of another signature."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

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


def inverted(model):
    """``model`` with P(positive) turned into 1 - P(positive): a worse model of one signature."""
    import keras

    flipped = keras.layers.Rescaling(-1.0, offset=1.0)(model.outputs[0])
    return keras.Model(model.inputs, flipped)


class TextLengths(mlflow.pyfunc.PythonModel):
    """A model with another signature (a named ``text`` column in)."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return model_input["text"].str.len() / 1000.0


def log_other_signature(store: str, experiment: str) -> str:
    """A finished run in ``store`` holding a pyfunc model of another signature; its URI."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(Schema([ColSpec("string", "text")]), Schema([ColSpec("double")]))
    tracking.start_run(tracking_uri=store, experiment_name=experiment)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.pyfunc.save_model(
                f"{tmp}/model",
                python_model=TextLengths(),
                signature=signature,
                input_example=pd.DataFrame({"text": ["A film."]}),
            )
            mlflow.log_artifacts(f"{tmp}/model", artifact_path="model")
        return f"runs:/{mlflow.active_run().info.run_id}/model"
    finally:
        mlflow.end_run()
