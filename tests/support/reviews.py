"""Tiny synthetic reviews whose words carry their label (learnable, not trivially), and the
train/rest split the model tests train on.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lib.data.cleaning import clean

NEUTRAL = (
    "film movie plot actor scene story director camera music script ending cast "
    "character minute time people watch seen saw year"
).split()
POSITIVE = "great superb wonderful brilliant loved enjoyable masterpiece".split()
NEGATIVE = "awful terrible boring waste worst dull horrible".split()


def synthetic_reviews(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` raw reviews (HTML, punctuation, capitals) and their 0/1 labels.

    Each has 6-14 neutral words and 1-3 words of its sentiment; one review in ten also
    has a word of the other sentiment, so the task is learnable but not trivial.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(NEUTRAL, rng.integers(6, 15)))
        words += list(rng.choice(own, rng.integers(1, 4)))
        if rng.random() < 0.1:
            words.append(str(rng.choice(other)))
        rng.shuffle(words)
        words[0] = words[0].capitalize()
        texts.append(" ".join(words[:4]) + ", <br /><br />" + " ".join(words[4:]).upper() + "!")
    return texts, labels


def split(texts: list[str], labels: np.ndarray, n_train: int) -> tuple:
    """(cleaned train texts as Arrow, train labels, raw rest, labels of the rest)."""
    cleaned = clean(pa.array(texts[:n_train], pa.large_string()))
    return cleaned, labels[:n_train], texts[n_train:], labels[n_train:]
