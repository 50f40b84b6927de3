"""The demo's one error.

    ledger.errors.ImiError
    └── ScenarioError    a step did not turn out as the story says (``step`` names it)
"""

from __future__ import annotations

from ledger.errors import ImiError


class ScenarioError(ImiError):
    """A step did not turn out as the story says; ``step`` names it (also in ``context``)."""

    reason = "scenario-failed"

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}", context={"step": step})
        self.step = step


__all__ = ["ScenarioError"]
