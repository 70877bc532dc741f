# The serving image: the project's scoring server (`python -m runner serve`: MLflow's scoring
# app for a logged or registered model, with limits on what one client can take;
# docs/serving.md), as polyaxonfiles/serve-model.yml runs it:
#   docker build -f docker/model-serving.Dockerfile -t IMAGE .
#   docker run -p 5000:5000 -e MLFLOW_TRACKING_URI=... IMAGE \
#     python -m runner serve --model models:/imdb-sentiment@champion --host 0.0.0.0
# Only what scoring needs (requirements-serve.lock): no Jupyter, papermill, Optuna or other
# training tools. The project's lib and runner are copied in, not installed (the project's
# metadata would name the training requirements); `python -m runner serve` imports only what
# scoring needs of them, which tests/system/test_serving_container.py checks in the image.
# As the other images: tini as PID 1, user 2222, and everything that would write under
# HOME pointed at /tmp, so that the pod's root filesystem can be read-only with only /tmp (an
# emptyDir) writable; the server downloads the model to a temporary folder there.
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
    LOG_DIR=/tmp/logs \
    JUPYTER_RUNTIME_DIR=/tmp/jupyter/runtime \
    JUPYTER_DATA_DIR=/tmp/jupyter/data \
    IPYTHONDIR=/tmp/ipython \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    XDG_CONFIG_HOME=/tmp/config \
    KERAS_HOME=/tmp/keras \
    TMPDIR=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONPATH=/opt/imdb

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# tini: PID 1 that forwards signals to the server and reaps orphaned processes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1* \
    && rm -rf /var/lib/apt/lists/*

# The non-root user the pods run as (securityContext runAsUser 2222 in the polyaxonfile).
RUN groupadd --gid 2222 aisg \
    && useradd --uid 2222 --gid 2222 --create-home --home-dir /home/aisg --shell /bin/bash aisg

WORKDIR /home/aisg

# Dependencies only: this layer is rebuilt only when the serve role's lock (or the build
# lock) changes. As in model-training-cpu.Dockerfile: uv installs the lock, hash-checked and
# compiled to bytecode, and is itself installed hash-checked under /tmp and removed.
COPY requirements-build.lock requirements-serve.lock ./
RUN python -m venv "$VIRTUAL_ENV" \
    && python -m venv /tmp/uv \
    && /tmp/uv/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && /tmp/uv/bin/uv pip install --no-cache --compile-bytecode --system-certs \
        --python "$VIRTUAL_ENV/bin/python" --require-hashes -r requirements-serve.lock \
    && rm -rf /tmp/uv \
    && python -c "import keras, tensorflow, pandas, pyarrow, mlflow.pyfunc.scoring_server, uvicorn"

# The scoring server's code, importable from any folder (PYTHONPATH), compiled here: the root
# filesystem is read-only in the pod, so nothing could be compiled there.
COPY lib /opt/imdb/lib
COPY runner /opt/imdb/runner
RUN python -m compileall -q /opt/imdb \
    && python -m runner serve --help > /dev/null

USER 2222:2222

EXPOSE 5000

ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["python", "-m", "runner", "serve", "--help"]
