# The CPU training image: runs notebooks/train.ipynb and notebooks/tune.ipynb through
# `python -m runner` (polyaxonfiles/train-model-cpu*.yml), and notebooks/infer.ipynb for batch
# scoring (polyaxonfiles/batch-infer.yml). Build from the project root:
#   docker build -f docker/model-training-cpu.Dockerfile -t IMAGE .
# tini is PID 1 (signals forwarded to the runner, orphaned kernels reaped); everything that
# would write under HOME (Jupyter, IPython, matplotlib, Keras, caches, logs) goes to /tmp, so
# that the pod's root filesystem can be read-only with only /tmp (an emptyDir) and the
# volumes writable. model-training-gpu.Dockerfile is this file with TensorFlow's CUDA
# libraries added; data-prep.Dockerfile is this file with only the prep stage's dependencies.
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
