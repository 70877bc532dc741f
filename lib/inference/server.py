"""The scoring server: MLflow's scoring app for one model (its routes ``/invocations``,
``/ping``, ``/health``, ``/version``, its validation and its answers) behind the limits of
:mod:`lib.inference.limits` and :mod:`lib.inference.stall`, run by uvicorn in this process
(nothing is looked up on PATH: ``.venv/bin/python -m runner serve`` works without the
virtual environment activated). ``python -m runner serve`` is its command line.

The model is fetched once, before the server starts (a ``models:/NAME@ALIAS`` is resolved
then: a moved alias takes effect at the next start), into a temporary folder; each worker
process loads it from there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lib.core.errors import ModelError
from lib.inference import settings
from lib.inference.limits import Limits
from lib.inference.stall import StallCutProtocol
from lib.tracking import model_io

log = logging.getLogger(__name__)

# The connections (each may hold a body of up to max_body_bytes) a worker serves at once:
# past them, uvicorn answers 503 at once.
MAX_CONNECTIONS = 64
# uvicorn's default: an idle keep-alive connection closes after this.
KEEP_ALIVE_S = 5


def fetch_model(uri: str, workdir: Path) -> Path:
    """The MLflow model folder that ``uri`` names, on this machine: a local folder as it is,
    anything else downloaded into ``workdir``. ModelError when it is not a model."""
    path = model_io.fetch(uri, workdir)
    if not (path / "MLmodel").is_file():
        where = "" if path.is_relative_to(workdir) or str(path) == uri else f" ({path})"
        state = "does not exist" if not path.exists() else "is not an MLflow model (no MLmodel)"
        raise ModelError(
            f"model {uri}{where} {state}: serve a logged model, models:/NAME@ALIAS, "
            "models:/NAME/VERSION, runs:/RUN_ID/model, or the folder it was downloaded to"
        )
    return path


def create_app() -> Limits:
    """The app one worker serves (uvicorn's factory, called in each worker): the model
    loaded, MLflow's scoring app around it, the limits around that."""
    from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
    from mlflow.pyfunc import scoring_server

    current = settings.current()
    # MLflow's own timeout answers 504 but lets the prediction run on; the limits' timeout
    # stops it, so MLflow's is only a backstop, later.
    backstop = int(current.predict_timeout_s) + 60
    os.environ[MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.name] = str(backstop)
    model = scoring_server.load_model_with_mlflow_config(current.model_dir)
    return Limits(
        scoring_server.init(model),
        max_body_bytes=current.max_body_bytes,
        predict_timeout_s=current.predict_timeout_s,
        threads=current.threads,
    )


def serve(config: settings.Settings) -> None:
    """Serve until stopped: SIGINT or SIGTERM (uvicorn finishes the requests in flight)."""
    import uvicorn

    config.export()
    uvicorn.run(
        f"{__name__}:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        http=StallCutProtocol,
        lifespan="on",
        access_log=False,  # a line a request: at hundreds a second, work of its own
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        log_level="info",
    )
