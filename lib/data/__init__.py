"""The data set, what ``prep.ipynb`` uses: fetching and reading the raw reviews (``fetch``,
``raw``, ``scan``), cleaning them, the prepared Arrow files (``prep``, ``prep_checks``,
``arrow_buffers``) and the TensorFlow datasets read from them (``datasets``).

Above ``lib.core`` only. Importing it imports nothing.
"""
