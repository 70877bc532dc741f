"""Post-execution hooks that the runner applies to every stage execution."""

from __future__ import annotations

from runner.execute import PostHook


def default_hooks() -> list[PostHook]:
    """Hooks run after each execution, success or failure (tracking adds its own)."""
    return []
