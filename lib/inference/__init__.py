"""Scoring with a trained model, beyond the training notebook.

- Batch scoring, what ``infer.ipynb`` uses: the model named by a URI (``model_source``),
  files of reviews scored in chunks (``batch``), the scores written under their final name
  only when complete (``writers``), the notebook's checks and report (``infer_checks``,
  ``reporting``).
- Serving a logged model over HTTP: MLflow's scoring app behind limits on what one client can
  take (``limits``: the body, its JSON, a prediction's time, the predictions at once;
  ``stall``: a client that stalls mid-request), their settings (``settings``) and the server
  that runs them under uvicorn (``server``, the command ``python -m runner serve``).

Above ``lib.tracking`` (it loads the models that tracking logs). Importing it imports nothing.
"""
