"""One configuration in, the predicted latency, throughput, memory and cost out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .compile import compiled
from .config import IDEAL, Efficiency, Parallel, Precision, Workload
from .inputs import Scenario, scenario
from .specs import HardwareSpec, ModelSpec
from .symbolic import Rules

__all__ = ["Prediction", "predict", "evaluate", "bound_of"]

_BREAKDOWN = ("compute", "weights", "kv", "communication", "overhead")


def bound_of(values: dict[str, float]) -> str:
    """Which roofline term dominates: ``"compute"``, ``"memory"`` or ``"communication"``."""
    terms = {
        "compute": values["compute_s"],
        "memory": values["weights_s"] + values["kv_s"],
        "communication": values["communication_s"],
    }
    return max(terms, key=terms.get)


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one configuration (SI units).

    ``to_dict()`` gives the JSON contract of ``costmodel predict --json``.
    """

    scenario: Scenario
    rules: Rules
    values: dict[str, float]

    def __getattr__(self, name: str) -> float:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def fits(self) -> bool:
        """Whether weights, KV cache and activations fit in the usable HBM of each chip."""
        return self.values["memory_bytes_per_chip"] <= self.values["usable_bytes_per_chip"]

    @property
    def bound(self) -> str:
        """The dominant term: ``"compute"``, ``"memory"`` or ``"communication"``."""
        return bound_of(self.values)

    @property
    def breakdown_s(self) -> dict[str, float]:
        """Seconds of each step-time term, before combining."""
        return {k: self.values[f"{k}_s"] for k in _BREAKDOWN}

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready answer (a stable contract for scripts)."""
        v, s = self.values, self.scenario
        return {
            "model": s.model.name,
            "hardware": s.hardware.name,
            "phase": self.rules.phase,
            "chips": int(v["chips"]),
            "step_time_s": v["step_time_s"],
            "tokens_per_s": v["tokens_per_s"],
            "tokens_per_s_per_user": v["tokens_per_s_per_user"],
            "usd_per_mtok": v["usd_per_mtok"],
            "memory_bytes_per_chip": v["memory_bytes_per_chip"],
            "usable_bytes_per_chip": v["usable_bytes_per_chip"],
            "fits": self.fits,
            "bound": self.bound,
            "mfu": v["mfu"],
            "breakdown_s": self.breakdown_s,
            "memory_breakdown_bytes": {k: v[f"{k}_bytes_per_chip"] for k in ("weight", "kv", "activation")},
            "workload": asdict(s.workload),
            "parallel": asdict(s.parallel) | {"chips_per_replica": s.parallel.chips_per_replica},
            "precision": {"weights": s.weights, "kv": s.kv, "math": s.math, "activations": s.activations},
            "usd_per_chip_hour": s.usd_per_chip_hour,
            "efficiency": s.efficiency.name,
            "rules": asdict(self.rules),
        }


def evaluate(sc: Scenario, rules: Rules = Rules()) -> Prediction:
    """Evaluate a resolved :class:`Scenario` under ``rules``."""
    out = compiled(sc.model.structure, rules)(sc.inputs())
    return Prediction(sc, rules, {k: float(v) for k, v in out.items()})


def predict(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    workload: Workload = Workload(),
    *,
    parallel: Parallel = Parallel(),
    precision: Precision = Precision(),
    efficiency: Efficiency = IDEAL,
    usd_per_chip_hour: float | None = None,
    rules: Rules | None = None,
) -> Prediction:
    """Predict one configuration.

    Args:
        model: a catalog name, a path to a Hugging Face ``config.json``, or a :class:`ModelSpec`.
        hardware: a catalog chip name or a :class:`HardwareSpec`.
        workload: batch, context, prompt and phase.
        parallel: tp/pp/ep degrees and replicas.
        precision: weight, KV, math and activation formats.
        efficiency: achievable fractions of peak (default: the ideal roofline).
        usd_per_chip_hour: price override (default: the chip's catalog price).
        rules: how terms combine; its phase defaults to the workload's.

    Returns:
        A :class:`Prediction`; ``fits`` says whether the configuration fits in memory.

    Raises:
        CostModelError: an unknown name, an out-of-range value, an invalid split or
            a precision the chip cannot compute in.

    Example:
        >>> from costmodel import predict, Workload
        >>> p = predict("llama-3-70b", "h100-sxm", Workload(batch=1, context=8192),
        ...             parallel=Parallel(tp=8))
        >>> round(p.weights_s * 1e3, 2)  # ms: the weight-fetch floor (THEORY.md 8)
        5.23
    """
    rules = rules or Rules(phase=workload.phase)
    if rules.phase != workload.phase:
        rules = Rules(workload.phase, rules.combine, rules.comm_overlap, rules.expert_fetch)
    sc = scenario(model, hardware, workload, parallel, precision, efficiency, usd_per_chip_hour)
    return evaluate(sc, rules)
