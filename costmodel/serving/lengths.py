"""Request lengths as a distribution, discretised into request classes (docs/serving.md §19.10).

Serving traces are far from one length: prompts and outputs spread over orders of magnitude, and
the tail of the latency distribution comes from the long ones. Two forms:

* **lognormal** with a mean and a coefficient of variation per length (input and output drawn
  independently): ``σ² = ln(1 + cv²)``, ``μ = ln(mean) - σ²/2``;
* **a file of (input, output) pairs** (a CSV of two columns, e.g. from a trace), their joint
  distribution kept.

Either becomes a mix of classes ``(weight, input, output)`` over bins of probability that are finer
in the tail (:data:`BIN_EDGES`): each bin is represented by its conditional mean, so the mean
length is kept exactly (a lognormal's conditional mean over ``(q_a, q_b)`` is
``mean·(Φ(z_b - σ) - Φ(z_a - σ))/(b - a)``, ``z`` the standard normal quantiles).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..limits import check_number, shown_value

__all__ = ["BIN_EDGES", "lognormal_classes", "classes_from_pairs", "read_lengths_csv", "MAX_EXACT_CLASSES"]

#: Edges of the bins of probability a length distribution is cut into: tenths, then finer in the tail
#: (the 95th, 98th, 99th, 99.5th and 99.9th percentiles), so that a P99 sees the long requests.
BIN_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)

#: A file with at most this many distinct (input, output) pairs keeps each as a class; more are binned.
MAX_EXACT_CLASSES = 256

#: Largest lengths file read (bytes): a trace of millions of requests fits well within it.
MAX_FILE_BYTES = 200_000_000


def _lognormal_bins(mean: float, cv: float) -> list[tuple[float, float]]:
    """``(probability, conditional mean)`` of each bin of :data:`BIN_EDGES` of a lognormal (one bin at cv 0)."""
    if cv == 0:
        return [(1.0, float(mean))]
    from scipy.special import ndtr, ndtri

    sigma = math.sqrt(math.log1p(cv * cv))
    z = ndtri(np.asarray(BIN_EDGES))  # -inf .. +inf
    mass = np.diff(ndtr(z - sigma))
    p = np.diff(BIN_EDGES)
    return [(float(pi), float(mean * mi / pi)) for pi, mi in zip(p, mass)]


def lognormal_classes(input_tokens: float, output_tokens: float, input_cv: float = 0.0,
                      output_cv: float = 0.0) -> list[tuple[float, float, float]]:
    """Classes ``(weight, input, output)`` of independent lognormal lengths with these means and coefficients of
    variation (0: a fixed length). A bin whose conditional mean is below one token is lifted to one."""
    for name, v in (("input_cv", input_cv), ("output_cv", output_cv)):
        check_number("length_cv", v, label=name)
    rows = []
    for wi, i in _lognormal_bins(input_tokens, input_cv):
        for wo, o in _lognormal_bins(output_tokens, output_cv):
            rows.append((wi * wo, max(i, 1.0), max(o, 1.0)))
    return rows


def classes_from_pairs(pairs: np.ndarray) -> list[tuple[float, float, float]]:
    """Classes ``(weight, input, output)`` of ``pairs`` (an ``(n, 2)`` array): each distinct pair with its share
    when there are at most :data:`MAX_EXACT_CLASSES`, else the joint counts over the bins of
    :data:`BIN_EDGES` of each length, each cell at its members' mean input and output."""
    pairs = np.asarray(pairs, dtype=float)
    distinct, counts = np.unique(pairs, axis=0, return_counts=True)
    if len(distinct) <= MAX_EXACT_CLASSES:
        return [(float(c) / len(pairs), float(i), float(o)) for (i, o), c in zip(distinct, counts)]
    cells = np.zeros(len(pairs), dtype=np.int64)
    for col in (0, 1):
        ranks = np.argsort(np.argsort(pairs[:, col], kind="stable"), kind="stable")
        bins = np.searchsorted(np.asarray(BIN_EDGES[1:-1]), (ranks + 0.5) / len(pairs), side="right")
        cells = cells * len(BIN_EDGES) + bins
    out = []
    for cell in np.unique(cells):
        members = pairs[cells == cell]
        out.append((len(members) / len(pairs), float(members[:, 0].mean()), float(members[:, 1].mean())))
    return out


def read_lengths_csv(path: str | os.PathLike) -> list[tuple[float, float, float]]:
    """The request classes of a CSV file of ``input,output`` token counts, one request a row.

    A first row that is not two numbers is a header (``input_tokens,output_tokens`` or ``input,output``, in
    that order). Every other row must hold two finite numbers within the token ranges; blank lines are
    skipped. Raises :class:`~costmodel.errors.ConfigError` naming the file and the line otherwise.
    """
    p = Path(path)
    where = f"lengths file {str(path)!r:.200}"
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ConfigError(f"{where} is not a file; give a CSV of input,output token counts")
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{where} is {size / 1e6:.0f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB read; "
                              "sample the requests or give their distribution (--isl-cv/--osl-cv)")
        text = p.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; give a CSV of input,output token counts") from None
    except OSError as e:
        raise ConfigError(f"cannot read {where}: {e.strerror or e}") from None
    rows = []
    try:
        reader = list(csv.reader(text.splitlines()))
    except csv.Error as e:
        raise ConfigError(f"{where} is not CSV: {e}") from None
    header_done = False
    for line_no, row in enumerate(reader, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        values = _two_numbers(cells)
        if values is None:
            if not header_done and not rows:
                header_done = True
                if [c.lower() for c in cells] not in (["input_tokens", "output_tokens"], ["input", "output"]):
                    raise ConfigError(f"{where}, line {line_no}: expected two numbers (input, output tokens) or the "
                                      f"header input_tokens,output_tokens, got {shown_value(row):.120}")
                continue
            raise ConfigError(f"{where}, line {line_no}: expected two numbers (input, output tokens), got "
                              f"{shown_value(row):.120}")
        try:
            check_number("input_tokens", values[0], label=f"{where}, line {line_no}: input tokens")
            check_number("output_tokens", values[1], label=f"{where}, line {line_no}: output tokens")
        except ConfigError as e:
            raise ConfigError(str(e)) from None
        rows.append(values)
    if not rows:
        raise ConfigError(f"{where} holds no requests; give one input,output row per request")
    return classes_from_pairs(np.array(rows))


def _two_numbers(cells: list[str]) -> tuple[float, float] | None:
    if len(cells) != 2:
        return None
    try:
        return float(cells[0]), float(cells[1])
    except ValueError:
        return None
