"""Efficiency parameters: which exist, and how a profile sets them for a chip and a phase.

The parameters are the fields of :class:`~costmodel.config.Efficiency`
(:data:`EFFICIENCY_FIELDS`); a calibrated profile fits some of them. Profiles
are stored as data.

A profile is a JSON file (``profiles/calibrated.json`` is the packaged one)::

    {"name": ..., "fixed": {input: value}, "fallback_family": "nvidia-gpu",
     "parameters": [{"field", "family", "phase", "value", "lower", "upper", "typical", "meaning"}],
     "fit": {provenance: records, date, loss, errors}}

:func:`resolve` picks, for a chip and a phase, the most specific parameter of
each field (exact family beats ``"*"``, exact phase beats ``"*"``) and returns
the model inputs they set (:func:`specificity` is that rule). Importing this
module does not import JAX; :mod:`costmodel.inputs` resolves profile names with it.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .config import IDEAL, Efficiency
from .errors import ConfigError, unknown_name
from .specs import HardwareSpec
from .specs.catalog import load_hardware

__all__ = ["Profile", "Calibrated", "load_profile", "resolve", "resolve_efficiency", "family_of",
           "list_profiles", "specificity", "EFFICIENCY_FIELDS"]

#: The model inputs a profile (or a fit) may set: every numeric field of
#: :class:`~costmodel.config.Efficiency`, ``collective_latency_s`` included (it replaces the
#: chip's spec value).
EFFICIENCY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Efficiency) if f.name != "name")
_DIR = resources.files(__package__) / "calibrate" / "profiles"


def family_of(hw: HardwareSpec) -> str:
    """The chip family a profile keys parameters by: ``"nvidia-gpu"``, ``"tpu"``, ``"amd-gpu"`` or ``"other"``."""
    vendor = hw.vendor.lower()
    if vendor == "nvidia":
        return "nvidia-gpu"
    if vendor == "google" or hw.topology == "torus":
        return "tpu"
    return "amd-gpu" if vendor == "amd" else "other"


def specificity(family: str, phase: str, for_family: str, for_phase: str, for_chip: str = "") -> int:
    """How specifically a parameter keyed by ``family`` and ``phase`` applies to a chip family and
    phase: a chip's own name (``for_chip``; kernel fits are per chip) beats its family, an exact
    family beats ``"*"``, then an exact phase beats ``"*"`` (5 to 0); -1 when it does not apply.

    Example:
        >>> [specificity(f, p, "tpu", "decode") for f, p in (("tpu", "*"), ("*", "decode"), ("nvidia-gpu", "*"))]
        [2, 1, -1]
        >>> specificity("h200", "*", "nvidia-gpu", "decode", "h200")
        4
    """
    if phase not in (for_phase, "*"):
        return -1
    if for_chip and family == for_chip:
        return 4 + (phase == for_phase)
    if family not in (for_family, "*"):
        return -1
    return 2 * (family == for_family) + (phase == for_phase)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: fixed inputs, fitted parameters and the fit's provenance."""

    name: str
    fixed: dict[str, float]
    parameters: tuple[dict[str, Any], ...]
    fallback_family: str = ""
    fit: dict[str, Any] | None = None
    about: str = ""

    def lookup(self, field: str, family: str, phase: str, chip: str = "") -> float | None:
        """The most specific value of ``field`` for ``chip`` (a catalog name), ``family`` and ``phase``,
        or ``None``."""
        best, score = None, -1
        for p in self.parameters:
            s = specificity(p["family"], p["phase"], family, phase, chip) if p["field"] == field else -1
            if s > score:
                best, score = float(p["value"]), s
        return best


@dataclass(frozen=True)
class Calibrated:
    """What a profile sets for one chip and phase.

    Attributes:
        efficiency: the :class:`Efficiency` to predict with (it carries the collective latency too).
        collective_latency_s: replaces the chip's spec value when not ``None``.
    """

    efficiency: Efficiency
    collective_latency_s: float | None = None

    def hardware(self, hw: HardwareSpec) -> HardwareSpec:
        """``hw`` with the calibrated collective latency (unchanged when the profile sets none)."""
        return replace(self.efficiency, collective_latency_s=self.collective_latency_s).hardware(hw)

    def inputs(self, hw: HardwareSpec) -> dict[str, float]:
        """Model inputs (symbol name -> value) this calibration sets for ``hw``."""
        h = self.hardware(hw)
        return self.efficiency.inputs() | {"collective_latency_s": float(h.collective_latency_s),
                                           "collective_step_latency_s": float(h.collective_step_latency_s)}


def list_profiles() -> list[str]:
    """Names of the packaged profiles, plus ``"ideal"`` (the pure roofline)."""
    return sorted(["ideal"] + [p.name[:-5] for p in _DIR.iterdir() if p.name.endswith(".json")])


