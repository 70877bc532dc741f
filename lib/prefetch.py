"""Importing modules ahead of need, in a background thread that yields the CPU; and not
importing at all the slow optional modules that nothing here uses.

Slow imports (MLflow, nbconvert, optuna.importance) that a process needs only later are
loaded while it waits for something else. The thread runs at a low CPU priority (Linux sets
niceness per thread), so that on a busy machine it takes idle CPU time only: at a tune run's
start every core is busy warming up the trial kernels, and that is the critical path.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

NICENESS = 10  # added to the thread's: about a tenth of a CPU's share when both want one


def _lower_priority() -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: import anyway
        log.debug("background imports at normal priority: %s", exc)


def _load(modules: Sequence[str]) -> None:
    _lower_priority()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # whoever needs it reports the failure
            log.debug("prefetching %s: %s", name, exc)


def import_in_background(modules: Sequence[str], name: str = "prefetch") -> threading.Thread | None:
    """Import ``modules`` in a daemon thread at low CPU priority; None if all are loaded."""
    todo = [m for m in modules if m not in sys.modules]
    if not todo:
        return None
    thread = threading.Thread(target=_load, args=(todo,), name=name, daemon=True)
    thread.start()
    return thread


# Optional modules that a dependency imports eagerly, slowly, for a feature this project
# never uses. rfc3987_syntax builds an Earley parser as it is imported (0.75 s of CPU) so
# that jsonschema can check the "iri" string format. Every process that imports nbformat
# (through papermill or scrapbook: the runner and every notebook kernel) imports jsonschema,
# and nothing here asks jsonschema to check formats.
UNUSED_SLOW_MODULES = ("rfc3987_syntax",)


def skip_unused_slow_imports() -> None:
    """Make ``UNUSED_SLOW_MODULES`` unimportable in this process: importing one raises
    ImportError, which their importers expect of an optional module. Call it before the
    first import of jsonschema; a module already imported stays."""
    for name in UNUSED_SLOW_MODULES:
        sys.modules.setdefault(name, None)


# The same for a kernel, run as it starts (an IPython exec line that leaves no name behind).
KERNEL_ARGUMENT = (
    '--IPKernelApp.exec_lines=__import__("lib.prefetch").prefetch.skip_unused_slow_imports()'
)
