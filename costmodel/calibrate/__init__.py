"""Calibration: fit the model's efficiency parameters to published measurements.

* :mod:`.records`: the measurement set (``data/measurements.json``) mapped to configurations.
* :mod:`costmodel.efficiency` (JAX-free, below this package): profiles as data (``profiles/*.json``)
  and :func:`resolve`, which gives the :class:`~costmodel.config.Efficiency` (collective latency
  included) for a chip and a phase.
* :mod:`.fit`: the parameters, the optax fit on log-error and leave-one-source-out validation.
* :mod:`.evaluate`: :class:`CaseSet`, every record's metric (step, stream, prefill, static batch,
  offline throughput, TTFT, prefill pool) as one vectorised, differentiable function.
* :mod:`.run`: :func:`calibrate`, which fits, cross-validates and writes a profile
  (``python -m costmodel.calibrate`` for the packaged one, ``costmodel calibrate FILE`` for a
  user's measurements).

Importing this package does not import JAX; the fitting names load on first use.
"""

from .._lazy import lazy_getattr
from ..efficiency import Calibrated, Profile, family_of, list_profiles, load_profile, resolve, resolve_efficiency
from .records import Case, load_cases, load_records

_LAZY = {
    "CaseSet": "evaluate",
    "Param": "fit",
    "DEFAULT_PARAMS": "fit",
    "fit": "fit",
    "calibrate_cases": "fit",
    "calibrate": "run",
    "profile_dict": "run",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["Calibrated", "Case", "CaseSet", "DEFAULT_PARAMS", "Param", "Profile", "calibrate",
           "calibrate_cases", "family_of", "fit", "list_profiles", "load_cases", "load_profile",
           "load_records", "profile_dict", "resolve", "resolve_efficiency"]
