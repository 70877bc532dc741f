"""TensorFlow's start: its C++ start-up chatter kept out of notebooks, its real problems
kept in, and one readable line that says whether a GPU is used.

TensorFlow's C++ core logs through absl straight to file descriptor 2, which Jupyter shows
as red stderr blocks. What it prints as it starts, and why:

- ``oneDNN custom operations are on`` (INFO) and, later, ``oneDNN supports DT_INT64 only on
  platforms with AVX-512`` (ERROR, printed even on AVX-512 machines when an int64 op meets
  oneDNN's graph rewrite): oneDNN's custom ops, on by default. The sparse linear models
  here gain nothing from them (measured), so ``TF_ENABLE_ONEDNN_OPTS=0`` is the default
  (:data:`ENV_DEFAULTS`; a value the user set is kept), which removes both lines.
- ``Could not find cuda drivers on your machine`` and ``This TensorFlow binary is
  optimized to use available CPU instructions`` (INFO): printed while the shared libraries
  load, before ``TF_CPP_MIN_LOG_LEVEL`` is read, so no setting removes them. They are
  captured while TensorFlow is imported and logged at DEBUG.
- ``failed call to cuInit`` (ERROR): the CUDA probe of a machine without an NVIDIA driver.
  The probe runs inside the capture; with no NVIDIA device on the machine the failure is
  the expected answer and is logged at DEBUG, while on a machine that has one (the GPU
  image on a GPU node) it stays an ERROR, since then the GPU is lost.

Every other captured line keeps its level (warnings and errors are logged as such, in
words a person reads) and ``TF_CPP_MIN_LOG_LEVEL`` is left alone, so a real failure later
still shows. What is logged at DEBUG shows with ``--log-level DEBUG`` (the runner) or
``IMDB_LOG_LEVEL=DEBUG`` (plain papermill, JupyterLab: ``lib.core.logs``). While the capture
runs, the project's log handlers that write to descriptor 2 write to the real stderr
instead, so that a record logged meanwhile (many, at DEBUG) is not taken for TensorFlow's.
Call :func:`start` before the first import of TensorFlow (directly or
through ``lib.model.training``, ``lib.model.models``, ``lib.model.features``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lib.core import speedups

log = logging.getLogger(__name__)

# Set before TensorFlow is imported, unless the environment already sets them.
ENV_DEFAULTS: dict[str, str] = {"TF_ENABLE_ONEDNN_OPTS": "0"}

# absl's prefix: severity, MMDD, time, thread id, file:line] message
_ABSL = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.\-]+):(\d+)\] ?(.*)$")
_ABSL_HEADER = "WARNING: All log messages before absl::InitializeLog() is called"
_LEVELS = {"I": logging.DEBUG, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_CUINIT = "failed call to cuInit"
_CPU_FEATURES_TAIL = "To enable the following instructions:"
# Lines at absl's ERROR level that report nothing wrong: logged at DEBUG. A graph made by a
# newer TensorFlow than the runtime (tf.data's rewrites) names an attribute the op lacks;
# TensorFlow's own words: "This may be expected ... Unknown attributes will be ignored."
NOTICES: tuple[str, ...] = ("NodeDef mentions attribute",)

_reported: list[str] | None = None  # the GPUs found, once start() has run in this process


def nvidia_device_present(dev: Path = Path("/dev"), proc: Path = Path("/proc")) -> bool:
    """Whether this machine (or container) has an NVIDIA device: a loaded driver or a
    device node (what a GPU node's device plugin mounts into a container)."""
    return (proc / "driver" / "nvidia" / "version").exists() or any(dev.glob("nvidia[0-9]*"))


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Capture what is written to file descriptor 2 in the block (C++ code writes there,
    past ``sys.stderr``); the list holds its lines once the block ends."""
    lines: list[str] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(saved, "w", buffering=1, closefd=False)
    handlers = [h for h in logging.getLogger().handlers if _on_fd2(h)]
    # A file, not a pipe: nothing blocks however much is written.
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        previous = [h.setStream(real) for h in handlers]
        try:
            yield lines
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                handler.setStream(stream)
            real.close()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def _on_fd2(handler: logging.Handler) -> bool:
    """Whether ``handler`` writes to file descriptor 2 (a console handler outside a kernel)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    try:
        return handler.stream.fileno() == 2
    except (AttributeError, ValueError, OSError):  # a kernel's OutStream, a StringIO
        return False


def records(lines: list[str], gpu_expected: bool) -> list[tuple[int, str]]:
    """``(level, message)`` for each record in ``lines``: absl's INFO lines at DEBUG, the
    cuInit failure at DEBUG unless ``gpu_expected``, :data:`NOTICES` at DEBUG, every other
    level kept. A line without
    absl's prefix (Python's own output in a process whose ``sys.stderr`` is descriptor 2)
    stands alone as a WARNING, so nothing unexpected is lost; only the known second line
    of the CPU-instructions record is joined to it."""
    out: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip() or line.startswith(_ABSL_HEADER):
            continue
        match = _ABSL.match(line)
        if match is None:
            if out and line.startswith(_CPU_FEATURES_TAIL):
                out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")
            else:
                out.append((logging.WARNING, line.rstrip()))
            continue
        severity, source, number, message = match.groups()
        level = _LEVELS[severity]
        if (_CUINIT in message and not gpu_expected) or any(n in message for n in NOTICES):
            level = logging.DEBUG
        out.append((level, f"{message} ({source}:{number})"))
    return out


def gpu_line(gpus: list[str], gpu_expected: bool, version: str) -> tuple[int, str]:
    """The one line that says whether TensorFlow uses a GPU."""
    if gpus:
        return logging.INFO, f"TensorFlow {version} uses {len(gpus)} GPU(s): {', '.join(gpus)}"
    if gpu_expected:
        return logging.WARNING, (
            f"TensorFlow {version} runs on the CPU although this machine has an NVIDIA device: "
            "check the driver and the CUDA libraries (the errors above say what failed)"
        )
    return logging.INFO, f"TensorFlow {version} runs on the CPU (no NVIDIA GPU on this machine)"


def set_environment() -> None:
    """Put :data:`ENV_DEFAULTS` into the environment (a value already set is kept), for
    TensorFlow in this process (if not yet imported) and in the processes it starts: the
    tune notebook calls it before its trial kernels start, so that trials run as a train
    run does."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def start() -> list[str]:
    """Import TensorFlow (if not yet imported) and find its GPUs with their C++ start-up
    lines captured and logged as the module's docstring says; log once per process whether
    a GPU is used. Returns the GPUs' names (empty on the CPU)."""
    global _reported
    if _reported is not None:
        return list(_reported)
    set_environment()
    speedups.keep_sklearn_from_keras()
    gpu_expected = nvidia_device_present()
    with captured_fd2() as lines:
        import tensorflow as tf  # here, inside the capture: its libraries log as they load

        gpus = [
            d.name.removeprefix("/physical_device:") for d in tf.config.list_physical_devices("GPU")
        ]
        # The first op starts the runtime, which prints its CPU-instructions notice then.
        tf.constant(1.0) + 1.0
    for level, message in records(lines, gpu_expected):
        log.log(level, "TensorFlow: %s", message)
    log.log(*gpu_line(gpus, gpu_expected, tf.__version__))
    _reported = gpus
    return list(gpus)
