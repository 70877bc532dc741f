"""``python -m runner app [--model URI] [--port N]``: the review page (``app/page.py``),
served by Streamlit in this process.

The model is loaded first: one that cannot be loaded is one line and exit 2, before the
server starts. Streamlit runs headless, without usage statistics or a file watcher; with
``--base-url-path`` it serves under that path (a Polyaxon service's), its assets and
WebSocket included. The tracking credentials come from the environment, as for every command.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from lib.core import tf_runtime
from lib.core.errors import ParameterError
from lib.inference import model_source
from lib.tracking.registry import CHAMPION_URI

DEFAULT_PORT = 8501  # Streamlit's


def add_command(sub: argparse._SubParsersAction) -> None:
    """The ``app`` command's options."""
    page = sub.add_parser("app", help="serve the review page (Streamlit) for a model")
    page.add_argument(
        "--model",
        default=CHAMPION_URI,
        help="any model URI the other commands take: models:/NAME@ALIAS, models:/NAME/VERSION, "
        f"runs:/, a .keras file or folder, gs:// (default {CHAMPION_URI})",
    )
    page.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    page.add_argument("--address", default=None, help="address to listen on (default: all)")
    page.add_argument(
        "--base-url-path",
        default="",
        help="serve under this path (Streamlit's server.baseUrlPath), e.g. a Polyaxon "
        "service's {{ globals.base_url }}",
    )


def streamlit_options(
    port: int, address: str | None = None, base_url_path: str = ""
) -> dict[str, Any]:
    """Streamlit's configuration options for the page (names as in its config.toml)."""
    # Here: the upload limit is the page's, which loads lib's batch code (pyarrow).
    from app.uploads import MAX_UPLOAD_MB

    chosen: dict[str, Any] = {
        "server.headless": True,
        "browser.gatherUsageStats": False,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "server.port": int(port),
        "server.baseUrlPath": base_url_path.strip("/"),
        # Streamlit refuses a larger file itself; the page says its own, smaller limit.
        "server.maxUploadSize": MAX_UPLOAD_MB + 1,
        "global.developmentMode": False,
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "none",
    }
    if address:
        chosen["server.address"] = address
    return chosen


def page_script() -> Path:
    """The page's file, which Streamlit runs (the ``app`` package is in the training images
    only: imported here, not when the runner starts)."""
    import app  # the training images' only, not the prep image's

    return Path(app.__file__).with_name("page.py")


def serve(options: dict[str, Any]) -> None:
    """Serve the page with Streamlit's ``options`` until the process is stopped."""
    from streamlit.web import bootstrap

    # Streamlit's flag names: its command line's, with "_" for ".".
    flags = {name.replace(".", "_"): value for name, value in options.items()}
    bootstrap.load_config_options(flag_options=flags)
    bootstrap.run(str(page_script()), False, [], flags)


def _look_up(model_uri: str) -> None:
    """A registered model, version or alias, or a local file, that is not there: said
    before TensorFlow's import (seconds). A gs:// or runs:/ model is fetched once, by the
    load that follows."""
    if model_uri.startswith(("gs://", "runs:/")):
        return
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        model_source.resolve(model_uri, Path(tmp))


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve the page until stopped; 0 once the server stops."""
    if not 0 < args.port < 65536:
        raise ParameterError("--port", f"{args.port} is not a port: pass 1 to 65535")
    _look_up(args.model)
    # TensorFlow's C++ start-up lines to the log, not the terminal (the page imports it).
    tf_runtime.start()
    # Here: TensorFlow, MLflow and Streamlit load for this command only (seconds).
    from app import state

    options = streamlit_options(args.port, args.address, args.base_url_path)
    model = state.start(args.model)
    print(f"model {model.info.name} version {model.info.version} loaded from {args.model}")
    serve(options)
    return 0
