"""Every speed trick of the project, in one place, behind one switch.

``$IMDB_SPEEDUPS``: unset or ``on``, every trick is on; ``off`` (or ``0``, ``false``), every
trick is off and the code takes the plain path; a comma list such as ``-gc_freeze,-ready_client``
turns those named tricks off and keeps the others (what ``bench/speedups.py`` uses to measure
each one). The table in docs/run-stages.md lists each trick, where it acts and what it saves.

Each trick is a name in :data:`TRICKS`; code that applies one asks :func:`enabled` first.
Tricks small enough to be a function live here; the larger ones (the kernel client that
is ready on ``kernel_info``, a jupyter_client subclass; what ``data_cache`` keeps and how it
is keyed, in ``lib.data.datasets`` and ``lib.model.models``; ``direct_vocabulary``, in
``lib.model.features``)
live with the code they speed up and are gated here.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

SWITCH = "IMDB_SPEEDUPS"

TRICKS: dict[str, str] = {
    "skip_imports": "a slow optional import that nothing here uses is made unimportable",
    "keras_without_sklearn": "Keras's scikit-learn wrappers, unused here, do not import sklearn",
    "background_imports": "modules needed later are imported while waiting, at low priority",
    "gc_freeze": "long-lived objects are frozen out of the garbage collector's scans",
    "ready_client": "a pooled kernel's client is ready on kernel_info, not after 0.2 s idle",
    "data_cache": "a process keeps its loaded data set and fitted vectoriser for the next run",
    "direct_vocabulary": "a vectoriser's vocabulary tensor goes into its lookup table as it is",
}

_OFF_WORDS = {"off", "0", "false", "no", "none"}


def _disabled(environ: dict[str, str] | os._Environ[str] | None = None) -> set[str]:
    value = (os.environ if environ is None else environ).get(SWITCH, "").strip().lower()
    if not value or value in {"on", "1", "true", "yes", "all"}:
        return set()
    if value in _OFF_WORDS:
        return set(TRICKS)
    names = {part.strip().lstrip("-") for part in value.split(",") if part.strip()}
    unknown = sorted(names - set(TRICKS))
    if unknown:
        log.warning("$%s names unknown tricks %s; known: %s", SWITCH, unknown, ", ".join(TRICKS))
    return names & set(TRICKS)


def enabled(trick: str) -> bool:
    """Whether ``trick`` (a key of :data:`TRICKS`) is on in this process."""
    if trick not in TRICKS:
        raise KeyError(f"unknown speed trick {trick!r}; known: {', '.join(TRICKS)}")
    return trick not in _disabled()


# -- background_imports ------------------------------------------------------------------

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
            log.debug("importing %s ahead: %s", name, exc)


def import_in_background(modules: Sequence[str], name: str = "prefetch") -> threading.Thread | None:
    """Import ``modules`` in a daemon thread at low CPU priority (Linux sets niceness per
    thread, so on a busy machine it takes idle CPU time only); None if all are loaded or
    the trick is off (they are then imported where they are used)."""
    if not enabled("background_imports"):
        return None
    todo = [m for m in modules if m not in sys.modules]
    if not todo:
        return None
    thread = threading.Thread(target=_load, args=(todo,), name=name, daemon=True)
    thread.start()
    return thread


# -- skip_imports ------------------------------------------------------------------------

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
    if not enabled("skip_imports"):
        return
    for name in UNUSED_SLOW_MODULES:
        sys.modules.setdefault(name, None)


# -- keras_without_sklearn ---------------------------------------------------------------

# Keras imports its scikit-learn wrappers as TensorFlow is imported, and they import sklearn
# whenever it is installed (it is: MLflow's evaluator, `runner promote`, needs it), which
# pulls in scipy.stats and narwhals: about 1 s of CPU in every process that imports
# TensorFlow. The wrappers expect sklearn to be missing (they then define stand-ins that say
# so when used); nothing here uses them.
_KERAS_WRAPPERS = "keras.src.wrappers"


class _NoSklearnForKeras:
    """A meta path finder that answers ``import sklearn`` from Keras's wrappers, and only
    from them, as if sklearn were not installed; every other importer gets it as usual (a
    failed import leaves nothing in ``sys.modules``)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name != "sklearn":
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
            frame = frame.f_back
        if frame is not None and frame.f_globals.get("__name__", "").startswith(_KERAS_WRAPPERS):
            raise ModuleNotFoundError("sklearn is kept from Keras's wrappers", name=name)
        return None


def keep_sklearn_from_keras() -> None:
    """Install :class:`_NoSklearnForKeras` (once) unless the trick is off. Call it before
    TensorFlow is imported; with Keras already imported it changes nothing."""
    if enabled("keras_without_sklearn") and _NoSklearnForKeras not in sys.meta_path:
        sys.meta_path.insert(0, _NoSklearnForKeras)


# -- gc_freeze ---------------------------------------------------------------------------


def freeze_long_lived() -> None:
    """Move every object that exists now into the garbage collector's permanent generation:
    later collections (a kernel's reset, the interpreter's last ones at exit) skip them.
    Only for objects that live as long as the process: frozen ones are never collected."""
    if enabled("gc_freeze"):
        import gc

        gc.freeze()


def kernel_start_code() -> str:
    """The one line each kernel that the runner starts runs first (an IPython exec line,
    which leaves no name in the notebook's namespace): it calls :func:`kernel_started`."""
    return '__import__("lib.core.speedups").core.speedups.kernel_started()'


def kernel_arguments() -> list[str]:
    """Extra command-line arguments for the kernels that the runner starts."""
    return [f"--IPKernelApp.exec_lines={kernel_start_code()}"]


def freeze_at_exit() -> None:
    """Have :func:`freeze_long_lived` run as this process exits: the interpreter's last
    full collections then skip what is alive (1.3 s less for a kernel that imported
    TensorFlow, MLflow and pandas). Registered as a kernel starts, it runs after the exit
    handlers of the modules imported later (MLflow's ends the active run), and changes
    nothing while the kernel runs, unlike a freeze in a notebook's last cell, which after
    "Run All" in JupyterLab would stop the collection of the user's objects."""
    atexit.register(freeze_long_lived)


def kernel_started() -> None:
    """Run first in a kernel that the runner started: the tricks that act in every kernel."""
    skip_unused_slow_imports()
    keep_sklearn_from_keras()
    freeze_at_exit()


# -- data_cache --------------------------------------------------------------------------

T = TypeVar("T")


class Memo(Generic[T]):
    """The last ``size`` values computed, by key, for as long as the process lives.

    A module-level memo survives a pooled kernel's reset (which clears the namespace and
    Keras's state but keeps the modules), so the next trial in the same kernel finds what
    the last one computed. A key must hold everything that determines the value; callers
    ask :func:`enabled` first and compute directly when their trick is off.
    """

    def __init__(self, name: str, size: int = 1) -> None:
        self.name, self.size = name, size
        self._values: OrderedDict[Hashable, T] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for ``key``: the kept one, else ``compute()`` (kept, the least recently
        used one dropped; an exception is raised and nothing kept)."""
        if key in self._values:
            self.hits += 1
            self._values.move_to_end(key)
            log.debug("%s: reused (%d of %d calls)", self.name, self.hits, self.hits + self.misses)
            return self._values[key]
        self.misses += 1
        # Dropped before the new value is computed: the old and new are never held at once.
        while len(self._values) >= self.size:
            self._values.popitem(last=False)
        value = compute()
        self._values[key] = value
        return value
