"""lib.core.tf_runtime: TensorFlow's C++ start-up lines out of notebooks, real problems kept, one
line that says whether a GPU is used; and the train notebook as papermill runs it."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lib.core import tf_runtime
from lib.data import prep
from tests.support.datagen import make_raw_dir
from tests.support.tf_lines import KNOWN_TF_LINES, json_lines

ROOT = Path(__file__).resolve().parents[3]
ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\]", re.MULTILINE)

START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796135637.802223    9596 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796135638.129741    9596 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.
E0000 00:00:1796135642.962679    9596 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
W0000 00:00:1796135642.962680    9596 something.cc:7] a real warning
/venv/x.py:3: UserWarning: a Python warning
"""  # noqa: E501


def test_start_up_lines_are_logged_at_their_level_info_and_the_cpu_probe_at_debug():
    records = tf_runtime.records(START_UP.splitlines(), gpu_expected=False)
    assert records == [
        (logging.DEBUG, "Could not find cuda drivers on your machine, GPU will not be used. "
         "(cudart_stub.cc:31)"),
        (logging.DEBUG, "This TensorFlow binary is optimized. (cpu_feature_guard.cc:227) "
         "To enable the following instructions: AVX2 AVX512F FMA, in other operations, "
         "rebuild TensorFlow."),
        (logging.DEBUG, "failed call to cuInit: INTERNAL: CUDA error (cuda_platform.cc:52)"),
        (logging.WARNING, "a real warning (something.cc:7)"),
        (logging.WARNING, "/venv/x.py:3: UserWarning: a Python warning"),
    ]  # fmt: skip


def test_a_failed_cuda_probe_is_an_error_on_a_machine_with_an_nvidia_device():
    records = tf_runtime.records(START_UP.splitlines(), gpu_expected=True)
    assert (logging.ERROR, "failed call to cuInit: INTERNAL: CUDA error (cuda_platform.cc:52)") in (
        records
    )


def test_an_nvidia_device_is_a_loaded_driver_or_a_device_node(tmp_path):
    dev, proc = tmp_path / "dev", tmp_path / "proc"
    dev.mkdir()
    (dev / "nvidiactl").touch()  # the control node alone is no GPU
    assert not tf_runtime.nvidia_device_present(dev, proc)
    (dev / "nvidia0").touch()
    assert tf_runtime.nvidia_device_present(dev, proc)
    (dev / "nvidia0").unlink()
    (proc / "driver" / "nvidia").mkdir(parents=True)
    (proc / "driver" / "nvidia" / "version").write_text("NVRM version: 550\n")
    assert tf_runtime.nvidia_device_present(dev, proc)


def test_one_line_says_whether_a_gpu_is_used():
    assert tf_runtime.gpu_line(["GPU:0"], True, "2.21.0") == (
        logging.INFO,
        "TensorFlow 2.21.0 uses 1 GPU(s): GPU:0",
    )
    assert tf_runtime.gpu_line([], False, "2.21.0") == (
        logging.INFO,
        "TensorFlow 2.21.0 runs on the CPU (no NVIDIA GPU on this machine)",
    )
    level, line = tf_runtime.gpu_line([], True, "2.21.0")
    assert level == logging.WARNING and "although this machine has an NVIDIA device" in line


def test_descriptor_2_is_captured_in_the_block_and_restored_after(capfd):
    with tf_runtime.captured_fd2() as lines:
        os.write(2, b"from C++\nsecond line\n")
    os.write(2, b"after\n")
    assert lines == ["from C++", "second line"]
    assert capfd.readouterr().err == "after\n"


