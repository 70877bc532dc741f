"""Logging set-up shared by notebooks and the runner (conf/logging.yml)."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

import yaml

from lib import paths


def setup_logging(
    config_path: str | Path | None = None,
    log_dir: str | Path | None = None,
    level: str | int | None = None,
) -> None:
    """Configure logging from ``conf/logging.yml``: JSON lines to stderr and rotating files.

    File handlers' relative file names are placed in ``log_dir`` (default ``logs/`` in the
    project root, or $LOG_DIR). If the config file is missing, fall back to basicConfig so a
    notebook never fails for want of logging.
    """
    config_path = Path(config_path) if config_path else paths.conf_dir() / "logging.yml"
    log_dir = Path(log_dir) if log_dir else paths.log_dir()
    if not config_path.is_file():
        logging.basicConfig(level=level or logging.INFO)
        logging.getLogger(__name__).warning("logging config %s not found", config_path)
        return
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    log_dir.mkdir(parents=True, exist_ok=True)
    for handler in config.get("handlers", {}).values():
        filename = handler.get("filename")
        if filename and not Path(filename).is_absolute():
            handler["filename"] = str(log_dir / filename)
    if level is not None:
        config.setdefault("root", {})["level"] = level
        for handler in config.get("handlers", {}).values():
            if handler.get("class") == "logging.StreamHandler":
                handler["level"] = level
    logging.config.dictConfig(config)
    from lib.secrets import SecretFilter

    secret_filter = SecretFilter()  # values follow the environment, read when a record comes
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
