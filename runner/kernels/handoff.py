"""Kernels started by one process and used by another (the ``handoff`` trick).

The runner starts the tune notebook's trial kernels (a ``handoff_only`` pool) before it
even starts the tune notebook's own kernel, and passes their connection files and pids in
``$RUNNER_KERNEL_HANDOFF``; the tune notebook's pool adopts them instead of starting its
own, so TensorFlow is being imported while papermill and the tune kernel start. An adopted
kernel stays a child of the process that started it, which ends whatever is left of it
when it is done.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass

from jupyter_client.provisioning import LocalProvisioner

from runner.kernels.calls import KernelPoolError
from runner.kernels.clients import PooledKernelManager

log = logging.getLogger(__name__)

HANDOFF_ENV = "RUNNER_KERNEL_HANDOFF"


@dataclass(frozen=True)
class KernelHandoff:
    """A running kernel that another process may adopt: its connection file and pid."""

    connection_file: str
    pid: int


def handoff_env_value(handoffs: list[KernelHandoff]) -> str:
    """``handoffs`` as the value of ``$RUNNER_KERNEL_HANDOFF``."""
    return json.dumps([{"connection_file": h.connection_file, "pid": h.pid} for h in handoffs])


def take_handoffs(environ: dict[str, str] | None = None) -> list[KernelHandoff]:
    """The kernels handed to this process in ``$RUNNER_KERNEL_HANDOFF``, removed from the
    environment (they are adopted once, and the kernels this process starts must not see
    them). Malformed values are ignored with a warning: the pool then starts its own."""
    environ = os.environ if environ is None else environ
    value = environ.pop(HANDOFF_ENV, None)
    if not value:
        return []
    try:
        return [KernelHandoff(str(h["connection_file"]), int(h["pid"])) for h in json.loads(value)]
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring $%s (%s); the pool starts its own kernels", HANDOFF_ENV, exc)
        return []


class _ProcessHandle:
    """A ``Popen``-like handle on a kernel process that another process started (and will
    reap): a process that has exited, or is a zombie waiting for its parent, has ended."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        import psutil

        self.pid = pid
        self.returncode: int | None = None
        self._process = psutil.Process(pid)  # NoSuchProcess if it is gone already

    def poll(self) -> int | None:
        import psutil

        if self.returncode is None:
            try:
                # is_running() also tells a reused pid from the kernel's.
                ended = (
                    not self._process.is_running() or self._process.status() == psutil.STATUS_ZOMBIE
                )
            except psutil.Error:
                ended = True
            if ended:
                self.returncode = -1  # the exit status belongs to the parent
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel process {self.pid} still running")
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class AdoptedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner for a kernel that is already running: signals,
    polling and waiting go to its pid; nothing is launched."""

    def adopt(self, pid: int) -> None:
        self.process = _ProcessHandle(pid)
        self.pid = pid
        try:
            pgid = os.getpgid(pid)
        except OSError:
            pgid = None
        # Its own process group (jupyter_client starts kernels in a new session), or only
        # the process is signalled: never a group it shares with others.
        self.pgid = pgid if pgid == pid else None


def adopt(handoff: KernelHandoff, kernel_name: str) -> PooledKernelManager:
    """A manager for the kernel of ``handoff``; KernelPoolError if it has exited, OSError
    or ValueError if its connection file cannot be read."""
    km = PooledKernelManager(kernel_name=kernel_name)
    km.load_connection_file(handoff.connection_file)
    provisioner = AdoptedProvisioner(
        kernel_id=km.kernel_id or "",
        kernel_spec=km.kernel_spec,
        connection_info=km.get_connection_info(),
        parent=km,
    )
    provisioner.adopt(handoff.pid)
    km.provisioner = provisioner
    if provisioner.process.poll() is not None:
        raise KernelPoolError(f"handed-off kernel (pid {handoff.pid}) has exited")
    return km


def kill_handoff(handoff: KernelHandoff) -> None:
    """End a handed-off kernel this process will not use (its parent reaps it)."""
    try:
        _ProcessHandle(handoff.pid).kill()
    except Exception as exc:  # already gone
        log.debug("handed-off kernel pid %d not killed: %s", handoff.pid, exc)
