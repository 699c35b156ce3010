"""The one error a shapes file raises."""

from __future__ import annotations

__all__ = ["SpecError"]


class SpecError(ValueError):
    """A shapes file that cannot be used; the message names the file, entry and field."""
