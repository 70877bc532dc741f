"""The terminal while a stage runs: which cell is executing, epochs, trials, reviews scored.

Every progress event is a log record of the logger ``runner.execution.console`` with the field
``progress`` (``"cell"``, ``"epoch"``, ``"trial"``, ``"reviews"``) and the event's own fields,
so it goes where the runner's other records go, in their format: plain lines on the console
by default, JSON lines with ``--log-format json`` (one stream, one format), JSON lines in the
log files always. On a terminal (stderr is a TTY, plain format) :class:`LiveConsole` shows
the cell being executed, or the reviews scored so far, on one line rewritten in place; every
other record, epochs and trials included, is a line of its own above it. Anywhere else (CI,
Polyaxon's job log) each event is a plain line, with no control characters.

The cells come from the runner's notebook client (``runner.execution.engine``); epochs and trials
from inside the kernel, as display messages that ``lib.core.progress`` sends.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from typing import Any

from lib.core.logs import FORMAT_ENV, FORMATS, LEVEL_ENV, env_format, setup_logging
from lib.core.progress import describe

log = logging.getLogger("runner.execution.console")

_CLEAR = "\r\x1b[2K"  # to the line's start, then erase it
# Records that replace the status line: the cell being run, and reviews scored (a batch
# sends one every few seconds: a line each would scroll the epochs and notices away).
_LIVE = ("cell", "reviews")


class LiveConsole(logging.StreamHandler):
    """A console handler for a terminal: ``progress`` "cell" and "reviews" records replace
    one status line in place; any other record is written above it, and the status line
    drawn again."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.status = ""
        self._write = threading.Lock()

    def _fit(self, text: str) -> str:
        # A wrapped line could not be rewritten with \r.
        width = shutil.get_terminal_size((100, 20)).columns
        line = text.splitlines()[0] if text else ""
        return line if len(line) < width else line[: max(width - 2, 1)] + "…"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            with self._write:
                if getattr(record, "progress", None) in _LIVE:
                    self.status = self._fit(text)
                    self.stream.write(_CLEAR + self.status)
                else:
                    self.stream.write((_CLEAR if self.status else "") + text + "\n" + self.status)
                self.flush()
        except Exception:
            self.handleError(record)

    def clear(self) -> None:
        """Erase the status line (before the stage's summary is printed)."""
        with self._write:
            if self.status:
                self.stream.write(_CLEAR)
                self.status = ""
                self.flush()


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _log_level(value: str) -> str:
    level = value.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise argparse.ArgumentTypeError(
            f"unknown log level {value!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return level


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``, the runner's options before its command."""
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=None,
        help=f"DEBUG (TensorFlow's C++ start-up lines, absl's notices too; also ${LEVEL_ENV}), "
        "INFO (default), WARNING, ...",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help=f"the console's: plain lines (default) or JSON lines (also ${FORMAT_ENV}=json)",
    )


def configure_console(level: str | None = None, fmt: str | None = None) -> None:
    """The runner's logging: ``lib.core.logs.setup_logging`` with ``level`` and ``fmt``, the
    level passed on to the kernels it starts ($IMDB_LOG_LEVEL), and on a terminal in the
    plain format the console handler made a :class:`LiveConsole`."""
    if level:
        os.environ[LEVEL_ENV] = level  # the kernels' setup_logging reads it
    setup_logging(level=level, fmt=fmt)
    if (fmt or env_format()) != "plain":
        return
    root = logging.getLogger()
    for index, handler in enumerate(root.handlers):
        if handler.name == "console" and isinstance(handler, logging.StreamHandler):
            if type(handler) is logging.StreamHandler and _is_tty(handler.stream):
                live = LiveConsole(handler.stream)
                live.name, live.level, live.formatter = (
                    handler.name,
                    handler.level,
                    handler.formatter,
                )
                live.filters = list(handler.filters)
                for attr, value in vars(handler).items():  # lib.core.logs' marker
                    if attr.startswith("_imdb"):
                        setattr(live, attr, value)
                root.handlers[index] = live


def clear_live_line() -> None:
    """Erase the status line of every :class:`LiveConsole` (a no-op elsewhere)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LiveConsole):
            handler.clear()


def _heading(source: str) -> str | None:
    for line in source.splitlines():
        if line.lstrip().startswith("#"):
            return line.lstrip().lstrip("#").strip() or None
    return None


class StageProgress:
    """The progress of one stage's execution, as ``runner.execution.console`` records."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._plan: dict[int, tuple[int, str | None]] = {}
        self.cells = 0

    def begin(self, cells: list[Mapping[str, Any]]) -> None:
        """Number the notebook's code cells and find each one's section: the last markdown
        heading above it."""
        heading = None
        self._plan, self.cells = {}, 0
        for index, cell in enumerate(cells):
            source = "".join(cell.get("source") or "")
            if cell.get("cell_type") == "markdown":
                heading = _heading(source) or heading
            elif cell.get("cell_type") == "code" and source.strip():
                self.cells += 1
                self._plan[index] = (self.cells, heading)

    def cell_started(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        """nbclient's ``on_cell_execute`` hook."""
        number, section = self._plan.get(cell_index, (None, None))
        if number is None:
            return
        log.info(
            "%s: cell %d/%d%s",
            self.stage,
            number,
            self.cells,
            f" ({section})" if section else "",
            extra={
                "progress": "cell",
                "stage": self.stage,
                "cell": number,
                "cells": self.cells,
                "section": section,
            },
        )

    def event(self, data: Mapping[str, Any]) -> None:
        """An event that ``lib.core.progress`` sent from inside the kernel."""
        kind = str(data.get("event") or "event")
        if kind == "notice":  # a line to keep on the console, not the live line
            log.warning("%s: %s", self.stage, describe(data), extra={"stage": self.stage})
            return
        fields = {k: v for k, v in data.items() if k != "event"}
        log.info(
            "%s: %s",
            self.stage,
            describe(data),
            extra={"progress": kind, "stage": self.stage, **fields},
        )
