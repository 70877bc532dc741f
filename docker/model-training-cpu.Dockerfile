# The CPU training image: runs notebooks/train.ipynb and notebooks/tune.ipynb through
# `python -m runner` (polyaxonfiles/train-model-cpu*.yml). Build from the project root:
#   docker build -f docker/model-training-cpu.Dockerfile -t IMAGE .
# model-training-gpu.Dockerfile is this file with TensorFlow's CUDA libraries added;
# data-prep.Dockerfile is this file for the prep stage.
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
    PROJECT_ROOT=/home/aisg/project

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The non-root user the pods run as (securityContext runAsUser 2222 in the polyaxonfiles).
RUN groupadd --gid 2222 aisg \
    && useradd --uid 2222 --gid 2222 --create-home --home-dir /home/aisg --shell /bin/bash aisg \
    && mkdir -p /home/aisg/project \
    && chown 2222:2222 /home/aisg/project

WORKDIR /home/aisg/project

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
# psycopg2-binary: the PostgreSQL driver for a shared Optuna storage (postgresql://...).
COPY requirements.txt ./
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir -r requirements.txt psycopg2-binary==2.9.13

# The project, installed editable so that /home/aisg/project is the code that runs.
COPY --chown=2222:2222 pyproject.toml README.md ./
COPY --chown=2222:2222 lib ./lib
COPY --chown=2222:2222 runner ./runner
COPY --chown=2222:2222 conf ./conf
COPY --chown=2222:2222 notebooks ./notebooks
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" \
    && chown -R 2222:2222 /home/aisg/project \
    && python -m runner --help > /dev/null \
    && python -c "from jupyter_client.kernelspec import find_kernel_specs as k; assert 'python3' in k()"

USER 2222:2222

CMD ["python", "-m", "runner", "--help"]
