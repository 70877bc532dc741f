"""Logging set-up shared by notebooks and the runner (conf/logging.yml)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import logging.config
import os
import sys
from pathlib import Path

import yaml

from lib.core import paths
from lib.core.secrets import SecretFilter

_OURS = "_imdb_sentiment_handler"  # marks the handlers this module installed

# Read when setup_logging is given no level/format: the runner sets them for the kernels it
# starts (``--log-level``, ``--log-format``); a user sets them for plain papermill and
# JupyterLab (``IMDB_LOG_LEVEL=DEBUG jupyter lab`` shows TensorFlow's C++ start-up lines).
LEVEL_ENV = "IMDB_LOG_LEVEL"
FORMAT_ENV = "IMDB_LOG_FORMAT"
FORMATS = ("plain", "json")


def env_level() -> str | None:
    """$IMDB_LOG_LEVEL as a level name, None if unset or not a level."""
    value = os.environ.get(LEVEL_ENV, "").strip().upper()
    return value if isinstance(logging.getLevelName(value), int) else None


def env_format() -> str:
    """$IMDB_LOG_FORMAT: ``json`` or ``plain`` (the default, and for any other value)."""
    value = os.environ.get(FORMAT_ENV, "").strip().lower()
    return value if value in FORMATS else "plain"


def setup_logging(
    config_path: str | Path | None = None,
    log_dir: str | Path | None = None,
    level: str | int | None = None,
    fmt: str | None = None,
) -> None:
    """Configure logging from ``conf/logging.yml``: JSON lines to rotating files always; on
    the console (stderr) plain lines for a person, or JSON lines when ``fmt`` (default
    $IMDB_LOG_FORMAT) is ``json``. Inside a notebook kernel the console is always plain
    (information on stdout, warnings and errors on stderr: the file's ``notebook_console``).
    ``level`` (default $IMDB_LOG_LEVEL, else the file's) is the console's; at DEBUG the
    loggers marked ``quiet`` in the file (absl's warnings) are shown too.

    File handlers' relative file names are placed in ``log_dir`` (default ``logs/`` in the
    project root, or $LOG_DIR). Calling it again replaces only the handlers it installed:
    unlike ``logging.config.dictConfig``, it never closes handlers that other libraries
    (TensorFlow's absl, Jupyter) own. Every handler masks secret values. If the config file
    is missing, fall back to basicConfig so a notebook never fails for want of logging.
    """
    config_path = Path(config_path) if config_path else paths.conf_dir() / "logging.yml"
    log_dir = Path(log_dir) if log_dir else paths.log_dir()
    if not config_path.is_file():
        logging.basicConfig(level=level or logging.INFO)
        logging.getLogger(__name__).warning("logging config %s not found", config_path)
        return
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    level = level if level not in (None, "") else env_level()
    fmt = fmt or env_format()
    debug = level is not None and logging.getLevelName(level) == logging.DEBUG
    # Read by MLflow as it is imported: its loggers then keep no stderr handler of their own.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    optuna_through_ours()
    log_dir.mkdir(parents=True, exist_ok=True)
    for handler in config.get("handlers", {}).values():
        filename = handler.get("filename")
        if filename and not Path(filename).is_absolute():
            handler["filename"] = str(log_dir / filename)
        if level is not None and handler.get("class") == "logging.StreamHandler":
            handler["level"] = level
        if fmt == "json" and handler.get("class") == "logging.StreamHandler":
            handler["formatter"] = "json"

    configurator = logging.config.DictConfigurator(config)
    formatters = configurator.config.get("formatters", {})
    for name in list(formatters):
        formatters[name] = configurator.configure_formatter(formatters[name])
    secret_filter = SecretFilter()  # values follow the environment, read when a record comes
    handlers = {}
    handler_specs = configurator.config.get("handlers", {})
    for name in list(handler_specs):
        # Item access (not .items()) makes the config convert values such as ext://sys.stderr.
        handler = configurator.configure_handler(handler_specs[name])
        handler.name = name
        handler.addFilter(secret_filter)
        setattr(handler, _OURS, True)
        handlers[name] = handler

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    root_spec = config.get("root", {})
    notebook = config.get("notebook_console")
    for name in root_spec.get("handlers", []):
        if name == "console" and notebook and in_notebook_kernel():
            for handler in _notebook_console(handlers[name], notebook, formatters, secret_filter):
                root.addHandler(handler)
        else:
            root.addHandler(handlers[name])
    root.setLevel(level or root_spec.get("level", "INFO"))
    for name, spec in config.get("loggers", {}).items():
        logger = logging.getLogger(name)
        if "level" in spec:
            logger.setLevel("NOTSET" if debug and spec.get("quiet") else spec["level"])
        if spec.get("take_over"):
            logger.handlers = [h for h in logger.handlers if getattr(h, _OURS, False)]
            logger.propagate = True


def in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (JupyterLab's, or one papermill started)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def _notebook_console(
    console: logging.Handler,
    spec: dict,
    formatters: dict,
    secret_filter: logging.Filter,
) -> list[logging.Handler]:
    """The console handler's two stand-ins in a kernel, at its level: records below
    ``stdout_below`` to stdout, the others to stderr, both in ``spec["formatter"]``."""
    below = logging.getLevelName(spec.get("stdout_below", "WARNING"))
    info = logging.StreamHandler(sys.stdout)
    info.setLevel(console.level)
    info.addFilter(_Below(below))
    problems = logging.StreamHandler(sys.stderr)
    problems.setLevel(max(below, console.level))
    console.close()
    for name, handler in (("console", info), ("console_problems", problems)):
        handler.name = name
        handler.setFormatter(formatters[spec["formatter"]])
        handler.addFilter(secret_filter)
        setattr(handler, _OURS, True)
    return [info, problems]


def optuna_through_ours() -> None:
    """Have Optuna log through the root logger's handlers: it gives its logger a stderr
    handler of its own (colour codes, propagation off) the first time one of its modules
    logs, so this uses its public switches now if it is imported, else as soon as
    ``optuna.logging`` is (before any other Optuna module has logged)."""
    optuna_logging = sys.modules.get("optuna.logging")
    if optuna_logging is not None:
        optuna_logging.disable_default_handler()
        optuna_logging.enable_propagation()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("optuna.logging", optuna_through_ours))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then()`` once the module ``name`` has been executed (one shot)."""

    def __init__(self, name: str, then) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute, then = spec.loader.exec_module, self.then

        def exec_module(module) -> None:
            execute(module)
            then()

        spec.loader.exec_module = exec_module
        return spec
