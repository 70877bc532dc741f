"""The model, what ``train.ipynb`` uses: the training parameters and their checks
(``train_spec``, ``train_checks``), features, the Keras models, training and evaluation.

Above ``lib.data`` and ``lib.core``. Importing it imports nothing (TensorFlow loads only
with the modules that need it).
"""
