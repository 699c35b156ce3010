"""The one error a shapes file raises, and the rule for quoting a user's value in a message."""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["QUOTE_LIMIT", "SpecError", "did_you_mean", "quote"]

# The most characters a message quotes of one value: a value from a file can be unbounded (a
# YAML alias bomb prints as gigabytes), so a message never echoes it whole.
QUOTE_LIMIT = 80

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxstring = _repr.maxother = QUOTE_LIMIT
_repr.maxlong = 40


class SpecError(ValueError):
    """A shapes file that cannot be used; the message names the file, entry and field."""


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) cut to at most `limit` characters (with '...' where it was cut)."""
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(name: str, names: list[str]) -> str:
    """ "; did you mean 'a', 'b'?" with the names closest to `name`, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
