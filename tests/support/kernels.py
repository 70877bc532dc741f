"""What the kernel tests share: waiting for processes to end, and running cells in a
pooled kernel as a notebook execution does (nbclient with the pool's ``km``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import nbformat
import psutil
from nbclient import NotebookClient


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether ``condition()`` turns true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def gone(pids: Iterable[int | None], timeout: float = 30.0) -> bool:
    """Whether every process of ``pids`` has ended (a zombie has), within ``timeout`` s."""
    pids = [p for p in pids if p is not None]

    def ended(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return wait_until(lambda: all(ended(p) for p in pids), timeout)


def run_cells(km, *sources: str) -> nbformat.NotebookNode:
    """Execute a notebook of ``sources`` in the kernel of ``km``; the executed notebook
    (raises nbclient's CellExecutionError if a cell fails)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, km=km, timeout=120).execute()
    return nb


def output_text(nb: nbformat.NotebookNode) -> str:
    """What the cells of an executed notebook printed, and their results' text."""
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return "".join(texts)
