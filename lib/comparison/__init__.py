"""What changed between two runs: the comparison that ``compare.ipynb`` shows.

- Which runs (``sources``): a run id, a registered model's alias or version (the run behind
  it) or ``latest`` (an experiment's latest finished run of a stage); the checks that refuse
  a run that is not there, two runs of different stages and one run twice (``compare_checks``).
- What each run holds (``material``): its parameters, metrics, tags, environment record,
  executed notebook, plots and study tables, downloading only the artifacts shown.
- What differs (``differences``: parameters, metrics, data, code, environment;
  ``notebook_diff``: the executed notebooks cell by cell) and how it is shown (``report``).
- The comparison's own MLflow run in the experiment ``comparisons`` (``record``).

Above ``lib.tracking`` (it reads the runs that tracking logs), beside tuning and inference.
Importing it imports nothing.
"""
