"""Shared helpers for the IMDB sentiment notebooks and their runner, grouped by what they serve
(layers, top to bottom; a lower group never imports a higher one):

- ``lib.tuning``: the Optuna study whose trials are train notebooks (``tune.ipynb``);
- ``lib.tracking``: MLflow runs, the registry, promotion and the logged scoring model;
- ``lib.model``: features, models, training and evaluation (``train.ipynb``);
- ``lib.data``: the raw reviews, cleaning and the prepared data (``prep.ipynb``);
- ``lib.core``: errors, paths, parameters, logging, secrets, GCS, TensorFlow's start-up.

``lib/scoring_model.py`` stays for models logged before the move (they pickle its class).
"""

__version__ = "0.1.0"
