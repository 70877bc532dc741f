"""What the fast test tier may not start or import, and the guard that refuses it.

Standard library only: besides the pytest plugin (tests/support/tiers.py), the child guard
(tests/support/tier_child/sitecustomize.py) loads this file by path in every Python process
the tests start, so that a ``python -m runner`` that starts a kernel is caught too.

In the process that owns it, a started :class:`Guard` refuses

* an import of TensorFlow or Keras (a ``sys.meta_path`` finder whose loader raises), and
* a ``subprocess.Popen`` (``subprocess.run``, asyncio's subprocesses, jupyter_client's kernel
  launcher all go through it) of a program that starts a kernel, a server, a browser, a
  container or JupyterLab;

and records each refusal, since code may catch the error. A Python child gets the child guard
(``PYTHONPATH`` + :data:`REPORT_ENV`): it refuses the same programs, appending each refusal to
the owner's report file, which :meth:`Guard.take` reads.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

HEAVY_MODULES = ("tensorflow", "keras", "tf_keras")
# The child guard's report file: where a child appends the programs it was refused.
REPORT_ENV = "TESTS_TIER_REPORT"
CHILD_DIR = Path(__file__).resolve().with_name("tier_child")

_SERVER_COMMANDS = {"server", "serve", "ui"}
_BY_NAME = {
    # basename of an argv word, or a module after ``-m`` -> what it starts
    "ipykernel": "a Jupyter kernel",
    "ipykernel_launcher": "a Jupyter kernel",
    "jupyter-lab": "JupyterLab",
    "jupyterlab": "JupyterLab",
    "jupyter-server": "a Jupyter server",
    "jupyter-notebook": "a Jupyter server",
    "gunicorn": "a web server (gunicorn)",
    "uvicorn": "a web server (uvicorn)",
    "waitress-serve": "a web server (waitress)",
    "gcp_storage_emulator": "the GCS emulator",
    "gcp-storage-emulator": "the GCS emulator",
    "fake-gcs-server": "the GCS emulator",
    "postgres": "PostgreSQL",
    "postmaster": "PostgreSQL",
    "initdb": "PostgreSQL",
    "pg_ctl": "PostgreSQL",
    "pg_ctlcluster": "PostgreSQL",
    "docker": "a container (docker)",
    "dockerd": "a container engine (dockerd)",
    "containerd": "a container engine (containerd)",
    "podman": "a container (podman)",
    "buildah": "a container (buildah)",
}
_BROWSER = re.compile(r"chrom|firefox|headless_shell|msedge|webkit", re.IGNORECASE)
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")
_WRAPPERS = {"runuser", "sudo", "env", "nice", "setsid", "stdbuf", "timeout"}


class RefusedProgram(OSError):
    """The fast tier refused to start a program (a kernel, a server, ...)."""


class RefusedImport(ImportError):
    """The fast tier refused to import TensorFlow or Keras."""


def _argv(args: object, shell: bool) -> list[str]:
    if isinstance(args, (str, bytes, os.PathLike)):
        word = os.fsdecode(args)
        return shlex.split(word) if shell else [word]
    return [os.fsdecode(arg) for arg in args]  # type: ignore[union-attr]


def _command(words: Sequence[str]) -> tuple[str, list[str]]:
    """The program ``words`` run (its basename, or the module after ``python -m``), and its
    arguments: a wrapper (``runuser -u postgres -- initdb``) is looked through."""
    words = list(words)
    while words and os.path.basename(words[0]) in _WRAPPERS:
        after = words.index("--") + 1 if "--" in words else 1
        while after < len(words) and "--" not in words and _option(words[after]):
            after += 1
        words = words[after:]
    if not words:
        return "", []
    name = os.path.basename(words[0])
    if _PYTHON.search(name) and len(words) > 2 and words[1] == "-m":
        return words[2], words[3:]
    return name, words[1:]


def _option(word: str) -> bool:
    """A wrapper's own argument (``-n``, ``19``, ``VAR=1``), not the program it runs."""
    return word.startswith("-") or word.isdigit() or "=" in word


def refused_program(argv: Sequence[str]) -> str | None:
    """What ``argv`` starts that the fast tier may not (e.g. ``a Jupyter kernel``), or None."""
    name, rest = _command(argv)
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name == "mlflow" and _SERVER_COMMANDS & set(rest):
        return "an MLflow server"
    if name == "jupyter" and {"lab", "server", "notebook"} & set(rest):
        return "JupyterLab"
    if argv and ("playwright" in argv[0] or _BROWSER.search(name)):
        return "a browser"
    return None


