"""The scoring server's settings: its limits, with their defaults, and how a worker process
gets them (uvicorn starts each worker by importing the app's factory, so they travel in the
environment, as MLflow's own server passes its model's path).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

from lib.core.errors import ParameterError

ENV = "IMDB_SERVING_SETTINGS"

# A 1,000-review request fits with room to spare: the IMDB reviews average about 1,300
# characters and the 1,000 longest about 5,300: 5.3 MB as JSON (docs/serving.md).
MAX_BODY_BYTES = 8 * 2**20
STALL_S = 15.0
PREDICT_TIMEOUT_S = 30.0
# What one worker runs at once, on the pod's 2 CPUs (docs/serving.md: measured).
THREADS = 2
WORKERS = 1


# The command-line option (runner.cli.serve) that sets each setting, named in its errors.
OPTIONS = {
    "port": "--port",
    "workers": "--workers",
    "threads": "--threads",
    "max_body_bytes": "--max-body-mb",
    "stall_s": "--stall-timeout",
    "predict_timeout_s": "--predict-timeout",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the model is and the server's limits."""

    model_dir: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = WORKERS
    threads: int = THREADS
    max_body_bytes: int = MAX_BODY_BYTES
    stall_s: float = STALL_S
    predict_timeout_s: float = PREDICT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ParameterError("--port", f"{self.port} is not a TCP port: give 1 to 65535")
        for name in ("workers", "threads"):
            if getattr(self, name) < 1:
                raise ParameterError(OPTIONS[name], f"{getattr(self, name)}: give 1 or more")
        for name in ("max_body_bytes", "stall_s", "predict_timeout_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(OPTIONS[name], f"{getattr(self, name)}: give more than 0")

    def export(self) -> None:
        """Put these settings where :func:`current` finds them (this process and the
        workers it starts)."""
        os.environ[ENV] = json.dumps(dataclasses.asdict(self))
        current.cache_clear()


@functools.cache
def current() -> Settings:
    """The settings :meth:`Settings.export` put into this process's environment."""
    return Settings(**json.loads(os.environ[ENV]))
