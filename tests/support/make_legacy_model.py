"""Make the fixture ``tests/fixtures/model-logged-2026-12/``: a small model logged by the
pre-move code (issue 22), to prove that versions registered before the layout change still
load after it (``tests/lib/test_scoring_model.py``).

It trains the default model (``nbngram``) on a few hundred reviews that
:mod:`tests.support.datagen` generates (never real aclImdb reviews), logs it exactly as the train
notebook does (:func:`lib.tracking.log_keras_model`: the pyfunc
``lib.scoring_model.ScoringModel`` with its ``code/`` copy of ``MODEL_MODULES``) into a
throwaway local MLflow store, copies the logged model folder into the fixture folder, and
records what the model gives for :data:`TEXTS` in ``probabilities.json``.

Do NOT run it again after the move: the fixture's point is to be old. Usage (from the
project root, with the pre-move code checked out, e.g. commit 3eef8e4: names in this
docstring are the flat layout's; its imports follow the moved layout):
``.venv/bin/python -m tests.support.make_legacy_model [target]``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "model-logged-2026-12"
PROBABILITIES = "probabilities.json"
# The three texts whose probabilities are recorded (they hold words of tests.support.datagen).
TEXTS = (
    "A wonderful, moving film.<br /><br />I loved it!",
    "Dull plot and awful acting: a waste of time.",
    "The movie was a film with a plot and a cast.",
)
SEED = 7
PER_LABEL = 150  # 300 training reviews, 60 of them held out for validation
EPOCHS = 20


def _reviews(seed: int) -> tuple[list[str], list[int]]:
    from tests.support.datagen import review_text

    rng = random.Random(seed)
    labels = [label for _ in range(PER_LABEL) for label in (1, 0)]
    return [review_text(label, rng) for label in labels], labels


def make(target: Path = FIXTURE) -> dict:
    """Train, log and copy the model into ``target`` (which must not exist); its record."""
    import mlflow
    import numpy as np

    from lib.data import cleaning
    from lib.model import models, training
    from lib.tracking import runs as tracking

    if target.exists():
        raise SystemExit(f"{target} exists: the fixture is made once, before the move")
    texts, labels = _reviews(SEED)
    y = np.asarray(labels)
    n_train = len(texts) - 60
    training.set_seed(SEED)
    cleaned = cleaning.clean(texts[:n_train])
    bundle = models.build_model("nbngram", cleaned, y[:n_train], seed=SEED)
    params = models.default_train_params("nbngram") | {"learning_rate": None, "epochs": EPOCHS}
    training.train(
        bundle,
        cleaned,
        y[:n_train],
        texts[n_train:],
        y[n_train:],
        **params,
    )
    model = bundle.export_model()
    with tempfile.TemporaryDirectory(prefix="legacy-model-") as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        tracking.start_run(tracking_uri=store, experiment_name="legacy-model")
        try:
            uri = tracking.log_keras_model(model, list(TEXTS[:2]))
        finally:
            mlflow.end_run()
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=f"{tmp}/download", tracking_uri=store
        )
        shutil.copytree(local, target)
    loaded = mlflow.pyfunc.load_model(str(target))
    probabilities = [float(p) for p in loaded.predict(list(TEXTS))]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    record = {
        "commit": commit,
        "mlflow": mlflow.__version__,
        "texts": list(TEXTS),
        "probabilities": probabilities,
    }
    (target / PROBABILITIES).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    print(json.dumps(make(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE), indent=2))
