"""Headless execution of the project's notebooks with papermill (``python -m runner``)."""
