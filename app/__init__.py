"""The review page: a Streamlit app where a person tries the champion model and sees why it
decided (``python -m runner app``; docs/page.md).

Between the runner, which starts it (it loads the model first, so that a model that cannot
be loaded is one line and exit 2), and lib, which does the work: it imports lib only.
"""
