"""runner.execution.console: the progress display while a stage runs, checked in a
pseudo-terminal (the status line rewritten in place), in a pipe (plain lines, no control
characters) and as JSON lines.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
import textwrap

import pytest

from lib.core.progress import describe, notice_event
from runner.execution.console import StageProgress
from tests.support.runner_process import CONTROL, PLAIN, ROOT, console_env

CELLS = [
    {"cell_type": "markdown", "source": "Intro, no heading"},
    {"cell_type": "code", "source": "x = 1"},
    {"cell_type": "markdown", "source": "some text\n## Training the model\n"},
    {"cell_type": "code", "source": "   "},  # empty: not executed, not counted
    {"cell_type": "code", "source": "fit()"},
]

# Drives the display as an execution would: two cells, an epoch between them, a trial.
SCRIPT = textwrap.dedent(
    """
    import sys
    from runner.execution.console import StageProgress, clear_live_line, configure_console
    configure_console(fmt=sys.argv[1] if len(sys.argv) > 1 else None)
    progress = StageProgress("train")
    progress.begin(CELLS)
    progress.cell_started(cell_index=1)
    progress.event({"event": "epoch", "epoch": 1, "epochs": 2, "loss": 0.7,
                    "val": {"val_accuracy": 0.8125, "val_loss": 0.5}})
    progress.cell_started(cell_index=4)
    progress.event({"event": "trial", "done": 3, "total": 10, "best": 0.87, "best_trial": 1})
    clear_live_line()
    print("summary", file=sys.stderr)
    """
).replace("CELLS", repr(CELLS))


def test_cells_are_numbered_among_code_cells_with_their_section():
    progress = StageProgress("train")
    progress.begin(CELLS)
    assert progress.cells == 2
    assert progress._plan == {1: (1, None), 4: (2, "Training the model")}


def test_in_a_terminal_the_cell_line_is_rewritten_and_events_stay(tmp_path):
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=console_env(tmp_path, COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    clear = "\r\x1b[2K"
    # The status line: written in place, with no newline of its own.
    assert re.search(
        re.escape(clear) + r"\d\d:\d\d:\d\d INFO runner\.execution\.console: train: cell 1/2", out
    )
    assert "train: cell 2/2 (Training the model)" in out
    # The epoch and the trial: lines of their own, above the status line drawn again.
    epoch = re.search(r"train: epoch 1/2: val_accuracy 0\.8125, val_loss 0\.5000\r?\n", out)
    assert epoch
    assert re.search(r"train: trials 3/10 done, best so far 0\.8700 \(trial 1\)\r?\n", out)
    # Cleared before what follows: the summary starts a clean line.
    assert out.rstrip().endswith(clear + "summary")
    assert "{" not in out


def test_in_a_pipe_every_event_is_a_plain_line_without_control_characters(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=console_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not CONTROL.search(result.stderr)
    assert [line.split(": ", 1)[1] for line in lines[:-1]] == [
        "train: cell 1/2",
        "train: epoch 1/2: val_accuracy 0.8125, val_loss 0.5000",
        "train: cell 2/2 (Training the model)",
        "train: trials 3/10 done, best so far 0.8700 (trial 1)",
    ]
    assert all(PLAIN.match(line) for line in lines[:-1]) and lines[-1] == "summary"
    # The log file has them as JSON records, with their fields.
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "info.log").read_text().splitlines()
    ]
    epoch = next(r for r in records if r.get("progress") == "epoch")
    assert epoch["epoch"] == 1 and epoch["val"]["val_accuracy"] == 0.8125


@pytest.mark.parametrize("how", ["option", "environment"])
def test_json_asked_for_gives_json_lines_only_even_in_a_terminal(tmp_path, how):
    args = ["json"] if how == "option" else []
    extra = {} if how == "option" else {"IMDB_LOG_FORMAT": "json"}
    main, secondary = pty.openpty()  # a terminal: still no status line, no control codes
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace('print("summary", file=sys.stderr)', ""), *args],
        cwd=ROOT,
        env=console_env(tmp_path, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
        timeout=60,
    )
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert result.returncode == 0
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["progress"] for r in records] == ["cell", "epoch", "cell", "trial"]
    assert records[2]["section"] == "Training the model" and records[3]["best"] == 0.87


def test_a_notice_is_a_line_to_keep_on_the_console_not_a_progress_line(caplog):
    event = notice_event("tuning interrupted: run the same command again to resume")
    assert describe(event) == "tuning interrupted: run the same command again to resume"
    with caplog.at_level(logging.INFO, logger="runner.execution.console"):
        StageProgress("tune").event(event)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and not hasattr(record, "progress")
    assert record.getMessage() == f"tune: {describe(event)}"


# A batch's reviews scored: on a terminal they replace the status line, as a cell does.
SCORING = textwrap.dedent(
    """
    import sys
    from runner.execution.console import StageProgress, clear_live_line, configure_console
    configure_console()
    progress = StageProgress("infer")
    progress.begin([{"cell_type": "code", "source": "score()"}])
    progress.cell_started(cell_index=0)
    progress.event({"event": "reviews", "done": 4096, "total": 8192, "per_s": 2048.0,
                    "left_s": 2.0})
    progress.event({"event": "notice", "text": "reviews longer than the model reads"})
    progress.event({"event": "reviews", "done": 8192, "total": 8192, "per_s": 2048.0,
                    "left_s": 0.0})
    clear_live_line()
    print("summary", file=sys.stderr)
    """
)


def test_in_a_terminal_reviews_scored_rewrite_the_status_line(tmp_path):
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCORING],
        cwd=ROOT,
        env=console_env(tmp_path, COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = out.decode()
    clear = "\r\x1b[2K"
    done = "infer: reviews 4,096/8,192 (50%), 2,048 a second, 2 s left"
    # Written in place (no newline of its own), then drawn again under the notice's line.
    assert re.search(re.escape(clear) + r"[^\n]*" + re.escape(done) + re.escape(clear), text)
    assert re.search(
        r"infer: reviews longer than the model reads\r?\n[^\n]*" + re.escape(done), text
    )
    assert "infer: reviews 8,192/8,192 (100%), 2,048 a second, 0 s left" in text
    assert not re.search(r"reviews [\d,/]+ \(\d+%\)[^\r\n]*\r?\n", text)  # never a line