@pytest.mark.slow
def test_tensorflow_starts_with_one_readable_line_and_no_cpp_start_up_lines(tmp_path):
    code = (
        "import logging, os; logging.basicConfig(level=logging.INFO, "
        "format='%(levelname)s %(name)s: %(message)s')\n"
        "from lib.core import tf_runtime\n"
        "print(tf_runtime.start(), os.environ['TF_ENABLE_ONEDNN_OPTS'])\n"
        "import tensorflow as tf\n"
        "print(float(tf.reduce_sum(tf.constant([1.0, 2.0]))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CUDA_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "0", "3.0"]  # no GPU here; oneDNN's ops off
    assert not ABSL_LINE.search(result.stderr), result.stderr
    assert "absl::InitializeLog" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "INFO lib.core.tf_runtime: TensorFlow "
        f"{_tf_version()} runs on the CPU (no NVIDIA GPU on this machine)"
    ]


def _tf_version() -> str:
    from importlib.metadata import version

    return version("tensorflow")


def stream_outputs(nb) -> list[tuple[int, str, str]]:
    """``(cell index, stream name, text)`` of every stream output of a notebook."""
    return [
        (i, out["name"], out["text"])
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    ]


@pytest.mark.slow
def test_the_train_notebook_in_papermill_shows_no_start_up_lines_and_no_json(tmp_path):
    processed = tmp_path / "processed"
    prep.prepare([make_raw_dir(tmp_path / "raw", per_label=30)], processed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "MLFLOW_"))}
    env["LOG_DIR"] = str(tmp_path / "logs")
    out = tmp_path / "train.ipynb"
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run(
        [str(papermill), "notebooks/train.ipynb", str(out), "--no-progress-bar"]
        + ["-p", "data_path", str(processed), "-p", "epochs", "1", "-p", "bs", "16"]
        + ["-p", "model_dir", str(tmp_path / "model")]
        + ["-p", "mlflow_tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    streams = stream_outputs(nbformat.read(out, as_version=4))
    stderr = [t for _, name, t in streams if name == "stderr"]
    unexpected = [t for t in stderr if not any(known in t for known in KNOWN_TF_LINES)]
    assert unexpected == [], unexpected  # no C++ start-up lines, no MLflow stderr handler
    assert not any(json_lines(t) for _, _, t in streams)
    shown = "".join(t for _, name, t in streams if name == "stdout")
    assert re.search(
        r"^\d\d:\d\d:\d\d INFO lib\.core\.tf_runtime: TensorFlow .* runs on the CPU", shown, re.M
    )
    assert re.search(r"^\d\d:\d\d:\d\d INFO lib\.tracking\.runs: MLflow run \w+", shown, re.M)
    # The log file keeps JSON lines.
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "info.log").read_text().splitlines()
    ]
    assert {"lib.core.tf_runtime", "lib.tracking.runs"} <= {r["logger"] for r in records}


def test_the_environment_gets_the_defaults_without_tensorflow_and_keeps_what_is_set(
    monkeypatch,
):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    code = (
        "import os, sys\n"
        "from lib.core import tf_runtime\n"
        "tf_runtime.set_environment()\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], 'tensorflow' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.split() == ["0", "False"], run.stderr
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.split() == ["1", "False"], run.stderr


def test_a_record_logged_during_the_capture_goes_to_the_real_stderr(capfd):
    stream = os.fdopen(2, "w", closefd=False)  # as sys.stderr is, outside a kernel
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with tf_runtime.captured_fd2() as lines:
            logging.getLogger("lib.demo").warning("a record of ours")
            os.write(2, b"from C++\n")
    finally:
        root.removeHandler(handler)
    assert lines == ["from C++"]
    assert "a record of ours" in capfd.readouterr().err
    assert handler.stream is stream  # put back


def test_a_known_notice_at_error_level_is_debug():
    line = (
        "E0000 00:00:1796139169.981034   28693 node_def_util.cc:682] NodeDef mentions "
        "attribute use_unbounded_threadpool which is not in the op definition"
    )
    [(level, message)] = tf_runtime.records([line], gpu_expected=True)
    assert level == logging.DEBUG and message.endswith("(node_def_util.cc:682)")
