"""A local copy of the production tracking stack: MLflow with basic auth, and a GCS emulator.

Run it by hand (it prints the URLs and the ``export`` lines to use, then runs until Ctrl-C)::

    python scripts/tracking_stack.py --port 5000 --gcs-port 9023 --data-dir /tmp/stack

or ``python -m tools.tracking_stack`` with the same options, or import it (the test fixtures in
``tests/support/services.py`` do)::

    gcs = start_gcs_emulator(data_dir, bucket="sentiment-mlflow")
    mlflow = start_mlflow_server(
        data_dir,
        default_artifact_root=artifact_root("sentiment-mlflow"),
        storage_emulator_host=gcs.url,
    )
    ...
    mlflow.stop(); gcs.stop()

The package: ``servers`` (the process groups, the GCS emulator), ``mlflow_server`` (MLflow with
basic auth), ``cli`` (both together until Ctrl-C).
"""

from tools.tracking_stack.cli import export_lines, main, start_stack
from tools.tracking_stack.mlflow_server import (
    admin_password,
    start_mlflow_server,
    write_auth_config,
)
from tools.tracking_stack.servers import (
    ARTIFACT_PREFIX,
    DEFAULT_ADMIN_USERNAME,
    DEFAULT_BUCKET,
    HOST,
    PASSWORD_FILE,
    GcsEmulator,
    MlflowServer,
    Server,
    ServerStartError,
    artifact_root,
    experiment_artifact_location,
    free_port,
    start_gcs_emulator,
)

__all__ = [
    "ARTIFACT_PREFIX",
    "DEFAULT_ADMIN_USERNAME",
    "DEFAULT_BUCKET",
    "HOST",
    "PASSWORD_FILE",
    "GcsEmulator",
    "MlflowServer",
    "Server",
    "ServerStartError",
    "admin_password",
    "artifact_root",
    "experiment_artifact_location",
    "export_lines",
    "free_port",
    "main",
    "start_gcs_emulator",
    "start_mlflow_server",
    "start_stack",
    "write_auth_config",
]