FIX_TEST = "mark the test @pytest.mark.slow"
# Said instead when a module does it while pytest collects it.
FIX_MODULE = "import it only in slow tests, or mark the module slow (pytestmark)"


def violation(doing: str) -> str:
    """The one-line message of a refusal: ``doing`` says what the test did."""
    return f"{doing}: too slow for the fast tier; {FIX_TEST}"


class Guard:
    """Refuses TensorFlow/Keras imports (owner only) and the programs of :func:`refused_program`
    (owner and its Python children), recording each refusal."""

    def __init__(
        self, report: Path, modules: Sequence[str] = HEAVY_MODULES, owner: bool = True
    ) -> None:
        self.report = report
        self.modules = frozenset(modules)
        self.owner = owner
        self._found: list[str] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._finder = _RefuseImports(self)
        self._popen_init = None

    def start(self) -> None:
        """Installs the import finder (owner) and the ``Popen`` wrapper."""
        if self.owner:
            self.report.unlink(missing_ok=True)
            sys.meta_path.insert(0, self._finder)
        original = self._popen_init = subprocess.Popen.__init__
        guard = self

        def __init__(popen, args, *rest, **kwargs):  # noqa: N807
            argv = _argv(args, bool(kwargs.get("shell")))
            what = refused_program(argv)
            if what:
                message = guard.record(violation(f"starts {what} ({shlex.join(argv)[:120]})"))
                raise RefusedProgram(message)
            if _PYTHON.search(os.path.basename(argv[0]) if argv else ""):
                kwargs["env"] = guard.child_env(kwargs.get("env"))
            original(popen, args, *rest, **kwargs)

        subprocess.Popen.__init__ = __init__  # type: ignore[method-assign]

    def stop(self) -> None:
        """Removes what :meth:`start` installed."""
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        if self._popen_init is not None:
            subprocess.Popen.__init__ = self._popen_init  # type: ignore[method-assign]
            self._popen_init = None

    def child_env(self, env: dict[str, str] | None) -> dict[str, str]:
        """``env`` (or this process's) with the child guard on ``PYTHONPATH``."""
        env = dict(os.environ if env is None else env)
        path = [str(CHILD_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
        env[REPORT_ENV] = str(self.report)
        return env

    def record(self, message: str) -> str:
        """Keeps ``message`` for :meth:`take` (the owner) or appends it to the report (a child)."""
        if self.owner:
            with self._lock:
                self._found.append(message)
        else:
            with self.report.open("a") as report:  # one short write: lines stay whole
                report.write(message.replace("\n", " ") + "\n")
        return message

    def take(self) -> list[str]:
        """The refusals since the last call: this process's, then its children's."""
        with self._lock:
            found, self._found = self._found, []
        # Moved aside before it is read: a child appending meanwhile starts a new file.
        taken = self.report.with_name(self.report.name + ".taken")
        try:
            os.replace(self.report, taken)
        except FileNotFoundError:
            return found
        found += taken.read_text().splitlines()
        taken.unlink()
        return found

    def loaded(self) -> list[str]:
        """The refused modules that are imported all the same (around the finder)."""
        return sorted(name for name in self.modules if name in sys.modules)

    def new_loaded(self) -> list[str]:
        """:meth:`loaded`, less those the previous calls returned."""
        new = [name for name in self.loaded() if name not in self._seen]
        self._seen.update(new)
        return new


class _RefuseImports(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a refused module as the other finders do (so that probing with
    ``importlib.util.find_spec`` is not an import), then refuses to load it."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] not in self.guard.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return importlib.machinery.ModuleSpec(name, self, origin=spec.origin)
        return None

    def create_module(self, spec):
        message = violation(f"imports {spec.name} in the pytest process (from {_importer()})")
        raise RefusedImport(self.guard.record(message), name=spec.name)

    def exec_module(self, module) -> None:  # never reached: create_module raises
        raise RefusedImport(module.__name__)


def _importer() -> str:
    """The file and line that asked for the import: the first frame outside importlib."""
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith("<frozen") and "importlib" not in file and file != __file__:
            try:
                shown = os.path.relpath(file)
            except ValueError:
                shown = file
            return f"{shown}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"
