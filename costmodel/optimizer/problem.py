"""The serving problem: what to choose, what to minimise, which constraints hold.

Decision variables: batch per replica, tp, pp, ep, replicas (when a demand is
given), weight and KV precision from allowed sets. Objective: USD per million
output tokens. Constraints: time per output token (TPOT) <= target; optional
time to first token (TTFT) <= target; memory fits; chips <= budget.

TTFT is the prefill of one prompt on the replica plus its first decode step
(no queueing; docs/theory.md §6).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..config import IDEAL, Efficiency, Parallel, Precision, Workload
from ..errors import ConfigError
from ..inputs import Scenario, scenario
from ..parallel import valid_degrees
from ..specs import HardwareSpec, ModelSpec, bytes_per_element, default_math_precision, load_hardware, load_model
from ..symbolic import Rules

__all__ = ["Problem", "PrecisionChoice", "make_problem"]

#: Largest batch per replica considered (sequences). Beyond it no chip has the memory at useful contexts.
MAX_BATCH = 16384


@dataclass(frozen=True)
class PrecisionChoice:
    """One admissible (weights, KV) format pair and the math precision it implies."""

    weights: str
    kv: str
    math: str


@dataclass(frozen=True)
class Problem:
    """A validated optimisation problem (SI units).

    Attributes:
        base: the scenario whose numbers everything else overrides.
        tpot_s: target time per output token.
        ttft_s: target time to first token, or ``None``.
        max_chips: chip budget over all replicas.
        demand_tokens_per_s: output tokens/s to serve, or ``None`` (one replica).
        precisions: admissible (weights, KV) choices.
        degrees: admissible tp, pp, ep values (each ascending).
        rules: modelling rules of the decode step.
    """

    base: Scenario
    tpot_s: float
    ttft_s: float | None
    max_chips: int
    demand_tokens_per_s: float | None
    precisions: tuple[PrecisionChoice, ...]
    degrees: dict[str, tuple[int, ...]] = field(hash=False)
    rules: Rules = Rules()

    @property
    def model(self) -> ModelSpec:
        return self.base.model

    @property
    def hardware(self) -> HardwareSpec:
        return self.base.hardware

    def splits(self) -> np.ndarray:
        """Every admissible (tp, pp, ep) with ``tp·pp·ep <= max_chips``, as an int array (n, 3)."""
        rows = [(t, p, e) for t, p, e in itertools.product(*self.degrees.values()) if t * p * e <= self.max_chips]
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def precision_inputs(self) -> dict[str, np.ndarray]:
        """Per-choice ``weight_bytes``, ``kv_bytes`` and ``flops_per_s`` arrays."""
        return {
            "weight_bytes": np.array([bytes_per_element(c.weights) for c in self.precisions]),
            "kv_bytes": np.array([bytes_per_element(c.kv) for c in self.precisions]),
            "flops_per_s": np.array([self.hardware.flops_per_s[c.math] for c in self.precisions]),
        }


def _choices(option: str | tuple[str, ...] | list[str] | None, default: str) -> tuple[str, ...]:
    if option is None:
        return (default,)
    if isinstance(option, str):
        option = [o.strip() for o in option.split(",") if o.strip()]
    if not option:
        raise ConfigError("a precision set must name at least one format, e.g. 'bf16' or 'bf16,fp8'")
    return tuple(dict.fromkeys(option))


def _precisions(hw: HardwareSpec, model: ModelSpec, weights, kv) -> tuple[PrecisionChoice, ...]:
    out, refused = [], []
    for w, k in itertools.product(_choices(weights, model.native_precision), _choices(kv, "bf16")):
        Precision(weights=w, kv=k)  # validates the names
        math_p = default_math_precision(w)
        if math_p in hw.flops_per_s:
            out.append(PrecisionChoice(w, k, math_p))
        else:
            refused.append(w)
    if not out:
        raise ConfigError(
            f"{hw.name} cannot compute in {', '.join(sorted(set(refused)))}; it computes in "
            f"{', '.join(hw.flops_per_s)}: choose --weights from those (int8/int4 weights run bf16 math)"
        )
    return tuple(out)


def make_problem(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    *,
    context: float = 8192,
    prompt: float | None = None,
    tpot_s: float = 0.05,
    ttft_s: float | None = None,
    max_chips: int = 64,
    demand_tokens_per_s: float | None = None,
    weights: str | tuple[str, ...] | None = None,
    kv: str | tuple[str, ...] | None = None,
    usd_per_chip_hour: float | None = None,
    efficiency: Efficiency | str = IDEAL,
    rules: Rules = Rules(),
) -> Problem:
    """Validate the inputs of :func:`costmodel.optimize` and build a :class:`Problem`."""
    m, h = load_model(model), load_hardware(hardware)
    for name, v in (("tpot_s", tpot_s), ("ttft_s", ttft_s), ("demand_tokens_per_s", demand_tokens_per_s)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive number of seconds or tokens/s, got {v!r}")
    if not (isinstance(max_chips, int) and max_chips >= 1):
        raise ConfigError(f"max_chips must be a whole number >= 1, got {max_chips!r}")
    prompt = context if prompt is None else prompt
    precisions = _precisions(h, m, weights, kv)
    first = precisions[0]
    base = scenario(m, h, Workload(batch=1, context=context, prompt=prompt), Parallel(),
                    Precision(first.weights, first.kv, first.math), efficiency, usd_per_chip_hour)
    degrees = {k: tuple(v) for k, v in valid_degrees(m).items()}
    return Problem(base=base, tpot_s=float(tpot_s), ttft_s=ttft_s, max_chips=max_chips,
                   demand_tokens_per_s=demand_tokens_per_s, precisions=precisions, degrees=degrees,
                   rules=dataclasses.replace(rules, phase="decode"))
