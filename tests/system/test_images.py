"""The images, built by a real Docker engine and run as the pods run them.

Every image builds (tests.support.images: the offline stand-in base first when the real one is
absent); its size is reported; the data-prep image holds only the prep stage's runtime and
runs prep on a read-only root filesystem; TensorFlow and the runner work in the training
images (no GPU here); tini is PID 1, forwards SIGTERM and reaps orphans. The prep stage
never imports TensorFlow or MLflow, on the host either. Sizes and build times are printed
(``pytest -s``) and kept in test-artifacts/images/sizes.txt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.datagen import make_raw_dir
from tests.support.images import (
    ARTIFACTS,
    BUILD_SECONDS,
    IMAGE_LOCKS,
    IMAGES,
    POD_ARGS,
    ROOT,
    built_image,
    image_size,
    lock_script,
    requirement_pins,
    run_logged,
)

# Every test here has a Docker engine (tests.support.docker_engine starts one when none answers).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("docker_engine")]

PREP_IMAGE_LIMIT_MB = 800
# What the prep stage must run without (none is in requirements-prep.txt).
TRAINING_ONLY = ("tensorflow", "keras", "mlflow", "jupyterlab", "matplotlib", "optuna")
DATA = "/polyaxon-v1-data"  # where the polyaxonfiles mount the shared data volume


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """``docker ARGS``, its output captured as text."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} ... exited {done.returncode}:\n{done.stderr}")
    return done


def run_in(tag: str, *argv: str, extra: tuple[str, ...] = (), timeout: float = 600):
    """``argv`` in a fresh container of ``tag``, restricted as a pod runs it."""
    return docker("run", "--rm", *POD_ARGS, *extra, tag, *argv, timeout=timeout, check=False)


def shared_volume(tmp_path: Path) -> Path:
    """A folder the pod's user (2222) can write, as a shared data volume is."""
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    return volume


# --------------------------------------------------------------------------- builds


@pytest.mark.parametrize("name", IMAGES)
def test_the_image_builds_with_tini_as_entrypoint_and_the_pods_user(name):
    tag = built_image(name)
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", tag).stdout)
    assert config["Entrypoint"] == ["/usr/bin/tini", "-g", "--"]
    assert config["User"] == "2222:2222"
    size_mb = image_size(tag) / 1e6
    built = f" (built in {BUILD_SECONDS[name]:.0f} s)" if name in BUILD_SECONDS else ""
    line = f"{name}: {size_mb:.0f} MB{built}"
    print(line)
    with (ARTIFACTS / "sizes.txt").open("a", encoding="utf-8") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")
    if name == "data-prep":
        assert size_mb <= PREP_IMAGE_LIMIT_MB, line


