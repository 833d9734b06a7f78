"""End-to-end calibration through the operator-level step (docs/theory.md §20, docs/calibration.md).

The kernel fits (:mod:`.kernels`) set, for each chip with measured kernel tables, what no serving
record can see: tiles, floors, ramps, per-class efficiencies. What the kernel tables cannot see is
fitted here, on the published serving records, through the same operator step:

* how much of a kernel's measured fixed time remains when an engine replays the step from a CUDA
  graph (``graph_floor_fraction``: consecutive kernels of a graph overlap launch and tail, which a
  kernel timed on its own cannot);
* for chips without kernel tables (Gaudi, TPU, AMD), the efficiencies of their family, as the
  single-roofline calibration fits them;
* the weight-only dequantisation work, which no table measures.

Values a profile sets for a record's own chip (the kernel fits) are never replaced
(:class:`~costmodel.calibrate.fit.Basis`); a parameter applies to the records whose chip has no
value of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..efficiency import load_profile
from .evaluate import TUNABLE, CaseSet, on_operator_step, profile_values
from .fit import DEFAULT_PARAMS, Basis, Calibration, Param, calibrate_cases
from .records import load_cases

__all__ = ["OPERATOR_PARAMS", "operator_basis", "calibrate_operators"]

#: The end-to-end parameters of the operator step: the replay of kernel floors, then the single-roofline
#: calibration's own parameters (for the chips and formats the kernel tables do not cover).
OPERATOR_PARAMS: tuple[Param, ...] = (
    Param("graph_floor_fraction", "*", "*", 0.05, 1.0, 0.6,
          "fraction of a kernel's measured fixed time left in a step replayed from a CUDA graph (graph "
          "launch removes the host gaps and overlaps prologues with the previous kernel's tail: CUDA C++ "
          "Programming Guide, CUDA Graphs and programmatic dependent launch)"),
    *DEFAULT_PARAMS,
)


def operator_basis(cs: CaseSet, profile: str | Path = "kernels") -> Basis:
    """The :class:`~costmodel.calibrate.fit.Basis` of a profile: its values per case and phase, locked
    where the profile keys a value by the case's own chip."""
    p = load_profile(profile)
    own = {(q["field"], q["family"]) for q in p.parameters}
    locked = {ph: {f: np.array([(f, hw.name) in own for hw in cs.hardware]) for f in TUNABLE}
              for ph in ("decode", "prefill")}
    return Basis(f"profile:{p.name}", profile_values(cs, p), locked)


def calibrate_operators(*, iterations: int = 1000, measurements: str | Path | None = None,
                        profile: str | Path = "kernels") -> tuple[Calibration, CaseSet]:
    """Fit :data:`OPERATOR_PARAMS` over ``profile`` on the records (default: the packaged ones), each
    record on the operator step where its layout allows (:func:`~.evaluate.on_operator_step`), and
    cross-validate leaving one source out.

    Returns:
        ``(calibration, cases)``.
    """
    cs = CaseSet(on_operator_step(load_cases(measurements)))
    return calibrate_cases(cs, OPERATOR_PARAMS, iterations=iterations, basis=operator_basis(cs, profile)), cs
