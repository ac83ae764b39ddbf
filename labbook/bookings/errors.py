"""Refusals of the booking engine. Each names the rule it enforces (``rule``) and says in
plain words what went wrong, so the UI and the API can show it as is."""

from __future__ import annotations

from typing import Any

from labbook.errors import Conflict, Forbidden, ValidationError


class BookingRefused(ValidationError):
    """A policy rule refuses the booking (422). ``rule`` is machine-readable."""

    def __init__(self, rule: str, message: str, field: str = "start") -> None:
        super().__init__(message, {field: [message]})
        self.rule = rule
        self.extra["rule"] = rule


class NotAllowed(Forbidden):
    """The user may not do this (qualification, ownership, role): 403 with ``rule``."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, rule=rule)
        self.rule = rule


class BookingConflict(Conflict):
    """The time is taken (409). ``conflicts`` lists the clashing blocked intervals (details
    only where the viewer may see them); ``alternatives`` up to three free intervals of the
    same length nearby."""

    def __init__(
        self, message: str, conflicts: list[dict[str, Any]], alternatives: list[dict[str, Any]]
    ) -> None:
        super().__init__(message, conflicts=conflicts, alternatives=alternatives)
        self.conflicts = conflicts
        self.alternatives = alternatives
