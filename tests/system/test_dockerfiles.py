"""The Dockerfiles and .dockerignore, checked without a Docker engine.

hadolint lints every Dockerfile; the rest reads the Dockerfiles as Docker would: every
COPY/ADD source must exist and survive .dockerignore, the CMD must name a real entry point,
and each image must fit the jobs that the polyaxonfiles run in it, as Polyaxon renders them
(its user, its working folder, PROJECT_ROOT, a python3 Jupyter kernel for papermill).
.dockerignore is read and matched by the Docker SDK for Python (``docker``, which MLflow
requires): its ``PatternMatcher`` is the port of the Docker engine's own matcher that
``docker.APIClient.build`` uses to pick the build context."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib

import pytest
import yaml
from docker.utils.build import PatternMatcher, exclude_paths

from tests.support import polyaxon_render as plx
from tests.support.dockerfiles import (
    DOCKER,
    DOCKERFILES,
    ROOT,
    RUNNER_DOCKERFILES,
    SERVING,
    dockerignore_patterns,
    hadolint,
    instructions,
    is_excluded,
)
from tests.support.images import requirement_pins

# The locks each image installs (scripts/lock.py), with hashes required.
LOCKS = {
    "data-prep.Dockerfile": {"requirements-prep.lock"},
    "model-training-cpu.Dockerfile": {"requirements.lock"},
    "model-training-gpu.Dockerfile": {"requirements.lock", "requirements-gpu.lock"},
    "model-serving.Dockerfile": {"requirements-serve.lock"},
}
# What every image installs its locks with: uv, from this lock (scripts/lock.py's build role),
# hash-checked by pip into a venv under /tmp that the same RUN removes.
BUILD_LOCK = "requirements-build.lock"
UV_VENV = "/tmp/uv"
# How the images install uv, then each lock with it: hashes required, bytecode compiled at build
# time (the pods' root filesystem is read-only and PYTHONDONTWRITEBYTECODE is set), no cache
# left in the layer.
UV_INSTALL = f"{UV_VENV}/bin/pip install --no-cache-dir --require-hashes -r {BUILD_LOCK}"
LOCK_INSTALL = (
    f"{UV_VENV}/bin/uv pip install --no-cache --compile-bytecode --system-certs"
    ' --python "$VIRTUAL_ENV/bin/python" --require-hashes -r '
)
# The project as the runner images install it (its metadata reads the requirements files).
PROJECT = {"requirements-prep.txt", "requirements-train.txt", "pyproject.toml", "README.md"}
PROJECT |= {"lib", "runner", "conf", "notebooks"}
# The training images log models, which record the serving lock's versions
# (lib.tracking.model_requirements): they copy that lock without installing it.
TRAINING = [name for name in RUNNER_DOCKERFILES if "training" in name]
MODEL_LOCK = {name: {"requirements-serve.lock"} for name in TRAINING}
# The training images serve the review page too (app/, polyaxonfiles/review-page.yml).
PAGE = {name: {"app"} for name in MODEL_LOCK}
# What the images need, and so all that .dockerignore lets into the build context.
CONTEXT = PROJECT.union(*LOCKS.values(), *MODEL_LOCK.values(), *PAGE.values(), {BUILD_LOCK})
# What the data-prep image must not hold (the prep stage never imports them).
NOT_FOR_PREP = {"tensorflow", "keras", "mlflow", "jupyterlab", "matplotlib", "optuna"}
# Where the images point what would write under HOME: the root filesystem is read-only in
# the pods, and /tmp (an emptyDir) is writable.
TMP_ENV = (
    "LOG_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_DATA_DIR",
    "IPYTHONDIR",
    "MPLCONFIGDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
)


def _tracked(*folders: str) -> list[str]:
    """The files git tracks under ``folders`` (that this working tree still has)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *folders], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [path for path in out.split("\0") if path and (ROOT / path).exists()]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_build_context_holds_what_the_images_need_and_nothing_else(name):
    """The files ``docker build -f docker/NAME .`` sends from this checkout, as the SDK picks
    them: the allow-list (and the Dockerfile), with every tracked file in it, and none of
    the caches, stores or credentials that lie around a working checkout."""
    context = exclude_paths(str(ROOT), dockerignore_patterns(), dockerfile=f"docker/{name}")
    top = {path.split("/", 1)[0] for path in context}
    # Docker always sends .dockerignore itself and the Dockerfile.
    assert top <= CONTEXT | {".dockerignore", "docker"} and CONTEXT <= top, sorted(top - CONTEXT)
    assert {p for p in context if p.startswith("docker")} == {f"docker/{name}"}
    assert not set(_tracked(*CONTEXT)) - context  # every tracked file gets in
    junk = {"__pycache__", ".ipynb_checkpoints", "mlruns", ".venv", ".git", "mlartifacts"}
    for path in context:
        parts = path.split("/")
        assert not junk & set(parts), path
        assert not parts[-1].endswith((".pyc", ".key.json", "mlflow.db", ".env")), path
        assert "credentials" not in parts[-1] or not parts[-1].endswith(".json"), path


