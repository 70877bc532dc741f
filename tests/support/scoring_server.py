"""MLflow's scoring server (``mlflow models serve``) started on 127.0.0.1 for a test or a
bench, and requests to it.

::

    with ScoringServer("models:/imdb-sentiment@champion", env={"MLFLOW_TRACKING_URI": store},
                       log=tmp_path / "server.log") as server:
        status, body = post_json(server.url + "/invocations", {"inputs": ["A wonderful film."]})

The server runs as a user runs it: this environment's ``mlflow`` CLI (the venv's ``bin`` put
first on PATH, where MLflow finds ``uvicorn``), ``--env-manager local``, in its own process
group, which :meth:`ScoringServer.stop` ends whole (MLflow's CLI execs uvicorn in a child).
It is ready once ``GET /ping`` answers 200 (the model is loaded by then).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0


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
    """``mlflow models serve -m MODEL_URI`` on a free port of 127.0.0.1 (``.url``)."""

    def __init__(
        self,
        model_uri: str,
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        cwd: Path | None = None,
    ) -> None:
        self.model_uri = model_uri
        self.log = Path(log)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.startup_s = float("nan")
        bin_dir = str(Path(sys.executable).parent)
        self._env = {**os.environ, **(env or {})}
        self._env["PATH"] = f"{bin_dir}{os.pathsep}{self._env.get('PATH', '')}"
        self._argv = [
            os.path.join(bin_dir, "mlflow"),
            *("models", "serve", "-m", model_uri, "--env-manager", "local"),
            *("-h", HOST, "-p", str(self.port), "-w", str(workers)),
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
