"""The runner's papermill engine: nbclient's, with its kernels on IPC transport and a
progress display fed from the execution.

- :class:`IpcKernelManager`: the kernel a stage's execution starts talks over Unix sockets
  in a private runtime folder (mode 0700, one per runner process, removed at exit), where
  its connection file lies too. No TCP port to race for, nothing any other user of the
  machine can connect to, and ipykernel has no reason for its "Kernel is running over TCP
  without encryption" warning, which it prints to the terminal the runner writes to. The
  kernel's stderr (its descriptor 2, where C++ code writes) is read and logged line by
  line (:func:`relay_stderr`), at the level each line deserves.
- :class:`ProgressClient`: papermill's notebook client that tells a
  :class:`runner.execution.console.StageProgress` when each code cell starts (nbclient's
  ``on_cell_execute`` hook) and hands it the progress events that ``lib.core.progress`` sends
  from inside the kernel (display messages of its MIME type, seen on IOPub as they come);
  at DEBUG it also logs the kernel's output, line by line (logger ``runner.kernel``).
  A :class:`runner.execution.watch.KernelWatch` watches its kernel (memory, time limit, stop
  requests); a stopped execution starts no further cell.

Registered with papermill as :data:`ENGINE`; ``runner.execution.execute`` uses it for every stage.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import IO, Any

from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

from lib.core.progress import MIME
from lib.core.tf_runtime import nvidia_device_present, records
from runner.execution.watch import KernelWatch
from runner.kernels.clients import QuietShutdownKernelManager

ENGINE = "runner"
kernel_log = logging.getLogger("runner.kernel")

_runtime: Path | None = None


def runtime_dir() -> Path:
    """This process's private folder for its kernels' sockets and connection files."""
    global _runtime
    if _runtime is None or not _runtime.is_dir():
        _runtime = Path(tempfile.mkdtemp(prefix="runner-kernels-"))  # mode 0700
        atexit.register(shutil.rmtree, _runtime, ignore_errors=True)
    return _runtime


class IpcKernelManager(QuietShutdownKernelManager):
    """nbclient's kernel manager on IPC transport, its files in :func:`runtime_dir`, and
    the kernel's stderr read by :func:`relay_stderr`."""

    def _transport_default(self) -> str:
        return "ipc"

    def _connection_file_default(self) -> str:
        # The sockets are named after it: "<file stem>-ipc-<n>" (jupyter_client's default).
        return str(runtime_dir() / f"kernel-{uuid.uuid4().hex[:12]}.json")

    relay: threading.Thread | None = None
    relay_stop: threading.Event | None = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        # A pipe of our own, not subprocess.PIPE: jupyter_client closes the process's pipes
        # as it cleans up, under a reader that may still be busy.
        read_end, write_end = os.pipe()
        kw["stderr"] = write_end
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the kernel holds its copy
        self.relay_stop = threading.Event()
        self.relay = threading.Thread(
            target=relay_stderr,
            args=(os.fdopen(read_end, "rb"), self.relay_stop),
            name="kernel-stderr",
            daemon=True,
        )
        self.relay.start()

    def end_relay(self, timeout: float = 2.0) -> None:
        """Wait (``timeout`` at most) for the kernel's last lines, then relay no more: what
        the kernel's own children (a tune kernel's trial kernels, which share its stderr)
        print as they are ended must not follow the runner's last line."""
        if self.relay is not None and self.relay_stop is not None:
            self.relay.join(timeout)
            self.relay_stop.set()


def relay_stderr(stream: IO[bytes], stop: threading.Event | None = None) -> None:
    """Log what a kernel writes to its file descriptor 2 (not its ``sys.stderr``, which
    goes to the notebook): TensorFlow's C++ lines once the kernel has started (absl's, past
    ``lib.core.tf_runtime.start``'s capture), its trial kernels' lines, a dying kernel's last
    words. ``lib.core.tf_runtime.records`` decides each line's level: C++ INFO lines and known
    notices at DEBUG (shown with ``--log-level DEBUG``), warnings and errors as such, any
    other line a WARNING, so that nothing real is hidden and the console keeps one format."""
    gpu_expected = nvidia_device_present()
    with stream:
        for raw in stream:
            if stop is not None and stop.is_set():
                continue  # read on: a writer must not block on a full pipe
            line = raw.decode("utf-8", "replace").rstrip()
            for level, message in records([line], gpu_expected):
                kernel_log.log(level, "kernel: %s", message)


class ProgressClient(PapermillNotebookClient):
    """Papermill's client, reporting cells and in-kernel events to ``stage_progress``."""

    def __init__(
        self, nb_man: Any, stage_progress: Any = None, watch: KernelWatch | None = None, **kw: Any
    ) -> None:
        if stage_progress is not None:
            kw.setdefault("on_cell_execute", stage_progress.cell_started)
        super().__init__(nb_man, **kw)
        self.stage_progress = stage_progress
        self.watch = watch
        self.started_km: Any = None  # nbclient forgets it once it has shut the kernel down
        if stage_progress is not None:
            stage_progress.begin(list(nb_man.nb.cells))

    def execute_cell(self, cell: Any, cell_index: int, *args: Any, **kw: Any) -> Any:
        # A stopped execution starts no further cell: an interrupt that reached the kernel
        # between two cells was ignored there (ipykernel only interrupts a running cell).
        reason = self.watch.stop_reason if self.watch is not None else None
        if reason and cell.cell_type == "code":
            raise CellExecutionError("", "KeyboardInterrupt", f"{reason}: cell not run")
        if self.watch is not None:
            self.watch.cell_index = cell_index
        return super().execute_cell(cell, cell_index, *args, **kw)

    def create_kernel_manager(self) -> Any:
        self.started_km = super().create_kernel_manager()
        return self.started_km

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        output = super().process_message(msg, cell, cell_index)
        if self.stage_progress is None:
            return output
        kind, content = msg.get("msg_type"), msg.get("content") or {}
        if kind == "display_data":
            event = (content.get("data") or {}).get(MIME)
            if isinstance(event, dict):
                self.stage_progress.event(event)
        elif kind == "stream" and kernel_log.isEnabledFor(logging.DEBUG):
            # --log-level DEBUG: the kernel's output too (its DEBUG records, TensorFlow's
            # C++ start-up lines among them, since the kernel logs at DEBUG then as well).
            for line in str(content.get("text", "")).splitlines():
                if line.strip():
                    kernel_log.debug("%s: %s", self.stage_progress.stage, line)
        return output


class RunnerEngine(NBClientEngine):
    """NBClientEngine with :class:`ProgressClient` and :class:`IpcKernelManager`."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: int | None = None,
        stage_progress: Any = None,
        watch: KernelWatch | None = None,
        **kwargs: Any,
    ) -> Any:
        # As NBClientEngine.execute_managed_notebook does, with this module's parts.
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        safe_kwargs.setdefault("kernel_manager_class", IpcKernelManager)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        watch = watch or KernelWatch()
        client = ProgressClient(nb_man, stage_progress=stage_progress, watch=watch, **final_kwargs)
        watch.bind(client)
        try:
            with watch:
                return client.execute()
        finally:
            if isinstance(client.started_km, IpcKernelManager):  # started, now shut down
                client.started_km.end_relay()


papermill_engines.register(ENGINE, RunnerEngine)