@pytest.mark.parametrize(
    "path",
    [
        "data/raw/aclImdb/train/pos/0_9.txt",
        "data/processed/train.parquet",
        "runs/20260101T000000Z-prep/prep.ipynb",
        "logs/runner.log",
        "mlruns/0/meta.yaml",
        "mlflow.db",
        "mlartifacts/1/model.keras",
        "models/model.keras",
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "lib/__pycache__/paths.cpython-311.pyc",
        "notebooks/.ipynb_checkpoints/prep-checkpoint.ipynb",
        "notebooks/mlruns/0/meta.yaml",
        "notebooks/mlflow.db",
        "imdb_sentiment.egg-info/PKG-INFO",
        "tests/system/test_dockerfiles.py",
        "polyaxonfiles/process-data.yml",
        "requirements-test.lock",
        "requirements-all.lock",
        "requirements-test.txt",
        ".env",
        "conf/gcp-credentials.json",
    ],
)
def test_the_build_context_leaves_out(path):
    assert is_excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        "requirements.lock",
        "requirements-prep.lock",
        "requirements-prep.txt",
        "requirements-train.txt",
        "pyproject.toml",
        "README.md",
        "lib/core/paths.py",
        "runner/__main__.py",
        "conf/logging.yml",
        "notebooks/prep.ipynb",
    ],
)
def test_the_build_context_keeps(path):
    assert not is_excluded(path)


# --------------------------------------------------------------------------- Dockerfiles


def _jobs_by_image() -> dict[str, list[plx.RenderedJob]]:
    """Dockerfile name -> the jobs (of every polyaxonfile, rendered) that run its image."""
    jobs: dict[str, list[plx.RenderedJob]] = {}
    for path in sorted(plx.POLYAXONFILES.glob("*.yml")):
        for job in plx.render_file(path):
            image = job.image.rsplit("/", 1)[-1].partition(":")[0]
            jobs.setdefault(f"{image}.Dockerfile", []).append(job)
    return jobs


JOBS_BY_IMAGE = _jobs_by_image()


def test_every_image_the_polyaxonfiles_run_is_built_here_and_each_is_run():
    assert sorted(JOBS_BY_IMAGE) == DOCKERFILES
    # Every job component runs one of them (the DAG and the matrix reuse components).
    names = {job.name for jobs in JOBS_BY_IMAGE.values() for job in jobs}
    components = {p.stem for p in plx.POLYAXONFILES.glob("*.yml") if plx.file_kind(p) == "job"}
    assert components <= names


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKER / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _copy_sources(args: str) -> list[str]:
    words = shlex.split(args)
    words = [w for w in words if not w.startswith("--")]
    if args.lstrip().startswith("["):
        words = json.loads(args[args.index("[") :])
    return words[:-1]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copy_source_exists_and_is_in_the_build_context(name):
    rules = PatternMatcher(dockerignore_patterns())
    copies = [(k, a) for k, a in instructions(DOCKER / name) if k in {"COPY", "ADD"}]
    assert copies
    for keyword, args in copies:
        assert "--from" not in args
        for source in _copy_sources(args):
            path = ROOT / source
            assert path.exists(), f"{name}: {keyword} {source}: not in the repository"
            assert not is_excluded(source, rules), f"{name}: {source} is in .dockerignore"
            if path.is_dir():
                files = [p for p in path.rglob("*") if p.is_file()]
                kept = [p for p in files if not is_excluded(str(p.relative_to(ROOT)), rules)]
                assert kept, f"{name}: {source}/ would be copied empty"
                code = [p for p in files if p.suffix in {".py", ".ipynb", ".yml"}]
                code = [p for p in code if "__pycache__" not in p.parts]
                code = [p for p in code if ".ipynb_checkpoints" not in p.parts]
                left_out = [str(p) for p in code if p not in kept]
                assert not left_out, f"{name}: .dockerignore drops {left_out}"


