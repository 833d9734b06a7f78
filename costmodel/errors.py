"""One exception hierarchy for every user-facing error.

Each message says what was given, what is allowed, and how to fix it. The CLI
prints the message on one line and exits with status 2; library callers catch
:class:`CostModelError` (or the built-in base it also derives from).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CostModelError",
    "UnknownNameError",
    "SpecError",
    "ConfigError",
    "PrecisionError",
]


class CostModelError(Exception):
    """Base class of every error raised on bad input."""


class UnknownNameError(CostModelError, KeyError):
    """A model, chip or option name that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SpecError(CostModelError, ValueError):
    """A model or hardware specification (file or object) that is malformed."""


class ConfigError(CostModelError, ValueError):
    """A workload or parallel configuration that is out of range."""


class PrecisionError(CostModelError, ValueError):
    """A precision that is unknown or that the chip cannot compute in."""


def unknown_name(kind: str, given: str, valid: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an :class:`UnknownNameError` listing the valid names and the closest match."""
    valid = sorted(valid)
    prefixed = [v for v in valid if v.startswith(given.lower())] if given else []
    close = prefixed[:1] or difflib.get_close_matches(given.lower(), valid, n=1, cutoff=0.5)
    msg = f"unknown {kind} {given!r}"
    if close:
        msg += f"; did you mean {close[0]!r}?"
    msg += f" Valid {kind} names: {', '.join(valid)}."
    if hint:
        msg += f" {hint}"
    return UnknownNameError(msg)
