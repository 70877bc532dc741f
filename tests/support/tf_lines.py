"""TensorFlow's own console lines, as the tests read them: the ones still known to reach the
console, and the JSON records among a process's output lines.
"""

import json

# TensorFlow lines the train notebook may still print: none. (Keras' fit on arrays made TF
# print "NodeDef mentions attribute use_unbounded_threadpool" under op determinism;
# lib.model.training now batches with its own tf.data pipeline, see its docstring.)
KNOWN_TF_LINES: tuple[str, ...] = ()


def json_lines(text: str) -> list[str]:
    """The lines of ``text`` that are JSON objects (what the JSON log formatter writes)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("{"):
            try:
                if isinstance(json.loads(line), dict):
                    found.append(line)
            except ValueError:
                pass
    return found