def test_the_images_copy_the_whole_project_code():
    """Everything `python -m runner` needs at run time is copied into each image."""
    for name in DOCKERFILES:
        copied = set()
        for keyword, args in instructions(DOCKER / name):
            if keyword == "COPY":
                copied |= set(_copy_sources(args))
        # The serving image: only the code of `python -m runner serve`, not installed.
        project = {"lib", "runner"} if name in SERVING else PROJECT
        extra = MODEL_LOCK.get(name, set()) | PAGE.get(name, set()) | {BUILD_LOCK}
        assert copied == LOCKS[name] | project | extra, name


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_base_image_is_pinned(name):
    froms = [a for k, a in instructions(DOCKER / name) if k == "FROM"]
    assert len(froms) == 1
    image = froms[0].split()[0]
    repo, _, tag = image.partition(":")
    assert repo == "python" and re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), image


@pytest.mark.parametrize("name", RUNNER_DOCKERFILES)
def test_the_image_fits_the_jobs_that_run_it(name):
    steps = instructions(DOCKER / name)
    text = "\n".join(f"{k} {a}" for k, a in steps)
    users = [a for k, a in steps if k == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert f"useradd --uid {uid} --gid {gid}" in text
    workdirs = [a for k, a in steps if k == "WORKDIR"]
    assert len(workdirs) == 1
    env = " ".join(a for k, a in steps if k == "ENV")
    assert f"PROJECT_ROOT={workdirs[0]}" in env
    # The jobs (as Polyaxon renders them) run as the image's user in its project folder.
    for job in JOBS_BY_IMAGE[name]:
        assert job.working_dir == workdirs[0], job.name
        assert f"cd '{workdirs[0]}'\n" in job.script, job.name
        assert job.security_context["runAsUser"] == int(uid), job.name
        assert job.security_context["runAsGroup"] == int(gid), job.name
    # The runtime lock (the prep stage's alone for data-prep), never the test requirements
    # (polyaxon, hadolint stay out).
    wanted = "requirements-prep.lock" if name == "data-prep.Dockerfile" else "requirements.lock"
    assert f"--require-hashes -r {wanted}" in text and "requirements-test" not in text
    assert "polyaxon" not in text.lower()
    assert "pip install --no-cache-dir --no-deps -e ." in text
    # papermill's kernel: ipykernel's python3, registered in the image's environment.
    assert "ipykernel install --sys-prefix --name python3" in text
    # A component's DOCKER_IMAGE input says which Dockerfile builds its image.
    for job in JOBS_BY_IMAGE[name]:
        path = plx.POLYAXONFILES / f"{job.name}.yml"
        if path.is_file():
            inputs = {io["name"]: io for io in yaml.safe_load(path.read_text("utf-8"))["inputs"]}
            assert f"docker/{name}" in inputs["DOCKER_IMAGE"]["description"], job.name


def test_each_runtime_pin_lives_once_and_the_prep_pins_leave_out_training():
    prep = requirement_pins("requirements-prep.txt")
    train = requirement_pins("requirements-train.txt")
    assert prep and train and not prep.keys() & train.keys()
    assert not prep.keys() & NOT_FOR_PREP and NOT_FOR_PREP <= train.keys()
    # requirements.txt is both files, and they are the project's declared dependencies.
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert [x for x in lines if x and not x.startswith("#")] == [
        "-r requirements-prep.txt",
        "-r requirements-train.txt",
    ]
    dynamic = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    files = dynamic["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert files == ["requirements-prep.txt", "requirements-train.txt"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_what_would_write_under_home_goes_to_tmp(name):
    """With a read-only root filesystem only /tmp is writable: Jupyter's runtime files,
    IPython's profile, matplotlib's and other caches, the log files all go there."""
    env = " ".join(a for k, a in instructions(DOCKER / name) if k == "ENV")
    for var in TMP_ENV:
        assert re.search(rf"\b{var}=/tmp/\S+", env), f"{name}: {var} is not under /tmp"


def _installs(name: str) -> list[tuple[str, list[str]]]:
    """(RUN arguments, its ``pip install`` commands) for each RUN of a Dockerfile that installs."""
    runs = [a for k, a in instructions(DOCKER / name) if k == "RUN" and "pip install" in a]
    return [(a, [" ".join(c.split()) for c in a.split("&&") if "pip install" in c]) for a in runs]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_install_is_a_lock_with_hashes_or_the_project_without_dependencies(name):
    commands = [c for _, cs in _installs(name) for c in cs]
    assert commands
    locks = {LOCK_INSTALL + lock for lock in LOCKS[name]}
    project = "pip install --no-cache-dir --no-deps -e ."
    assert set(commands) <= locks | {UV_INSTALL, project}, commands
    assert set(commands) >= locks
    assert "==" not in "".join(commands)  # no pin inline: each lives in an input


@pytest.mark.parametrize("name", DOCKERFILES)
def test_uv_is_installed_from_its_lock_for_one_run_and_left_out_of_the_image(name):
    """Each RUN that installs a lock with uv first installs uv (hash-checked, by the throwaway
    venv's own pip) into a venv under /tmp and removes that venv at its end: no layer holds uv."""
    runs = [(a, cs) for a, cs in _installs(name) if any(c.startswith(LOCK_INSTALL) for c in cs)]
    assert runs
    for args, commands in runs:
        steps = [" ".join(step.split()) for step in args.split("&&")]
        venv = steps.index(f"python -m venv {UV_VENV}")
        assert commands[0] == UV_INSTALL and steps.index(UV_INSTALL) == venv + 1, steps
        last_use = max(i for i, step in enumerate(steps) if step.startswith(UV_VENV))
        assert f"rm -rf {UV_VENV}" in steps[last_use + 1 :], steps
    # Nothing else runs or installs uv.
    text = "\n".join(a for k, a in instructions(DOCKER / name) if k == "RUN")
    assert text.count("uv pip install") == len(runs)
    assert all(w in {"/tmp/uv/bin/uv", "/tmp/uv/bin/pip"} for w in re.findall(r"\S*/uv/\S*", text))


def test_the_build_lock_holds_only_the_uv_that_scripts_setup_uses():
    pins = requirement_pins("requirements-build.txt")
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert (
        list(pins) == ["uv"] and f"install -q --disable-pip-version-check {pins['uv']}\n" in setup
    )


def test_the_gpu_image_adds_cuda_to_the_same_tensorflow():
    pin = re.search(r"^tensorflow==(\S+)$", (ROOT / "requirements-train.txt").read_text(), re.M)
    assert pin
    gpu = (ROOT / "requirements-gpu.txt").read_text(encoding="utf-8").split()
    assert gpu[-3:] == ["-r", "requirements.txt", f"tensorflow[and-cuda]=={pin.group(1)}"]
    cpu = (DOCKER / "model-training-cpu.Dockerfile").read_text(encoding="utf-8")
    assert "and-cuda" not in cpu and "nvidia" not in cpu.lower()


def _instructions(text: str) -> list[str]:
    """A Dockerfile's instructions, comments dropped and continuation lines joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.split(r"\n(?=[A-Z]+ )", "\n".join(lines)) if i.strip()]


def test_the_gpu_image_shares_the_cpu_images_dependency_layer():
    # The legacy builder reuses a cached layer when every instruction up to it is the same:
    # then a machine that builds both images downloads and installs TensorFlow once.
    cpu = _instructions((DOCKER / "model-training-cpu.Dockerfile").read_text(encoding="utf-8"))
    gpu = _instructions((DOCKER / "model-training-gpu.Dockerfile").read_text(encoding="utf-8"))
    deps = next(i for i, step in enumerate(cpu) if "-r requirements.lock" in step)
    assert gpu[: deps + 1] == cpu[: deps + 1]
    assert gpu[deps + 1] == "COPY requirements-gpu.lock ./"
    assert "--require-hashes -r requirements-gpu.lock" in gpu[deps + 2]


@pytest.mark.parametrize("name", RUNNER_DOCKERFILES)
def test_the_cmd_names_a_real_entry_point(name):
    steps = instructions(DOCKER / name)
    # tini (Debian's package, installed in the image) is PID 1: it forwards signals to the
    # process group (-g) and reaps orphans; the CMD runs under it.
    assert [json.loads(a) for k, a in steps if k == "ENTRYPOINT"] == [["/usr/bin/tini", "-g", "--"]]
    assert any(k == "RUN" and "apt-get install" in a and " tini=" in a for k, a in steps)
    cmds = [a for k, a in steps if k == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])  # exec form
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert (ROOT / module / "__main__.py").is_file() or (ROOT / f"{module}.py").is_file()
    result = subprocess.run(
        [sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: python -m runner" in result.stdout
