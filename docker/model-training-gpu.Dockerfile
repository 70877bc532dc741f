# The GPU training image: runs notebooks/train.ipynb and notebooks/tune.ipynb through
# `python -m runner` (polyaxonfiles/train-model-gpu*.yml). Build from the project root:
#   docker build -f docker/model-training-gpu.Dockerfile -t IMAGE .
# This is model-training-cpu.Dockerfile plus TensorFlow's CUDA libraries, which come as pip
# wheels (tensorflow[and-cuda] in requirements-gpu.txt, locked in requirements-gpu.lock): the
# base image needs no CUDA toolkit, only the node's NVIDIA driver, which the NVIDIA container
# runtime mounts.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GIT_PYTHON_REFRESH=quiet \
    MPLBACKEND=Agg \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/aisg \
    PROJECT_ROOT=/home/aisg/project \
    LOG_DIR=/tmp/logs \
    JUPYTER_RUNTIME_DIR=/tmp/jupyter/runtime \
    JUPYTER_DATA_DIR=/tmp/jupyter/data \
    IPYTHONDIR=/tmp/ipython \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    XDG_CONFIG_HOME=/tmp/config \
    KERAS_HOME=/tmp/keras

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# tini: PID 1 that forwards signals to the runner and reaps orphaned kernel processes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1* \
    && rm -rf /var/lib/apt/lists/*

# The non-root user the pods run as (securityContext runAsUser 2222 in the polyaxonfiles).
RUN groupadd --gid 2222 aisg \
    && useradd --uid 2222 --gid 2222 --create-home --home-dir /home/aisg --shell /bin/bash aisg \
    && mkdir -p /home/aisg/project \
    && chown 2222:2222 /home/aisg/project

WORKDIR /home/aisg/project

# Dependencies first: this layer is rebuilt only when the train role's lock changes (or the
# build lock). Every package pinned and hashed (docs/dependencies.md): uv installs the lock
# with --require-hashes, about twice as fast as pip; uv itself comes from
# requirements-build.lock, hash-checked by pip, in a venv under /tmp that this RUN removes,
# so that uv is no part of the image. --compile-bytecode: unlike pip, uv compiles only when
# asked, and the pods (read-only root, PYTHONDONTWRITEBYTECODE) would never write the .pyc
# files. --system-certs: trust the system's CA store (as Debian's pip does), not uv's own.
COPY requirements-build.lock requirements.lock ./
RUN python -m venv "$VIRTUAL_ENV" \
    && python -m venv /tmp/uv \
    && /tmp/uv/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && /tmp/uv/bin/uv pip install --no-cache --compile-bytecode --system-certs \
        --python "$VIRTUAL_ENV/bin/python" --require-hashes -r requirements.lock \
    && rm -rf /tmp/uv

# Up to here this file is model-training-cpu.Dockerfile, so a machine that builds both holds
# that dependency layer once (tests/system/test_dockerfiles.py keeps them equal). Then the GPU role's
# lock: the train lock's packages at the same versions (installed already) plus TensorFlow's
# CUDA libraries, installed as the train lock (uv again, from the build lock, removed after).
COPY requirements-gpu.lock ./
RUN python -m venv /tmp/uv \
    && /tmp/uv/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && /tmp/uv/bin/uv pip install --no-cache --compile-bytecode --system-certs \
        --python "$VIRTUAL_ENV/bin/python" --require-hashes -r requirements-gpu.lock \
    && rm -rf /tmp/uv
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    TF_FORCE_GPU_ALLOW_GROWTH=true

# The project, installed editable (without dependencies: the lock holds them) so that
# /home/aisg/project is the code that runs; its metadata reads the two requirements files.
# The serving lock is what a logged model records as its requirements
# (lib.tracking.model_requirements): copied, not installed.
COPY --chown=2222:2222 requirements-prep.txt requirements-train.txt pyproject.toml README.md ./
COPY --chown=2222:2222 requirements-serve.lock ./
COPY --chown=2222:2222 lib ./lib
COPY --chown=2222:2222 runner ./runner
# The review page (python -m runner app, polyaxonfiles/review-page.yml).
COPY --chown=2222:2222 app ./app
COPY --chown=2222:2222 conf ./conf
COPY --chown=2222:2222 notebooks ./notebooks
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" \
    && chown -R 2222:2222 /home/aisg/project \
    && python -m runner --help > /dev/null \
    && python -c "from jupyter_client.kernelspec import find_kernel_specs as k; assert 'python3' in k()"

USER 2222:2222

ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["python", "-m", "runner", "--help"]