@pytest.mark.parametrize("name", IMAGES)
def test_the_image_holds_exactly_its_lock(name):
    """Every package of the image's lock at its locked version, and nothing else but pip,
    the venv's setuptools and the project itself (installed with --no-deps)."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    done = run_in(built_image(name), "python", "-c", code, extra=("--network", "none"))
    assert done.returncode == 0, done.stderr
    have = {lock_script.normalized(k): v for k, v in json.loads(done.stdout).items()}
    pins = {k: v for k, (v, _) in lock_script.read_lock(ROOT / IMAGE_LOCKS[name]).items()}
    assert {k: have.get(k) for k in pins} == pins
    assert set(have) - set(pins) <= {"pip", "setuptools", "imdb-sentiment"}


@pytest.mark.parametrize("name", IMAGES)
def test_the_installed_packages_are_compiled_and_uv_is_gone(name):
    """The lock was installed with bytecode compiled at build time: in a pod (read-only root,
    PYTHONDONTWRITEBYTECODE) nothing writes a .pyc, and every process would compile what it
    imports. uv, which installed it, is on no PATH (nor a package: the test above)."""
    code = (
        "import glob, importlib.util as u, json, os, shutil, sysconfig; "
        "src = glob.glob(sysconfig.get_paths()['purelib'] + '/*/__init__.py'); "
        "bare = [p for p in src if not os.path.exists(u.cache_from_source(p))]; "
        "print(json.dumps({'n': len(src), 'bare': bare, 'uv': shutil.which('uv')}))"
    )
    done = run_in(built_image(name), "python", "-c", code, extra=("--network", "none"))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["n"] > 20 and not found["bare"] and found["uv"] is None, found


def test_a_failed_build_fails_with_its_log_tail(tmp_path):
    log = tmp_path / "x.build.log"
    with pytest.raises(pytest.fail.Exception) as failed:
        run_logged(
            ["bash", "-c", "echo Step 1/2; echo 'E: no such package'; exit 3"], log, "a build"
        )
    assert "a build failed (exit 3)" in str(failed.value) and str(log) in str(failed.value)
    assert "E: no such package" in str(failed.value)
    assert "E: no such package" in log.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="the images are data-prep"):
        built_image("data_prep")


# --------------------------------------------------------------------------- data-prep


def test_the_data_prep_image_holds_the_prep_pins_and_no_training_runtime():
    pins = requirement_pins("requirements-prep.txt")
    code = (
        "import importlib.metadata as m, importlib.util as u, json, sys; "
        f"names = {sorted(pins)!r}; "
        "have = {n: m.version(n) for n in names}; "
        f"extra = [n for n in {TRAINING_ONLY!r} if u.find_spec(n)]; "
        "print(json.dumps({'have': have, 'extra': extra}))"
    )
    done = run_in(built_image("data-prep"), "python", "-c", code, extra=("--network", "none"))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["extra"] == []
    for name, line in pins.items():
        assert line.endswith(f"=={found['have'][name]}"), (line, found["have"][name])


def test_prep_runs_in_its_image_on_a_read_only_root_without_network(tmp_path):
    volume = shared_volume(tmp_path)
    make_raw_dir(volume / "raw", per_label=4)
    done = run_in(
        built_image("data-prep"),
        "python",
        "-m",
        "runner",
        "prep",
        "--output-dir",
        f"{DATA}/notebook",
        "-r",
        "raw_dirs",
        f'["{DATA}/raw"]',
        "-r",
        "processed_dir",
        f"{DATA}/processed",
        extra=("--network", "none", "-v", f"{volume}:{DATA}"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prep succeeded" in done.stdout
    manifest = json.loads((volume / "processed" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"]["train"]["total"] == 8 and manifest["rows"]["test"]["total"] == 8
    assert (volume / "notebook" / "prep.ipynb").is_file()
    # The stage wrote only where it was told to (and the root filesystem refused the rest).
    assert sorted(p.name for p in volume.iterdir()) == ["notebook", "processed", "raw"]


def test_the_prep_stage_never_imports_tensorflow_or_mlflow(tmp_path):
    """On the host, with every training-only package made unimportable: prep still runs,
    and none of them was even tried (a try/except around an import would not hide it)."""
    blocked, tried = tmp_path / "blocked", tmp_path / "tried"
    for name in TRAINING_ONLY:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"open({str(tried)!r}, 'a').write({name!r} + '\\n')\n"
            f"raise ImportError('{name} is made unimportable for this test')\n"
        )
    env = {**os.environ, "PYTHONPATH": str(blocked), "LOG_DIR": str(tmp_path / "logs")}
    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True
    )
    assert "tensorflow is made unimportable" in probe.stderr  # the blocking works
    tried.unlink()
    make_raw_dir(tmp_path / "raw", per_label=3)
    done = subprocess.run(
        [sys.executable, "-m", "runner", "prep", "--output-dir", str(tmp_path / "run")]
        + ["-r", "raw_dirs", json.dumps([str(tmp_path / "raw")])]
        + ["-r", "processed_dir", str(tmp_path / "processed")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "processed" / "manifest.json").is_file()
    assert not tried.exists(), tried.read_text()


# --------------------------------------------------------------------------- training images


@pytest.mark.parametrize("name", ["model-training-cpu", "model-training-gpu"])
def test_tensorflow_and_the_runner_work_in_the_training_image_without_a_gpu(name):
    tag = built_image(name)
    pin = requirement_pins("requirements-train.txt")["tensorflow"]
    code = (
        "import tensorflow as tf; "
        "print(tf.__version__, len(tf.config.list_physical_devices('GPU')))"
    )
    done = run_in(tag, "python", "-c", code, extra=("--network", "none"))
    assert done.returncode == 0, done.stderr
    version, gpus = done.stdout.split()[-2:]
    assert pin == f"tensorflow=={version}" and gpus == "0"
    done = run_in(tag, "python", "-m", "runner", "--help", extra=("--network", "none"))
    assert done.returncode == 0, done.stderr
    assert "usage: python -m runner" in done.stdout


def _nvidia_runtime() -> bool:
    done = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True
    )
    return done.returncode == 0 and "nvidia" in done.stdout and bool(shutil.which("nvidia-smi"))


def test_the_gpu_image_trains_a_model_on_the_gpu():
    # Asked here, not at collection: the engine is up only once the fixture has run.
    if not _nvidia_runtime():
        pytest.skip(
            "the GPU image's training needs a GPU machine (an NVIDIA driver and the NVIDIA "
            "container runtime); this machine has none"
        )
    code = (
        "import numpy as np, keras, tensorflow as tf; "
        "assert tf.config.list_physical_devices('GPU'), 'no GPU visible'; "
        "m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)]); "
        "m.compile(optimizer='sgd', loss='mse'); "
        "m.fit(np.ones((64, 8)), np.ones(64), epochs=2, verbose=0); "
        "print(m.weights[0].value.device)"
    )
    done = run_in(built_image("model-training-gpu"), "python", "-c", code, extra=("--gpus", "all"))
    assert done.returncode == 0, done.stderr
    assert "GPU:0" in done.stdout


# --------------------------------------------------------------------------- tini


@pytest.fixture
def container():
    """A unique container name, removed after the test."""
    name = f"imdb-sentiment-test-{uuid.uuid4().hex[:12]}"
    yield name
    docker("rm", "-f", name, check=False)


def _processes(name: str) -> tuple[str, list[tuple[str, str]]]:
    """PID 1's command line, and (name, state) of every process in the container (/proc)."""
    code = (
        "import os, pathlib; "
        "print(pathlib.Path('/proc/1/cmdline').read_bytes().replace(b'\\0', b' ').decode()); "
        "stats = [pathlib.Path(f'/proc/{p}/stat').read_text() for p in os.listdir('/proc') "
        "if p.isdigit()]; "
        "[print(s.split('(', 1)[1].rsplit(')', 1)[0], s.rsplit(')', 1)[1].split()[0]) "
        "for s in stats]"
    )
    lines = docker("exec", name, "python", "-c", code).stdout.splitlines()
    return lines[0], [tuple(line.rsplit(" ", 1)) for line in lines[1:]]


def test_tini_is_pid_1_reaps_orphans_and_forwards_sigterm(container):
    # A short-lived orphan (its parent subshell exits at once) and a long-running command.
    script = "(sleep 1 &) ; exec python -c 'import time; time.sleep(600)'"
    docker(
        "run", "-d", "--name", container, *POD_ARGS, built_image("data-prep"), "bash", "-c", script
    )
    deadline = time.monotonic() + 60
    while True:
        pid1, processes = _processes(container)
        orphans = [p for p in processes if p[0] == "sleep"]
        if not orphans or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert pid1.startswith("/usr/bin/tini -g --"), pid1
    # The orphan, once it ended, was reaped by PID 1, not left a zombie.
    assert orphans == [] and not [p for p in processes if p[1] == "Z"], processes
    # A long stop timeout: an exit by the engine's SIGKILL would mean SIGTERM went nowhere.
    docker("stop", "-t", "120", container, timeout=180)
    state = json.loads(docker("inspect", "-f", "{{json .State}}", container).stdout)
    assert state["ExitCode"] == 128 + 15 and not state["OOMKilled"], state