def _from_json(d: Any, where: str) -> Profile:
    _check_profile_json(d, where)
    try:
        return Profile(name=d["name"], fixed={k: float(v) for k, v in d.get("fixed", {}).items()},
                       parameters=tuple(d["parameters"]), fallback_family=d.get("fallback_family", ""),
                       fit=d.get("fit"), about=d.get("about", ""))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"efficiency profile {where} is malformed ({e}); it needs 'name' and "
                          "'parameters' [{field, family, phase, value}]") from None


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_profile_json(d: Any, where: str) -> None:
    """Raise a :class:`ConfigError` naming the first malformed entry of a profile's JSON."""
    bad = f"efficiency profile {where}"
    if not isinstance(d, dict):
        raise ConfigError(f"{bad} must hold a JSON object with 'name' and 'parameters', got a {type(d).__name__}")
    if not isinstance(d.get("name"), str):
        raise ConfigError(f"{bad}: 'name' must be a string, got {d.get('name')!r:.80}")
    fixed = d.get("fixed", {})
    if not isinstance(fixed, dict) or not all(_is_finite_number(v) for v in fixed.values()):
        raise ConfigError(f"{bad}: 'fixed' must map input names to finite numbers, got {fixed!r:.120}")
    for key in ("fallback_family", "about"):
        if not isinstance(d.get(key, ""), str):
            raise ConfigError(f"{bad}: {key!r} must be a string, got {d[key]!r:.80}")
    params = d.get("parameters")
    if not isinstance(params, list):
        raise ConfigError(f"{bad}: 'parameters' must be a list of {{field, family, phase, value}}, got {params!r:.80}")
    allowed = EFFICIENCY_FIELDS
    for i, p in enumerate(params):
        at = f"{bad}: parameters[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{at} must be an object {{field, family, phase, value}}, got {p!r:.80}")
        if p.get("field") not in allowed:
            raise ConfigError(f"{at}: field must be one of {', '.join(allowed)}, got {p.get('field')!r:.80}")
        if not isinstance(p.get("family"), str):
            raise ConfigError(f"{at}: family must be a chip family name or '*', got {p.get('family')!r:.80}")
        if p.get("phase") not in ("decode", "prefill", "*"):
            raise ConfigError(f"{at}: phase must be 'decode', 'prefill' or '*', got {p.get('phase')!r:.80}")
        if not _is_finite_number(p.get("value")):
            raise ConfigError(f"{at}: value of {p['field']} must be a finite number, got {p.get('value')!r:.80}")


@functools.cache
def _packaged(name: str) -> Profile:
    return _from_json(json.loads((_DIR / f"{name}.json").read_text()), f"{name!r}")


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """A packaged profile by name (``"calibrated"``), ``"ideal"``, or a profile JSON file by path.

    Raises:
        UnknownNameError: neither a packaged name nor an existing file.
        ConfigError: the file is malformed.
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    s = str(name_or_path)
    if s == "ideal":
        return Profile("ideal", {}, ())
    if s in list_profiles():
        return _packaged(s)
    path = Path(s)
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except (OSError, ValueError):  # a name too long for a path, or with a NUL byte
        is_file = is_dir = False
    if is_dir:
        raise ConfigError(f"efficiency profile {path} is a directory; pass a profile JSON file")
    if is_file:
        try:
            return _from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
        except json.JSONDecodeError as e:
            raise ConfigError(f"efficiency profile {path} is not valid JSON: {e}") from None
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            raise ConfigError(f"efficiency profile {path} cannot be read: {e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"efficiency profile {path} is not UTF-8 text (byte {e.start})") from None
        except RecursionError:
            raise ConfigError(f"efficiency profile {path} nests too deeply") from None
        except OSError as e:
            raise ConfigError(f"cannot read efficiency profile {path}: {e.strerror or e}") from None
    raise unknown_name("efficiency profile", s, list_profiles(), "Or pass the path of a profile JSON file.")


def resolve(profile: str | Path | Profile, hardware: str | HardwareSpec, phase: str = "decode") -> Calibrated:
    """The calibrated inputs of ``profile`` for one chip and phase.

    Args:
        profile: ``"ideal"``, ``"calibrated"``, a path, or a :class:`Profile`.
        hardware: a catalog chip name or a :class:`HardwareSpec`.
        phase: ``"decode"`` or ``"prefill"``.

    Returns:
        A :class:`Calibrated` (``.efficiency``, ``.collective_latency_s``, ``.hardware(hw)``).

    Example:
        >>> c = resolve("calibrated", "h100-sxm", "decode")
        >>> 0 < c.efficiency.hbm_efficiency <= 1
        True
    """
    if phase not in ("decode", "prefill"):
        raise ConfigError(f"phase must be 'decode' or 'prefill', got {phase!r}")
    p, hw = load_profile(profile), load_hardware(hardware)
    if p.name == "ideal" and not p.parameters:
        return Calibrated(IDEAL)
    family = family_of(hw)
    if p.fallback_family and not any(q["family"] == family for q in p.parameters):
        family = p.fallback_family
    vals: dict[str, Any] = dict(p.fixed)
    for f in EFFICIENCY_FIELDS:
        v = p.lookup(f, family, phase, hw.name)
        if v is not None:
            vals[f] = v
    eff = replace(IDEAL, name=p.name, **{k: v for k, v in vals.items() if k in EFFICIENCY_FIELDS})
    return Calibrated(eff, eff.collective_latency_s)


def resolve_efficiency(efficiency: str | Path | Profile | Efficiency, hardware: HardwareSpec,
                       phase: str) -> tuple[Efficiency, HardwareSpec]:
    """``(Efficiency, HardwareSpec)`` to predict with: a profile resolved for the chip and phase, or an
    :class:`Efficiency` as given; the chip carries the overrides the efficiency sets
    (:meth:`Efficiency.hardware`)."""
    if not isinstance(efficiency, Efficiency):
        efficiency = resolve(efficiency, hardware, phase).efficiency
    return efficiency, efficiency.hardware(hardware)
