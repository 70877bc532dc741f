"""Batch scoring, what ``infer.ipynb`` uses: files of reviews scored in chunks (``batch``)
and the scores written under their final name only when complete (``writers``).

Above ``lib.tracking`` and the groups below it. Importing it imports nothing (the model is
given to :func:`lib.inference.batch.score_reviews` as a callable).
"""
