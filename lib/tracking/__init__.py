"""MLflow: runs (``runs``), the tracking-store check (``store_check``), the model registry,
promotion, the logged scoring model and loading a model by URI (``model_io``).

Above ``lib.model``. Importing it imports nothing.
"""
