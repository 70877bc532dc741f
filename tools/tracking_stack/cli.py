"""The command line of the local tracking stack: both servers on 127.0.0.1 until Ctrl-C, and the
``export`` lines a client's shell needs (the password by reference, never by value).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from tools.tracking_stack.mlflow_server import admin_password, start_mlflow_server
from tools.tracking_stack.servers import (
    DEFAULT_BUCKET,
    PASSWORD_FILE,
    GcsEmulator,
    MlflowServer,
    ServerStartError,
    artifact_root,
    start_gcs_emulator,
)


def start_stack(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    gcs_port: int | None = None,
    bucket: str = DEFAULT_BUCKET,
    **mlflow_kwargs: object,
) -> tuple[GcsEmulator, MlflowServer]:
    """The GCS emulator with ``bucket``, then MLflow keeping artifacts in that bucket."""
    gcs = start_gcs_emulator(data_dir, port=gcs_port, bucket=bucket)
    try:
        server = start_mlflow_server(
            data_dir,
            port=port,
            default_artifact_root=artifact_root(bucket),
            storage_emulator_host=gcs.url,
            **mlflow_kwargs,  # type: ignore[arg-type]
        )
    except BaseException:
        gcs.stop()
        raise
    return gcs, server


def export_lines(gcs: GcsEmulator, server: MlflowServer, password_generated: bool) -> list[str]:
    """Shell lines for a client of the stack; the password value itself is never printed."""
    if password_generated:
        password_ref = f'"$(cat {server.data_dir / PASSWORD_FILE})"'
    else:
        password_ref = '"$MLFLOW_AUTH_ADMIN_PASSWORD"'
    return [
        f"export MLFLOW_TRACKING_URI={server.url}",
        f"export MLFLOW_TRACKING_USERNAME={server.username}",
        f"export MLFLOW_TRACKING_PASSWORD={password_ref}",
        f"export STORAGE_EMULATOR_HOST={gcs.url}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Both servers on 127.0.0.1 until Ctrl-C or SIGTERM; 1 when one cannot start."""
    parser = argparse.ArgumentParser(
        description="Run MLflow (basic auth) and a GCS emulator on 127.0.0.1 until Ctrl-C.",
        epilog="The admin password is $MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 characters), "
        "else generated into DATA_DIR/admin_password.",
    )
    parser.add_argument("--port", type=int, default=5000, help="MLflow port (default 5000)")
    parser.add_argument("--gcs-port", type=int, default=9023, help="emulator port (9023)")
    parser.add_argument("--data-dir", type=Path, required=True, help="databases, blobs, logs")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help=f"bucket ({DEFAULT_BUCKET})")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _, generated = admin_password(data_dir)
        print(f"starting the GCS emulator and MLflow (logs in {data_dir}) ...", flush=True)
        gcs, server = start_stack(data_dir, args.port, args.gcs_port, args.bucket)
    except (ServerStartError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MLflow:       {server.url}  (user {server.username})")
    print(f"GCS emulator: {gcs.url}  (bucket gs://{args.bucket})")
    print(f"artifacts:    {artifact_root(args.bucket)}/<experiment name>")
    print("\n# in the client's shell:")
    print("\n".join(export_lines(gcs, server, generated)))
    print("\nCtrl-C to stop.", flush=True)
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    try:
        while not stop:
            for s in (gcs, server):
                if not s.alive:
                    print(f"error: {s.name} died:\n{s.log_tail()}", file=sys.stderr)
                    stop = True
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping ...", flush=True)
        server.stop()
        gcs.stop()
    return 0
