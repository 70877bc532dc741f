"""Progress events from inside a notebook: Keras epochs as they finish, tuning trials,
reviews scored.

One mechanism: an event is a display message (``IPython.display.display``, raw) holding two
forms, ``text/plain`` (the readable line the notebook shows, in JupyterLab and in the
executed notebook) and :data:`MIME` (the event as JSON). The runner's notebook client
(``runner.execution.engine``) sees every display message on IOPub as it comes and hands the ones
with
:data:`MIME` to its progress display (``runner.execution.console``). Outside a kernel (a script, a
test) the event is logged at INFO instead.

Events are JSON mappings with ``event`` (``"epoch"``, ``"trial"``, ``"reviews"`` or ``"notice"``)
and their fields; see :func:`epoch_event`, :func:`trial_event`, :func:`reviews_event` and
:func:`notice_event`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from lib.core.logs import in_notebook_kernel

log = logging.getLogger(__name__)

MIME = "application/vnd.imdb-sentiment.progress+json"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epoch_event(
    epoch: int, epochs: int | None, logs: Mapping[str, Any], seconds: float | None = None
) -> dict[str, Any]:
    """The event of epoch ``epoch`` (1-based) of ``epochs`` finished, with its validation
    metrics (the ``val_*`` entries of Keras' logs), its training loss and, when given, how
    long it took (``seconds``)."""
    metrics = {k: v for k, v in ((k, _number(v)) for k, v in logs.items()) if v is not None}
    event = {
        "event": "epoch",
        "epoch": int(epoch),
        "epochs": int(epochs) if epochs else None,
        "loss": metrics.get("loss"),
        "val": {k: v for k, v in metrics.items() if k.startswith("val_")},
    }
    if seconds is not None:
        event["seconds"] = round(float(seconds), 4)
    return event


def trial_event(
    done: int, total: int | None, best: float | None, best_trial: int | None = None
) -> dict[str, Any]:
    """The event of a tuning trial finished: ``done`` of ``total`` trials, the best value so
    far and its trial number."""
    return {
        "event": "trial",
        "done": int(done),
        "total": int(total) if total else None,
        "best": _number(best),
        "best_trial": best_trial,
    }


def reviews_event(done: int, total: int | None, seconds: float) -> dict[str, Any]:
    """The event of reviews scored: ``done`` of ``total`` (None when unknown) in ``seconds``,
    with the reviews a second so far and, when the total is known, the seconds left at
    that rate."""
    per_s = done / seconds if seconds > 0 else None
    left = (max(total - done, 0) / per_s) if total and per_s else None
    return {
        "event": "reviews",
        "done": int(done),
        "total": int(total) if total else None,
        "per_s": round(per_s, 1) if per_s is not None else None,
        "left_s": round(left, 1) if left is not None else None,
    }


def notice_event(text: str) -> dict[str, Any]:
    """A line to keep, not a passing progress line: the runner prints it on its console
    (an interrupted study's way to resume)."""
    return {"event": "notice", "text": str(text)}


def describe(event: Mapping[str, Any]) -> str:
    """The event in words, one line (the notebook's ``text/plain``, the runner's line)."""
    if event.get("event") == "epoch":
        of = f"/{event['epochs']}" if event.get("epochs") else ""
        parts = [f"{k} {v:.4f}" for k, v in sorted((event.get("val") or {}).items())]
        if event.get("loss") is not None and not parts:
            parts = [f"loss {event['loss']:.4f}"]
        return f"epoch {event.get('epoch')}{of}" + (f": {', '.join(parts)}" if parts else "")
    if event.get("event") == "notice":
        return str(event.get("text", ""))
    if event.get("event") == "reviews":
        return _describe_reviews(event)
    if event.get("event") == "trial":
        of = f"/{event['total']}" if event.get("total") else ""
        line = f"trials {event.get('done')}{of} done"
        if event.get("best") is not None:
            which = f" (trial {event['best_trial']})" if event.get("best_trial") is not None else ""
            line += f", best so far {event['best']:.4f}{which}"
        return line
    return str(dict(event))


def _describe_reviews(event: Mapping[str, Any]) -> str:
    done, total = event.get("done") or 0, event.get("total")
    line = f"reviews {done:,}" + (f"/{total:,} ({100 * done / total:.0f}%)" if total else "")
    if event.get("per_s") is not None:
        line += f", {event['per_s']:,.0f} a second"
    if event.get("left_s") is not None:
        line += f", {_duration(event['left_s'])} left"
    return line


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def emit(event: Mapping[str, Any]) -> None:
    """Send ``event``: a display message in a kernel, else a log line (see the module)."""
    if not in_notebook_kernel():
        level = logging.WARNING if event.get("event") == "notice" else logging.INFO
        log.log(level, "%s", describe(event))
        return
    from IPython.display import display

    display({MIME: dict(event), "text/plain": describe(event)}, raw=True)


def epoch_callback() -> Any:
    """A Keras callback that emits an epoch event as each epoch ends, with the epoch's
    seconds from its start to its end: its training steps, its validation and the
    ``on_epoch_end`` of the callbacks before this one (``fit`` puts it last). Keras is
    imported here, not with this module: the tune notebook's kernel needs no Keras."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        """Emits :func:`epoch_event` at each epoch's end."""

        started: float | None = None

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            seconds = None if self.started is None else time.perf_counter() - self.started
            emit(epoch_event(epoch + 1, (self.params or {}).get("epochs"), logs or {}, seconds))

    return EpochProgress()
