"""The terminal while a stage runs: the progress display (runner.execution.console,
runner.execution.engine)
and the events from inside the kernel (lib.core.progress).

The display is checked in a pseudo-terminal (the status line rewritten in place) and in a
pipe (plain lines, no control characters), and as JSON lines; then once through a real
kernel, and once through ``python -m runner`` on small data.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lib.core.progress import MIME, describe, epoch_event, notice_event, trial_event
from runner.execution.console import StageProgress
from tests.support.runner_process import ROOT, run_runner

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # any control character but \t and \n
PLAIN = re.compile(r"^\d\d:\d\d:\d\d [A-Z]+ [\w.]+: ")

CELLS = [
    {"cell_type": "markdown", "source": "Intro, no heading"},
    {"cell_type": "code", "source": "x = 1"},
    {"cell_type": "markdown", "source": "some text\n## Training the model\n"},
    {"cell_type": "code", "source": "   "},  # empty: not executed, not counted
    {"cell_type": "code", "source": "fit()"},
]

# Drives the display as an execution would: two cells, an epoch between them, a trial.
SCRIPT = textwrap.dedent(
    """
    import sys
    from runner.execution.console import StageProgress, clear_live_line, configure_console
    configure_console(fmt=sys.argv[1] if len(sys.argv) > 1 else None)
    progress = StageProgress("train")
    progress.begin(CELLS)
    progress.cell_started(cell_index=1)
    progress.event({"event": "epoch", "epoch": 1, "epochs": 2, "loss": 0.7,
                    "val": {"val_accuracy": 0.8125, "val_loss": 0.5}})
    progress.cell_started(cell_index=4)
    progress.event({"event": "trial", "done": 3, "total": 10, "best": 0.87, "best_trial": 1})
    clear_live_line()
    print("summary", file=sys.stderr)
    """
).replace("CELLS", repr(CELLS))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMDB_LOG_")}
    return {**env, "LOG_DIR": str(tmp_path / "logs"), "PYTHONPATH": str(ROOT), **extra}


def test_cells_are_numbered_among_code_cells_with_their_section():
    progress = StageProgress("train")
    progress.begin(CELLS)
    assert progress.cells == 2
    assert progress._plan == {1: (1, None), 4: (2, "Training the model")}


def test_events_read_as_one_line():
    assert describe(epoch_event(2, 5, {"loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9})) == (
        "epoch 2/5: val_accuracy 0.9000, val_loss 0.4000"
    )
    assert describe(epoch_event(1, None, {"loss": float("nan")})) == "epoch 1"
    assert describe(trial_event(3, 10, 0.87, 1)) == "trials 3/10 done, best so far 0.8700 (trial 1)"
    assert describe(trial_event(1, None, None)) == "trials 1 done"


def test_in_a_terminal_the_cell_line_is_rewritten_and_events_stay(tmp_path):
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=_env(tmp_path, COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    clear = "\r\x1b[2K"
    # The status line: written in place, with no newline of its own.
    assert re.search(
        re.escape(clear) + r"\d\d:\d\d:\d\d INFO runner\.execution\.console: train: cell 1/2", out
    )
    assert "train: cell 2/2 (Training the model)" in out
    # The epoch and the trial: lines of their own, above the status line drawn again.
    epoch = re.search(r"train: epoch 1/2: val_accuracy 0\.8125, val_loss 0\.5000\r?\n", out)
    assert epoch
    assert re.search(r"train: trials 3/10 done, best so far 0\.8700 \(trial 1\)\r?\n", out)
    # Cleared before what follows: the summary starts a clean line.
    assert out.rstrip().endswith(clear + "summary")
    assert "{" not in out


def test_in_a_pipe_every_event_is_a_plain_line_without_control_characters(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not CONTROL.search(result.stderr)
    assert [line.split(": ", 1)[1] for line in lines[:-1]] == [
        "train: cell 1/2",
        "train: epoch 1/2: val_accuracy 0.8125, val_loss 0.5000",
        "train: cell 2/2 (Training the model)",
        "train: trials 3/10 done, best so far 0.8700 (trial 1)",
    ]
    assert all(PLAIN.match(line) for line in lines[:-1]) and lines[-1] == "summary"
    # The log file has them as JSON records, with their fields.
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "info.log").read_text().splitlines()
    ]
    epoch = next(r for r in records if r.get("progress") == "epoch")
    assert epoch["epoch"] == 1 and epoch["val"]["val_accuracy"] == 0.8125


@pytest.mark.parametrize("how", ["option", "environment"])
def test_json_asked_for_gives_json_lines_only_even_in_a_terminal(tmp_path, how):
    args = ["json"] if how == "option" else []
    extra = {} if how == "option" else {"IMDB_LOG_FORMAT": "json"}
    main, secondary = pty.openpty()  # a terminal: still no status line, no control codes
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace('print("summary", file=sys.stderr)', ""), *args],
        cwd=ROOT,
        env=_env(tmp_path, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
        timeout=60,
    )
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert result.returncode == 0
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["progress"] for r in records] == ["cell", "epoch", "cell", "trial"]
    assert records[2]["section"] == "Training the model" and records[3]["best"] == 0.87


@pytest.mark.slow
def test_the_keras_callback_emits_an_epoch_event_per_epoch(caplog):
    import keras
    import numpy as np

    from lib.core.progress import epoch_callback

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((8, 2), "float32"), np.ones((8, 1), "float32")
    with caplog.at_level(logging.INFO, logger="lib.core.progress"):
        model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[epoch_callback()])
    lines = [r.getMessage() for r in caplog.records if r.name == "lib.core.progress"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val_accuracy 1.0000" in line for line in lines)


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


TF_CPP = ("cuda drivers", "cuInit", "oneDNN", "NodeDef", "absl::InitializeLog", "cpu_feature")


@pytest.mark.slow
def test_the_runner_console_by_default_is_plain_progress_without_noise(tmp_path, small_data):
    env = _env(tmp_path)
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
    env = _env(tmp_path)
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


def test_a_notice_is_a_line_to_keep_on_the_console_not_a_progress_line(caplog):
    event = notice_event("tuning interrupted: run the same command again to resume")
    assert describe(event) == "tuning interrupted: run the same command again to resume"
    with caplog.at_level(logging.INFO, logger="runner.execution.console"):
        StageProgress("tune").event(event)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and not hasattr(record, "progress")
    assert record.getMessage() == f"tune: {describe(event)}"
