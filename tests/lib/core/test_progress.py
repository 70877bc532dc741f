"""lib.core.progress: the events from inside the kernel, each read as one line, and the Keras
callback that emits one per epoch.
"""

from __future__ import annotations

import logging

import pytest

from lib.core.progress import describe, epoch_event, trial_event


def test_events_read_as_one_line():
    assert describe(epoch_event(2, 5, {"loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9})) == (
        "epoch 2/5: val_accuracy 0.9000, val_loss 0.4000"
    )
    assert describe(epoch_event(1, None, {"loss": float("nan")})) == "epoch 1"
    assert describe(trial_event(3, 10, 0.87, 1)) == "trials 3/10 done, best so far 0.8700 (trial 1)"
    assert describe(trial_event(1, None, None)) == "trials 1 done"


@pytest.mark.slow
def test_the_keras_callback_emits_an_epoch_event_per_epoch(caplog):
    import keras
    import numpy as np

    from lib.core.progress import epoch_callback

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((8, 2), "float32"), np.ones((8, 1), "float32")
    with caplog.at_level(logging.INFO, logger="lib.core.progress"):
        model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[epoch_callback()])
    lines = [r.getMessage() for r in caplog.records if r.name == "lib.core.progress"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val_accuracy 1.0000" in line for line in lines)
