"""What reporting an epoch to the study costs a trial kernel, for SQLite and a journal file.

A study of 12 finished trials of 8 epochs each (the size of bench/tune_pruning.py's), then
trials reporting as a trial kernel does (lib.tuning.pruning.open_trial: the study loaded
through its storage, the trial by its number; then ``trial.report`` and
``trial.should_prune`` after each epoch, with the median pruner). Prints the last line
``report_ms_sqlite=... report_ms_journal=... open_ms_sqlite=... open_ms_journal=...``:
milliseconds an epoch (mean of 3 trials x 8 epochs), and to open the trial once.

    .venv/bin/python bench/prune_report.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402

from lib.tuning import pruning  # noqa: E402
from lib.tuning.storage import open_storage  # noqa: E402

TRIALS, EPOCHS, MEASURED = 12, 8, 3
PRUNER = {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1}


def _study(url: str) -> optuna.Study:
    study = optuna.create_study(study_name="bench", storage=open_storage(url))
    rng = random.Random(0)
    for _ in range(TRIALS):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
        loss = 0.7
        for epoch in range(EPOCHS):
            loss *= rng.uniform(0.8, 1.0)
            trial.report(loss, epoch)
        study.tell(trial, loss)
    return study


def time_reports(study: optuna.Study, url: str, epochs: int = EPOCHS) -> tuple[float, float]:
    """(seconds an epoch, seconds to open the trial) of one new trial of ``study`` (at
    ``url``) that is opened as a trial kernel opens its own and reports ``epochs`` values,
    asking the pruner after each; the trial is then told PRUNED."""
    asked = study.ask()  # what the tune process asks; the kernel reports to it
    spec = {
        "study_name": study.study_name,
        "storage": url,
        "trial_number": asked.number,
        "pruner": PRUNER,
        "prune_on": "val_loss",
    }
    started = time.perf_counter()
    trial = pruning.open_trial(spec)
    opened = time.perf_counter()
    for epoch in range(epochs):
        trial.report(0.69, epoch)
        trial.should_prune()
    reported = time.perf_counter()
    study.tell(asked, state=optuna.trial.TrialState.PRUNED)
    return (reported - opened) / epochs, opened - started


def measure(url: str) -> tuple[float, float]:
    """(ms an epoch, ms to open the trial) for the storage at ``url``: the mean of
    :data:`MEASURED` trials."""
    study = _study(url)
    times = [time_reports(study, url) for _ in range(MEASURED)]
    epoch_s, open_s = zip(*times, strict=True)
    return 1000 * sum(epoch_s) / len(epoch_s), 1000 * sum(open_s) / len(open_s)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="prune-report-") as tmp:
        sqlite = measure(f"sqlite:///{Path(tmp) / 'optuna.db'}")
        journal = measure(str(Path(tmp) / "study.journal"))
    print(
        f"report_ms_sqlite={sqlite[0]:.1f} report_ms_journal={journal[0]:.1f} "
        f"open_ms_sqlite={sqlite[1]:.1f} open_ms_journal={journal[1]:.1f}"
    )


if __name__ == "__main__":
    main()
