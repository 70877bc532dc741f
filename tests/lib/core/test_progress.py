"""lib.core.progress: the events from inside the kernel, each read as one line, and the Keras
callback that emits one per epoch.
"""

from __future__ import annotations

import logging

import pytest

from lib.core.progress import describe, epoch_event, reviews_event, trial_event


def test_events_read_as_one_line():
    assert describe(epoch_event(2, 5, {"loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9})) == (
        "epoch 2/5: val_accuracy 0.9000, val_loss 0.4000"
    )
    assert describe(epoch_event(1, None, {"loss": float("nan")})) == "epoch 1"
    assert describe(trial_event(3, 10, 0.87, 1)) == "trials 3/10 done, best so far 0.8700 (trial 1)"
    assert describe(trial_event(1, None, None)) == "trials 1 done"


def test_reviews_scored_say_how_many_how_fast_and_the_time_left():
    event = reviews_event(4096, 25000, 2.0)
    assert event == {
        "event": "reviews",
        "done": 4096,
        "total": 25000,
        "per_s": 2048.0,
        "left_s": pytest.approx((25000 - 4096) / 2048, abs=0.05),
    }
    assert describe(event) == "reviews 4,096/25,000 (16%), 2,048 a second, 10 s left"
    assert describe(reviews_event(100, 500000, 1.0)).endswith("100 a second, 1 h 23 min left")
    assert describe(reviews_event(70, 160, 1.0)).endswith("70 a second, 1 s left")
    # A table read as it comes has no total: no share, no time left.
    assert describe(reviews_event(8192, None, 4.0)) == "reviews 8,192, 2,048 a second"
    assert describe(reviews_event(0, 10, 0.0)) == "reviews 0/10 (0%)"


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
