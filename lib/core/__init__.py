"""What every stage needs: errors, paths, parameters, logging, secrets, the speed switches,
TensorFlow's start-up, progress events and Google Cloud Storage (``gcs``).

The bottom layer: it imports no other group of ``lib``. Importing it imports nothing.
"""
