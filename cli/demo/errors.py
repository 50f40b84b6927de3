"""The demo's one error.

    ScenarioError    a step did not turn out as the story says (``step`` names it)
"""

from __future__ import annotations


class ScenarioError(Exception):
    """A step did not turn out as the story says; ``step`` names it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


__all__ = ["ScenarioError"]
