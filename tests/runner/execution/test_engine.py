"""runner.execution.engine: the kernel's progress events and log lines reach the runner's
console over IPC, once through a real kernel and once through ``python -m runner`` on small
data (plain progress by default; JSON lines with TensorFlow's own lines when asked).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lib.core.progress import MIME
from tests.support.runner_process import CONTROL, console_env, run_runner

TF_CPP = ("cuda drivers", "cuInit", "oneDNN", "NodeDef", "absl::InitializeLog", "cpu_feature")


@pytest.mark.slow
def test_a_real_execution_reports_cells_and_kernel_events_over_ipc(tmp_path, caplog, capfd):
    from runner.execution.execute import execute_stage
    from runner.stages import Stage

    code = (
        "from lib.core.progress import emit, epoch_event\n"
        "emit(epoch_event(1, 2, {'val_accuracy': 0.5}))\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "app = IPKernelApp.instance()\n"
        "print(app.transport, app.connection_file)\n"
        "import os\n"  # as C++ code writes: to descriptor 2, which the runner reads
        "os.write(2, b'E0000 00:00:1.5  7 node_def_util.cc:682] NodeDef mentions attribute a\\n')\n"
        "os.write(2, b'W0000 00:00:1.5  7 x.cc:9] a real warning\\n')\n"
        "os.write(2, b'Traceback: not absl\\n')"
    )
    nb = new_notebook(
        cells=[
            new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
            new_markdown_cell("# Training\nText."),
            new_code_cell(code),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    caplog.set_level(logging.INFO, logger="runner.execution.console")
    caplog.set_level(logging.DEBUG, logger="runner.kernel")
    execution = execute_stage(
        Stage("demo", str(path), "a test notebook", tracked=False),
        {"x": 2},
        run_dir=tmp_path / "run",
        render=False,
    )
    assert execution.ok, execution.error
    events = [r for r in caplog.records if r.name == "runner.execution.console"]
    assert [(r.progress, r.getMessage()) for r in events] == [
        ("cell", "demo: cell 1/3"),
        ("cell", "demo: cell 2/3"),  # papermill's injected parameters
        ("cell", "demo: cell 3/3 (Training)"),
        ("epoch", "demo: epoch 1/2: val_accuracy 0.5000"),
    ]
    outputs = nbformat.read(execution.output_path, as_version=4).cells[-1].outputs
    assert outputs[0]["data"]["text/plain"] == "epoch 1/2: val_accuracy 0.5000"  # readable
    assert outputs[0]["data"][MIME]["epoch"] == 1
    printed = [o["text"] for o in outputs if o.get("name") == "stdout"]  # fd 2's may be first
    transport, connection_file = "".join(printed).split()
    assert transport == "ipc"
    folder = Path(connection_file).parent
    assert folder.name.startswith("runner-kernels-") and (folder.stat().st_mode & 0o077) == 0
    assert "without encryption" not in capfd.readouterr().err  # the kernel's own stderr
    # The kernel's descriptor 2, logged at the level each line deserves (all before the
    # execution returned): a notice at DEBUG, the rest as warnings.
    # Only the lines this cell wrote: the kernel may add its own as it shuts down (under load,
    # ipykernel once logged "KeyboardInterrupt caught in kernel" there).
    ours = ("NodeDef mentions attribute a", "a real warning", "not absl")
    relayed = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "runner.kernel"
        and r.getMessage().startswith("kernel: ")
        and any(mark in r.getMessage() for mark in ours)
    ]
    assert relayed == [
        ("DEBUG", "kernel: NodeDef mentions attribute a (node_def_util.cc:682)"),
        ("WARNING", "kernel: a real warning (x.cc:9)"),
        ("WARNING", "kernel: Traceback: not absl"),
    ]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from lib.data import prep
    from tests.support.datagen import make_raw_dir

    root = tmp_path_factory.mktemp("progress-data")
    prep.prepare([make_raw_dir(root / "raw", per_label=10, words=20)], root / "processed")
    return root


def _train(tmp_path: Path, data: Path, epochs: int) -> list[str]:
    return [
        *("train", "--no-html", "--output-dir", str(tmp_path / "run")),
        *("-p", "data_path", str(data / "processed"), "-p", "epochs", str(epochs)),
        *("-p", "model_dir", str(tmp_path / "model")),
        *("-p", "mlflow_tracking_uri", f"sqlite:///{tmp_path}/mlflow.db"),
    ]


@pytest.mark.slow
def test_the_runner_console_by_default_is_plain_progress_without_noise(tmp_path, small_data):
    env = console_env(tmp_path)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = run_runner(_train(tmp_path, small_data, 2), env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stderr
    assert not CONTROL.search(err)
    assert not [line for line in err.splitlines() if line.lstrip().startswith("{")]
    assert not [t for t in TF_CPP if t in err], err[-3000:]
    assert "without encryption" not in err
    assert re.search(
        r"^\d\d:\d\d:\d\d INFO runner\.execution\.console: train: cell 1/\d+", err, re.M
    )
    assert re.search(r"INFO runner\.execution\.console: train: epoch 1/2: val_accuracy \d", err)
    assert re.search(r"INFO runner\.execution\.console: train: epoch 2/2: val_accuracy \d", err)


@pytest.mark.slow
def test_the_runner_with_json_and_debug_gives_json_lines_with_tensorflows_lines(
    tmp_path, small_data
):
    env = console_env(tmp_path)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    args = ["--log-format", "json", "--log-level", "DEBUG", *_train(tmp_path, small_data, 1)]
    result = run_runner(args, env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stderr.splitlines()]  # nothing else
    assert {"cell", "epoch"} <= {r.get("progress") for r in records}
    # The kernel logged at DEBUG too ($IMDB_LOG_LEVEL): TensorFlow's captured C++ start-up
    # lines, which its output brought to the console.
    kernel = [r["message"] for r in records if r["logger"] == "runner.kernel"]
    assert any(" DEBUG lib.core.tf_runtime: TensorFlow: " in m for m in kernel), kernel[:20]
