"""No dead code in lib and runner: vulture reads them with the notebooks' code cells.

The benches and the tests are left out on purpose: a lib function that only a bench or a
test calls is dead here (move it to its user). Names used where vulture cannot see the use
(framework hooks, functions a kernel is told to call by name) are listed with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import vulture

from lib.core.params import PARAMETERS_TAG

ROOT = Path(__file__).resolve().parents[1]

USED_WHERE_VULTURE_CANNOT_SEE = {
    "build": "Keras builds a layer through it",
    "_repr_html_": "IPython shows an object as HTML through it (HighlightedReview, report.Html)",
    "compute_output_shape": "Keras asks a layer for its output shape",
    "load_assets": "Keras loads a saved layer's assets through it",
    "listdir": "papermill's I/O handler interface",
    "pretty_path": "papermill's I/O handler interface",
    "option_string": "argparse passes it to every Action",
    "kernel_started": "the kernel calls it from the line that speedups.kernel_arguments sends",
    "warm_up": "a kernel is told to call it by name (runner.kernels.inside)",
    "preflight": "a kernel is told to call it by name (runner.kernels.inside)",
    "terminate": "jupyter_client's process-handle interface",
    "client_factory": "a jupyter_client KernelManager trait",
    "_finalizer": "keeps a weakref.finalize alive",
    "_get_stale_trial_ids": "overrides an Optuna storage method",
    "get_heartbeat_stale_trial_callback": "overrides an Optuna storage method",
    "clean_text": "the one-review form of lib.data.cleaning.clean that tests compare against",
    "default_train_params": "each model's training set-up, for bench/model_search.py and tests",
    "on_epoch_end": "Keras calls it on a callback as each epoch ends (lib.core.progress)",
    "on_epoch_begin": "Keras calls it on a callback as each epoch begins (lib.core.progress)",
    "_transport_default": "a traitlets dynamic default of jupyter_client's KernelManager",
    "_connection_file_default": "a traitlets dynamic default of jupyter_client's KernelManager",
    "execute_managed_notebook": "papermill's engine interface (runner.execution.engine)",
    "stop_training": "Keras reads it on the model after each epoch (lib.tuning.pruning)",
    "_render_traceback_": "IPython shows an exception through it (lib.tuning.pruning)",
    "__getattr__": "Python calls a module's __getattr__ for a name it lacks (lib.tuning.pruning)",
    "load_context": "MLflow calls it as it loads a pyfunc model (lib.tracking.scoring_model)",
    "check_tune_params": "the tune stage's check, named module:function in runner.stages",
    "_repr_mimebundle_": "IPython displays an object through it (evaluation.FigureOutput)",
    "create_app": "uvicorn calls the app factory it is named to (lib.inference.server.serve)",
}


def _notebook_code(path: Path) -> str:
    """The code cells but the parameters cell (its names are read through globals())."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join(
        c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and PARAMETERS_TAG not in c["metadata"].get("tags", [])
    )


def unused_code(*, ignore: dict[str, str]) -> list[str]:
    """vulture's findings (60% confidence and up) in lib, app and runner, notebooks read."""
    scanner = vulture.Vulture(ignore_names=list(ignore))
    scanner.scavenge([str(ROOT / "lib"), str(ROOT / "app"), str(ROOT / "runner")])
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        scanner.scan(_notebook_code(notebook), filename=str(notebook))
    return [
        f"{Path(item.filename).relative_to(ROOT)}:{item.first_lineno}: {item.message}"
        for item in scanner.get_unused_code(min_confidence=60)
    ]


def test_the_check_finds_dead_code():
    # Without the list, the hooks show up: the check reads the code and can fail.
    found = "\n".join(unused_code(ignore={}))
    assert "unused method 'compute_output_shape'" in found and "lib/model/models.py" in found


def test_lib_and_runner_have_no_dead_code():
    unused = unused_code(ignore=USED_WHERE_VULTURE_CANNOT_SEE)
    assert unused == [], "dead code (remove it, or list the name with why it is used):\n" + (
        "\n".join(unused)
    )
