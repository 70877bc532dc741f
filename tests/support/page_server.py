"""The review page (``python -m runner app``) started on 127.0.0.1 for a test or a bench.

::

    with PageServer("models:/imdb-sentiment@champion", env={"MLFLOW_TRACKING_URI": store},
                    log=tmp_path / "page.log") as page:
        browser_page.goto(page.url)

The command runs as a user runs it, in its own process group (ended whole on exit). It is
ready once Streamlit's ``/_stcore/health`` answers 200 (the model is loaded by then: the
command loads it before the server starts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.scoring_server import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0
HEALTH = "_stcore/health"


class PageServer:
    """``python -m runner app --model URI`` on a free port of 127.0.0.1, under
    ``base_url_path`` when given; ``env`` added to this environment (MLFLOW_* of the
    environment left out unless given); its output to ``log``."""

    def __init__(
        self,
        model_uri: str | None,
        *,
        env: Mapping[str, str] | None = None,
        log: Path,
        base_url_path: str = "",
    ) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}" + (
            f"/{base_url_path.strip('/')}" * bool(base_url_path)
        )
        self.url = self.base + "/"
        self.log = log
        command = [sys.executable, "-m", "runner", "app", "--port", str(self.port)]
        command += ["--address", HOST]
        if model_uri:
            command += ["--model", model_uri]
        if base_url_path:
            command += ["--base-url-path", base_url_path]
        self.command = command
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env.update(env or {})
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PageServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/{HEALTH}", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"the page exited with {self.process.returncode}:\n{tail}")
            time.sleep(0.25)
        raise AssertionError(f"the page at {self.url} did not answer in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after 20 s; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()
