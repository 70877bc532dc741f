"""``python -m runner serve --model URI [--port N]``: MLflow's scoring server for a logged or
registered model, with limits on what one client can take (:mod:`lib.inference.server`).

It imports nothing of papermill or Jupyter: ``runner/__main__.py`` runs :func:`main` without
``runner.cli.main`` for this command, so the serving image, which has neither, runs it.
Bad input (a port out of range, a model that is not there) is one line, exit status 2,
before anything starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

from lib.core.errors import UserError
from lib.core.secrets import mask_text, secret_values
from lib.inference import settings
from lib.tracking.store_check import move_uri_credentials

COMMAND = "serve"
DESCRIPTION = (
    "Serve a model over HTTP with MLflow's scoring server (POST /invocations, GET /ping), "
    "limited: a request body over --max-body-mb gets 413 before it is read whole, a client "
    "that sends nothing for --stall-timeout seconds mid-request is cut (408), a prediction "
    "that takes longer than --predict-timeout seconds is answered 504 and stopped."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument(
        "--model",
        required=True,
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, a gs:// path or "
        "a local folder of a logged model (resolved once, when the server starts)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.WORKERS,
        help=f"worker processes, each with its own model (default {settings.WORKERS})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=settings.THREADS,
        help=f"predictions a worker runs at once (default {settings.THREADS})",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=settings.MAX_BODY_BYTES / 2**20,
        help=f"largest request body in MiB (default {settings.MAX_BODY_BYTES / 2**20:g})",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=settings.STALL_S,
        help=f"seconds a client may send nothing mid-request (default {settings.STALL_S:g})",
    )
    parser.add_argument(
        "--predict-timeout",
        type=float,
        default=settings.PREDICT_TIMEOUT_S,
        help=f"seconds one prediction may take (default {settings.PREDICT_TIMEOUT_S:g})",
    )


def add_command(sub) -> None:
    """``serve`` among the runner's subcommands (``python -m runner --help`` lists it)."""
    add_arguments(sub.add_parser(COMMAND, help=DESCRIPTION, description=DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    """Check the options, fetch the model, serve it until stopped; the exit status."""
    config = settings.Settings(
        model_dir="",
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        max_body_bytes=int(args.max_body_mb * 2**20),
        stall_s=args.stall_timeout,
        predict_timeout_s=args.predict_timeout,
    )
    # Here: MLflow's import (seconds) is for this command only, not for every runner command.
    from lib.inference import server

    with tempfile.TemporaryDirectory(prefix="serve-model-") as tmp:
        model_dir = server.fetch_model(args.model, Path(tmp))
        print(f"serving {args.model} at http://{args.host}:{args.port}", flush=True)
        server.serve(dataclasses.replace(config, model_dir=str(model_dir)))
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m runner serve ...`` (``argv``: what follows ``serve``); the exit status."""
    parser = _Parser(prog="python -m runner serve", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    move_uri_credentials()  # a user:password@ in $MLFLOW_TRACKING_URI out of every URI shown
    try:
        return run(args)
    except UserError as exc:
        print(mask_text(f"error: {exc}", secret_values()), file=sys.stderr)
        return 2
