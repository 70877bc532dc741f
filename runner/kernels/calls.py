"""Calling a function in a pooled kernel: data in, data back, no code in strings.

What is sent is a single expression, evaluated through the execute request's
``user_expressions`` (``silent``, not stored in the history): it imports the function's
module and calls the function with the JSON data, and encodes its return value as JSON.
The reply carries that value back, so nothing is read from printed output and nothing is
left in the kernel's namespace. For the functions that a pooled kernel runs, see
:mod:`runner.kernels.inside`.
"""

from __future__ import annotations

import ast
import json
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.blocking import BlockingKernelClient

from runner.kernels.clients import PooledKernel, open_client

log = logging.getLogger(__name__)

_RESULT = "result"  # the one user_expressions key


class KernelPoolError(RuntimeError):
    """The pool could not provide a kernel (it failed to start, died, or the pool is shut
    down)."""


class KernelCodeError(RuntimeError):
    """A function called in a kernel raised; ``ename``/``evalue``/``traceback`` say what
    (the traceback is IPython's exception lines: a user expression's error has no frames)."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self.ename, self.evalue, self.traceback = ename, evalue, traceback
        super().__init__(f"{ename}: {evalue}")


def expression(function: str, data: Any = None) -> str:
    """The one-line expression that calls ``function`` (``"pkg.module:name"``) with
    ``data`` (None: no argument) and gives its return value as a JSON string.

    ``data`` goes as a JSON string literal (values JSON lacks, such as paths, as their
    ``str``), so any text is safe in it.
    """
    module, sep, name = function.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"function: {function!r} is not 'package.module:function'")
    target = f'getattr(__import__("importlib").import_module({module!r}), {name!r})'
    args = "" if data is None else f'__import__("json").loads({json.dumps(data, default=str)!r})'
    return f'__import__("json").dumps({target}({args}))'


def call(
    kernel: PooledKernel,
    function: str,
    data: Any = None,
    timeout: float = 600.0,
    cancelled: Callable[[], bool] | None = None,
) -> Any:
    """Call ``function`` (``"pkg.module:name"``) with ``data`` in ``kernel``; its return
    value (JSON-able) decoded.

    Uses the kernel's own client, opened once (a new client costs 0.2 s to get ready).
    Raises KernelCodeError if the function raises; KernelPoolError if the kernel dies or
    ``cancelled()`` turns true; TimeoutError after ``timeout`` seconds.
    """
    line = expression(function, data)
    if kernel.kc is None:
        kernel.kc = open_client(kernel.km, kernel.process_alive, timeout)
    kc = kernel.kc
    try:
        msg_id = kc.execute(
            "",
            silent=True,
            store_history=False,
            user_expressions={_RESULT: line},
            allow_stdin=False,
        )
        _wait_until_idle(kernel, kc, msg_id, function, timeout, cancelled)
        while True:  # the reply follows the idle status
            reply = kc.get_shell_msg(timeout=5.0)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
    except (KernelPoolError, TimeoutError):
        raise
    except queue.Empty:
        raise TimeoutError(f"kernel {kernel.number}: no reply from {function}") from None
    except Exception as exc:
        if not kernel.stopping:
            raise
        # Its client was closed under this call (zmq or jupyter_client errors then).
        raise KernelPoolError(f"kernel {kernel.number} was shut down during {function}") from exc
    return _result(reply["content"])


def _wait_until_idle(
    kernel: PooledKernel,
    kc: BlockingKernelClient,
    msg_id: str,
    function: str,
    timeout: float,
    cancelled: Callable[[], bool] | None,
) -> None:
    """Wait for the idle status of request ``msg_id``: the kernel has finished (what the
    function printed is only logged)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            if not kernel.process_alive():
                raise KernelPoolError(f"kernel {kernel.number} died") from None
            if cancelled is not None and cancelled():
                raise KernelPoolError("cancelled: the pool is shutting down") from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kernel {kernel.number}: no result from {function} in {timeout:.0f} s"
                ) from None
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            log.debug("kernel %d, %s: %s", kernel.number, function, content["text"].rstrip())
        elif kind == "status" and content["execution_state"] == "idle":
            return


def _result(content: dict[str, Any]) -> Any:
    """The decoded return value in an execute reply's content, or KernelCodeError."""
    if content["status"] != "ok":  # the (empty) code itself failed
        raise _error(content)
    value = content["user_expressions"][_RESULT]
    if value["status"] != "ok":
        raise _error(value)
    # text/plain is the repr of the JSON string that the expression returned.
    return json.loads(ast.literal_eval(value["data"]["text/plain"]))


def _error(content: dict[str, Any]) -> KernelCodeError:
    return KernelCodeError(
        content.get("ename", "Error"), content.get("evalue", ""), content.get("traceback", [])
    )
