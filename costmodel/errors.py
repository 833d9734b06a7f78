"""One exception hierarchy for every user-facing error.

Each message says what was given, what is allowed, and how to fix it. The CLI
prints the message on one line and exits with status 2; library callers catch
:class:`CostModelError` (or the built-in base it also derives from).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Iterable

__all__ = [
    "CostModelError",
    "UnknownNameError",
    "SpecError",
    "ConfigError",
    "PrecisionError",
    "keywords_checked",
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


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def keywords_checked(fn: Callable) -> Callable:
    """``fn`` whose call with an unknown keyword raises a :class:`ConfigError` naming the closest
    accepted one (a TypeError from inside ``fn`` passes through unchanged). Free on a good call."""
    names = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TypeError as e:
            m = _UNEXPECTED.search(str(e))
            if m is None or e.__traceback__ is None or e.__traceback__.tb_next is not None:
                raise  # not the call's own keywords
            close = difflib.get_close_matches(m[1], names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{fn.__name__}() has no argument {m[1]!r}{hint} Its arguments: "
                              f"{', '.join(names)}.") from None

    return call
