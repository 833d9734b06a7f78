"""Swept axes: explicit value lists for grids, distributions for random samples.

A grid sweep takes the cartesian product of value lists; a random sweep draws
each axis independently (uniform, log-uniform, or a uniform choice among
values). :func:`parse_axis` reads the command-line spellings ``1,2,4,8``,
``1:1024:log11`` (11 log-spaced points) and ``0.5:1:6`` (6 linear points).
This module imports NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..limits import RANGES, check_number

#: the most values one axis may list (a grid's size is the product of its axes; sweeps run in chunks)
MAX_AXIS_POINTS = 10_000_000

__all__ = ["Values", "Uniform", "LogUniform", "Axis", "as_axis", "parse_axis", "ALLOW_ZERO"]

#: inputs that may be swept down to zero (every other swept value must be > 0).
ALLOW_ZERO = frozenset({"kernel_overhead_s", "collective_latency_s", "attention_bias", "n_shared_experts"})


@dataclass(frozen=True)
class Values:
    """An explicit list of values: the grid points, or the choices of a random draw."""

    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Uniform:
    """Uniform on ``[low, high]`` (random sweeps only)."""

    low: float
    high: float


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on ``[low, high]``: uniform in ``log x`` (random sweeps only)."""

    low: float
    high: float


Axis = Values | Uniform | LogUniform


def _check_value(name: str, v: float) -> float:
    v = float(v)
    ok = math.isfinite(v) and (v >= 0 if name in ALLOW_ZERO else v > 0)
    if not ok:
        bound = ">= 0" if name in ALLOW_ZERO else "> 0"
        raise ConfigError(f"swept {name} must be finite and {bound}, got {v!r}; fix the axis values")
    if name in RANGES:  # the physical range of the input (costmodel.limits)
        check_number(name, v, label=f"swept {name}")
    return v


def as_axis(name: str, spec: object) -> Axis:
    """Normalise a user axis (a number, a sequence, an array or an :data:`Axis`), validating its values.

    Raises:
        ConfigError: an empty axis, a non-finite or non-positive value, or ``low > high``.
    """
    if isinstance(spec, (Uniform, LogUniform)):
        lo, hi = _check_value(name, spec.low), _check_value(name, spec.high)
        if lo > hi:
            raise ConfigError(f"axis {name}: low={lo:g} exceeds high={hi:g}; swap them")
        if isinstance(spec, LogUniform) and lo <= 0:
            raise ConfigError(f"axis {name}: a log-uniform axis needs low > 0, got {lo:g}")
        return spec
    if isinstance(spec, Values):
        spec = spec.values
    if isinstance(spec, (int, float, np.number)):
        spec = [spec]
    if not isinstance(spec, (Iterable, np.ndarray)) or isinstance(spec, (str, bytes, Mapping)):
        raise ConfigError(f"axis {name}: expected a list of numbers, Uniform or LogUniform, got {spec!r}")
    vals = np.asarray(list(np.ravel(np.asarray(spec, dtype=float))), dtype=float)
    if vals.size == 0:
        raise ConfigError(f"axis {name} is empty; give at least one value")
    return Values(tuple(_check_value(name, v) for v in vals))


def parse_axis(name: str, text: str) -> Values:
    """Parse a command-line axis.

    ``a,b,c`` lists values; ``lo:hi:N`` gives N linearly spaced points and
    ``lo:hi:logN`` N log-spaced points (both ends included).

    Example:
        >>> parse_axis("batch", "1:1024:log11").values[:4]
        (1.0, 2.0, 4.0, 8.0)

    Raises:
        ConfigError: the text is neither form, or a value is out of range.
    """
    hint = "use a list like 1,2,4,8 or a range like 1:1024:log11 (11 log-spaced points) or 0.5:1:6"
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            log = n.startswith("log")
            count = int(n[3:] if log else n)
            if count < 1:
                raise ValueError
            lo_f, hi_f = float(lo), float(hi)
        else:
            vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"axis {name}: {text!r} is not an axis; {hint}") from None
    if ":" in text:
        if count > MAX_AXIS_POINTS:
            raise ConfigError(f"axis {name}: {text}: {count:,} points is more than one axis may "
                              f"hold ({MAX_AXIS_POINTS:,}); use fewer points or a random sample")
        if log and (lo_f <= 0 or hi_f <= 0):
            raise ConfigError(f"axis {name}: {text}: a log range needs positive ends; {hint}")
        vals = np.geomspace(lo_f, hi_f, count) if log else np.linspace(lo_f, hi_f, count)
        if log:  # geomspace gives 2**k·(1 ± 1e-16); snap near-integers
            near = np.abs(vals - np.round(vals)) < 1e-9 * vals
            vals = np.where(near, np.round(vals), vals)
    return as_axis(name, vals)
