"""Shared helpers for the IMDB sentiment notebooks and their runner.

One module per concern: ``paths`` (where things live), ``logs`` (logging set-up),
``params`` (notebook parameter parsing and checks), and the stage modules that later
issues add (data, cleaning, datasets, models, training, tracking, tuning, storage, secrets).
"""

__version__ = "0.1.0"
