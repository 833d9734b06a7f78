"""Run the calibration end to end and write a profile.

``costmodel calibrate MEASUREMENTS.json --out PROFILE.json`` refits
:data:`~costmodel.calibrate.fit.DEFAULT_PARAMS` to a user's measurement file (the
schema of ``data/measurements.json``); ``python -m costmodel.calibrate --out PATH`` refits
the packaged measurements (``--out`` the packaged profile's path rewrites it). Either fits every
record, cross-validates leaving one source out, and stores the values with their
bounds, meanings and the fit's provenance (records, date, loss, errors).
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import CaseSet
from .fit import DEFAULT_PARAMS, FIXED, Calibration, Param, calibrate_cases
from .records import load_cases

__all__ = ["calibrate", "profile_dict", "errors", "main", "ITERATIONS", "PACKAGED_PROFILE"]

#: Adam steps of every fit (the full fit converges by 600; the folds need more).
ITERATIONS = 1000
PACKAGED_PROFILE = Path(__file__).with_name("profiles") / "calibrated.json"


def errors(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Median and worst absolute percentage error (as fractions)."""
    ape = np.abs(np.asarray(predicted) / np.asarray(measured) - 1)
    return {"median_ape": float(np.median(ape)), "worst_ape": float(np.max(ape))}


def calibrate(params: Sequence[Param] = DEFAULT_PARAMS, *, iterations: int = ITERATIONS,
              cases: CaseSet | None = None, measurements: str | Path | None = None) -> tuple[Calibration, CaseSet]:
    """Fit and cross-validate on a measurement file (default: the packaged one).

    Returns:
        ``(calibration, cases)``: see :class:`~costmodel.calibrate.fit.Calibration`.

    Raises:
        ConfigError: a malformed file or record (one line naming the record).

    Example:
        >>> cal, cs = calibrate(iterations=50)          # doctest: +SKIP
        >>> cal.fit.values                               # doctest: +SKIP
    """
    cs = CaseSet(load_cases(measurements)) if cases is None else cases
    return calibrate_cases(cs, params, iterations=iterations), cs


def profile_dict(cal: Calibration, cs: CaseSet, *, name: str = "calibrated") -> dict[str, Any]:
    """The profile JSON of a calibration: fixed inputs, parameters, provenance."""
    fit = cal.fit
    return {
        "name": name,
        "about": "Efficiency parameters fitted to published measurements by costmodel.calibrate "
                 "(docs/calibration.md). Values are inside [lower, upper] by construction. The memory "
                 "rule in 'fixed' is vLLM's default (gpu_memory_utilization 0.9); --engine replaces it.",
        "fixed": dict(FIXED),
        "fallback_family": "nvidia-gpu",
        "parameters": [
            {"field": p.field, "family": p.family, "phase": p.phase, "value": float(v), "lower": p.lo,
             "upper": p.hi, "typical": p.typical, "meaning": p.meaning}
            for p, v in zip(fit.params, fit.values)
        ],
        "fit": {
            "records": [c.id for c in cs.cases],
            "sources": sorted(set(cal.groups)),
            "date": datetime.date.today().isoformat(),
            "optimizer": f"optax.adam(0.05), {fit.iterations} steps from the typical values; each source "
                         "weighs the same",
            "loss": fit.loss,
            "in_sample": errors(fit.predicted, cs.measured),
            # undefined with one source: nothing is left to fit on when it is left out
            "leave_one_source_out": (errors(cal.cv_predicted, cs.measured) if len(set(cal.groups)) > 1
                                     else {"median_ape": None, "worst_ape": None}),
        },
    }


def summary(d: dict[str, Any], out: Path) -> list[str]:
    """The lines ``costmodel calibrate`` prints: each parameter, the errors, where the profile went."""
    lines = [f"{p['field']}[{p['family']},{p['phase']}]: {p['value']:.4g} (bounds {p['lower']:g} to {p['upper']:g})"
             for p in d["parameters"]]
    f = d["fit"]
    lines.append(f"records: {len(f['records'])}, sources: {len(f['sources'])}")
    lines.append(f"in-sample median APE: {100 * f['in_sample']['median_ape']:.1f} %")
    if len(f["sources"]) > 1:
        lines.append(f"leave-one-source-out median APE: {100 * f['leave_one_source_out']['median_ape']:.1f} %")
    lines.append(f"wrote {out} (use it with --efficiency {out})")
    return lines


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or int(text) > 100_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 100000, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Refit the packaged measurements and write the profile to ``--out`` (``python -m costmodel.calibrate``).

    ``--out`` is required: the packaged profile is a tracked file, rewritten only when named
    (``--out costmodel/calibrate/profiles/calibrated.json``)."""
    ap = argparse.ArgumentParser(prog="python -m costmodel.calibrate", description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--out", type=Path, required=True,
                    help="where to write the profile JSON (costmodel/calibrate/profiles/calibrated.json in a "
                         "checkout rewrites the packaged profile)")
    ap.add_argument("--iterations", type=_positive_int, default=ITERATIONS, help="optimiser steps (default %(default)s)")
    args = ap.parse_args(argv)
    cal, cs = calibrate(iterations=args.iterations)
    d = profile_dict(cal, cs)
    from ..files import write_text_atomic

    write_text_atomic(args.out, json.dumps(d, indent=1, allow_nan=False) + "\n")
    print("\n".join(summary(d, args.out)))
    return 0
