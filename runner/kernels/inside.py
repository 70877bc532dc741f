"""The functions that run inside a pooled kernel.

The pool calls them through :func:`runner.kernels.calls.call`: each takes and returns
JSON-able data, leaves no name in the kernel's namespace, and is a plain function that a
test calls in its own process. Only the standard library is imported here at the top: a
kernel imports this module before anything else the pool asks of it.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import sys
import time
from typing import Any


def reset() -> None:
    """Make a used kernel like a fresh one, keeping its imported modules.

    A run that a failed notebook left active is ended as its hook ended it (FAILED, or
    KILLED for a pruned or interrupted trial), Keras and matplotlib state is dropped, and
    IPython's namespace, output history and execution counter start afresh. Then the freed
    memory is collected and handed back to the system, so that the pool's RSS limit sees
    what is still in use.
    """
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while (run := mlflow.active_run()) is not None:
            mlflow.end_run(status=_left_status(mlflow, run.info.run_id))
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        shell.reset(new_session=True)
    gc.collect()
    malloc_trim()


def _left_status(mlflow: Any, run_id: str) -> str:
    """How to end a run that a stopped notebook left active: as the runner's hook ended it
    (KILLED for a pruned or interrupted trial), else FAILED."""
    try:
        status = mlflow.MlflowClient().get_run(run_id).info.status
    except Exception:  # the store is gone: the run cannot be ended anyway
        return "FAILED"
    return status if status in ("KILLED", "FAILED", "FINISHED") else "FAILED"


def malloc_trim() -> bool:
    """Return the C heap's free pages to the system (glibc); whether it could be asked.

    Text data (strings of more than 512 bytes, most reviews) lives on the C heap, and
    glibc keeps what is freed there mapped: without this a kernel that held a data set
    still counts it in its resident memory after the reset.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        return False
    return True


def warm_up(data: dict[str, Any]) -> dict[str, Any]:
    """Import ``data["modules"]`` (in order; TensorFlow first, through
    :func:`lib.core.tf_runtime.start`) and, if TensorFlow is among what they loaded, start its
    runtime. A failed import is reported, not raised: the notebook that needs the module
    reports it in its own words.

    Returns ``{"seconds": ..., "failed": ["name: EName: message", ...]}``.
    """
    started = time.perf_counter()
    failed: list[str] = []
    modules = list(data.get("modules", ()))
    if "tensorflow" in modules:  # first: keras and mlflow.keras would import it uncaptured
        modules.insert(0, modules.pop(modules.index("tensorflow")))
    for name in modules:
        try:
            if name == "tensorflow":
                # Here: this module's own imports stay stdlib (see the module docstring).
                from lib.core import tf_runtime

                # Imported inside tf_runtime's capture: its C++ start-up lines (CUDA probe,
                # CPU instructions) go to the log, not to the runner's console.
                tf_runtime.start()
            else:
                importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        try:
            tensorflow.constant(1.0) + 1.0  # the first op starts the runtime (threads, devices)
        except Exception as exc:
            failed.append(f"tensorflow runtime: {type(exc).__name__}: {exc}")
    return {"seconds": round(time.perf_counter() - started, 3), "failed": failed}


def preflight(cases: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Check each case's ``"params"`` with the train notebook's own checks
    (:func:`lib.model.train_checks.check_train_params`), in order.

    Returns the first failure, ``{"index": its position in cases, "varied":
    case["varied"], "name": the parameter's name (None if the error names none), "error":
    "EName: message"}``, or None if all pass.
    """
    # Here: only the standard library at the top (see the module's docstring).
    from lib.model.train_checks import check_train_params

    for index, case in enumerate(cases):
        try:
            check_train_params(case["params"])
        except Exception as exc:
            return {
                "index": index,
                "varied": case.get("varied"),
                "name": getattr(exc, "name", None),
                "error": f"{type(exc).__name__}: {exc}",
            }
    return None


def freeze() -> None:
    """Move the objects that exist now out of the garbage collector's scans, if the
    ``gc_freeze`` trick is on (:func:`lib.core.speedups.freeze_long_lived`): after the warm-up
    (then each reset's collection takes ms, not ~0.8 s) or before the kernel exits."""
    # Here: only the standard library at the top (see the module's docstring).
    from lib.core.speedups import freeze_long_lived

    freeze_long_lived()
