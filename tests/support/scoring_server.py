"""The project's scoring server (``python -m runner serve``: MLflow's scoring app behind the
limits of lib.inference) started on 127.0.0.1 for a test or a bench, and requests to it.

::

    with ScoringServer("models:/imdb-sentiment@champion", env={"MLFLOW_TRACKING_URI": store},
                       log=tmp_path / "server.log") as server:
        status, body = post_json(server.url + "/invocations", {"inputs": ["A wonderful film."]})

The server runs as a user runs it: this environment's ``python -m runner serve``, with the
virtual environment not activated (its ``bin`` is not on PATH: nothing may need to be found
there), in its own process group, which :meth:`ScoringServer.stop` ends whole (its workers
too). It is ready once ``GET /ping`` answers 200 (the model is loaded by then).
:meth:`ScoringServer.rss_bytes` is the memory of its processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0
# What the training images hold and the serving image must not (requirements-serve.txt):
# `python -m runner serve` imports none of them.
TRAINING_TOOLS = frozenset(
    {"papermill", "nbclient", "nbformat", "jupyter_client", "optuna", "sklearn", "scrapbook"}
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout_s: float = START_TIMEOUT_S, alive=lambda: True) -> float:
    """Seconds until ``GET url/ping`` answers 200; AssertionError when ``alive()`` turns
    False or the time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if not alive():
            raise AssertionError(f"the scoring server at {url} exited before it answered")
        time.sleep(0.25)
    raise AssertionError(f"the scoring server at {url} did not answer in {timeout_s:.0f} s")


def post_json(url: str, body: Any, timeout_s: float = 60.0) -> tuple[int, Any]:
    """POST ``body`` (JSON-encoded unless it is bytes) to ``url``: (status, decoded answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


class ScoringServer:
    """``python -m runner serve --model MODEL_URI`` on a free port of 127.0.0.1 (``.url``);
    ``options``: more of the command's options (``["--stall-timeout", "2"]``)."""

    def __init__(
        self,
        model_uri: str,
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        options: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> None:
        self.model_uri = model_uri
        self.log = Path(log)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.startup_s = float("nan")
        self._env = {**os.environ, **(env or {})}
        # Not activated: the venv's bin off PATH, as for a cron job or a service unit.
        bin_dir = str(Path(sys.executable).parent)
        path = self._env.get("PATH", "").split(os.pathsep)
        self._env["PATH"] = os.pathsep.join(p for p in path if p and p != bin_dir)
        self._env.pop("VIRTUAL_ENV", None)
        self._argv = [
            sys.executable,
            *("-m", "runner", "serve", "--model", model_uri),
            *("--host", HOST, "--port", str(self.port), "--workers", str(workers)),
            *options,
        ]
        self._cwd = cwd or self.log.parent
        self._process: subprocess.Popen | None = None

    def start(self) -> ScoringServer:
        """Start the server and wait until it answers (``startup_s``: how long that took)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w", encoding="utf-8") as out:
            self._process = subprocess.Popen(
                self._argv,
                cwd=self._cwd,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self.startup_s = wait_ready(self.url, alive=lambda: self._process.poll() is None)
        except AssertionError as error:
            self.stop()
            raise AssertionError(f"{error}; its log ({self.log}):\n{self.log_tail()}") from None
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def rss_bytes(self) -> int:
        """The resident memory of the server's processes (its workers too), in bytes."""
        return sum(rss for _, rss in group_processes(self.pid))

    def cpu_seconds(self) -> float:
        """The CPU time the server's processes have used so far (user and system)."""
        return sum(cpu_seconds(pid) for pid, _ in group_processes(self.pid))

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 20.0) -> None:
        """End the server's process group: SIGTERM, then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_processes(pgid: int) -> list[tuple[int, int]]:
    """``(pid, resident bytes)`` of each live process of process group ``pgid``."""
    page = os.sysconf("SC_PAGE_SIZE")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # after ")": state, ppid, pgrp, ...
                resident = int((entry / "statm").read_text().split()[1]) * page
                found.append((int(entry.name), resident))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # ended meanwhile
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
