"""The optimiser's answer: the chosen configuration, why, what it costs, what else came close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import functools
import time

import numpy as np

from ..config import Parallel, Precision, Workload
from ..inputs import scenario
from ..prediction import Prediction, bound_of, breakdown_of, evaluate
from ..symbolic import usd_per_joule
from .exact import Metrics, exact_metrics
from .problem import MAX_BATCH, Problem

__all__ = ["Solution", "Choice", "pick", "choice_at", "binding_of", "shadow_price"]

_CONSTRAINT_ORDER = (("ok_tpot", "tpot"), ("ok_ttft", "ttft"), ("fits", "memory"))


@dataclass(frozen=True)
class Choice:
    """One admissible configuration with its exact metrics."""

    batch: int
    tp: int
    pp: int
    ep: int
    prec: int
    metrics: dict[str, float]

    def config(self, problem: Problem) -> dict[str, Any]:
        p = problem.precisions[self.prec]
        return {"batch": self.batch, "tp": self.tp, "pp": self.pp, "ep": self.ep,
                "replicas": int(self.metrics["replicas"]), "chips": int(self.metrics["chips"]),
                "weights": p.weights, "kv": p.kv}


def pick(cands: dict[str, np.ndarray], m: Metrics, mask: np.ndarray | None = None,
         key: str = "usd_per_mtok") -> int | None:
    """Index of the best candidate under ``mask`` (default: feasible): lowest ``key``, then step, then chips."""
    mask = m["feasible"] if mask is None else mask
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    order = np.lexsort((m["chips"][idx], m["step_time_s"][idx], m[key][idx]))
    return int(idx[order[0]])


def choice_at(cands: dict[str, np.ndarray], m: Metrics, i: int) -> Choice:
    """Candidate ``i`` as a :class:`Choice`, with its metrics as plain floats."""
    return Choice(int(cands["batch"][i]), int(cands["tp"][i]), int(cands["pp"][i]), int(cands["ep"][i]),
                  int(cands["prec"][i]), {k: _plain(v[i]) for k, v in m.items()})


def _plain(v) -> float:
    """A metric as a Python float; a float32 one as its shortest decimal (7.2e10, not 71999995904.0)."""
    return float(str(v)) if isinstance(v, np.float32) else float(v)


def alternatives(cands: dict[str, np.ndarray], m: Metrics, chosen: Choice, n: int,
                 objective: str = "usd_per_mtok") -> list[Choice]:
    """The best feasible configuration of each other split/precision by ``objective`` (a metric), best first."""
    best: dict[tuple[int, ...], int] = {}
    for i in np.flatnonzero(m["feasible"]):
        key = (int(cands["tp"][i]), int(cands["pp"][i]), int(cands["ep"][i]), int(cands["prec"][i]))
        if key != (chosen.tp, chosen.pp, chosen.ep, chosen.prec):
            j = best.get(key)
            if j is None or m[objective][i] < m[objective][j]:
                best[key] = int(i)
    ranked = sorted(best.values(), key=lambda i: (m[objective][i], m["step_time_s"][i]))
    return [choice_at(cands, m, i) for i in ranked[:n]]


def binding_of(problem: Problem, c: Choice) -> str:
    """Which constraint stops a larger batch: ``tpot``, ``ttft``, ``memory`` or ``batch_limit``.

    Read off the exact model at the next admissible batch (the batch search carries those flags as
    ``next_*``); ``cost`` when a larger batch is feasible but not cheaper (it needs another replica).
    """
    if c.batch + c.pp > MAX_BATCH:
        return "batch_limit"
    nxt = {f: c.metrics[f"next_{f}"] for f, _ in _CONSTRAINT_ORDER if f"next_{f}" in c.metrics}
    if len(nxt) < len(_CONSTRAINT_ORDER):
        m = exact_metrics(problem, c.tp, c.pp, c.ep, c.batch + c.pp, c.prec)
        nxt = {f: m[f] for f, _ in _CONSTRAINT_ORDER}
    for flag, name in _CONSTRAINT_ORDER:
        if not bool(nxt[flag]):
            return name
    return "cost"


def shadow_price(c: Choice, binding: str) -> float:
    """d(USD per Mtok)/d(latency target), in USD per Mtok per ms, at the chosen split (autodiff).

    When a latency target binds, the batch grows with the target along
    ``T(B) = target``, so ``dc/dtarget = (dc/dB)/(dT/dB)``, both derivatives taken
    by forward-mode autodiff of the exact model. Zero when memory or the batch
    limit binds (relaxing the target then buys nothing).
    """
    slope = c.metrics["dstep_dbatch"]
    if binding not in ("tpot", "ttft") or slope <= 0:
        return 0.0
    return c.metrics["dcost_dbatch"] / slope * 1e-3


@dataclass(frozen=True)
class Solution:
    """The answer of :func:`costmodel.optimize`.

    Attributes:
        feasible: whether any configuration meets every constraint.
        choice: the chosen configuration (the cheapest feasible one; when infeasible,
            the cheapest one reaching the fastest achievable latency), or ``None`` if nothing fits.
        prediction: the full prediction of the chosen configuration (breakdown, memory, bound).
        binding: the constraint that stops a larger batch.
        shadow_price_usd_per_mtok_per_ms: d(cost)/d(latency target), <= 0: a looser target allows a
            larger batch, so each extra ms of target lowers the cost by this much (negative when the TPOT
            or TTFT target binds; zero when memory or the batch limit binds).
        alternatives: the next cheapest configurations (other splits or precisions).
        fastest_step_time_s: the fastest TPOT achievable under the chip budget.
        message: a sentence a person can act on.
    """

    problem: Problem
    feasible: bool
    choice: Choice | None
    binding: str
    shadow_price_usd_per_mtok_per_ms: float
    alternatives: list[Choice]
    method: str
    wall_time_s: float
    fastest_step_time_s: float | None
    message: str

    @classmethod
    def infeasible(cls, problem: Problem, choice: Choice | None, binding: str, message: str, *, method: str,
                   started: float, fastest_step_time_s: float | None = None) -> "Solution":
        """The answer when no configuration meets every constraint; ``choice`` is the closest one
        (or ``None``) and ``started`` the ``time.perf_counter()`` at which the search began."""
        return cls(problem=problem, feasible=False, choice=choice, binding=binding,
                   shadow_price_usd_per_mtok_per_ms=0.0, alternatives=[], method=method,
                   wall_time_s=time.perf_counter() - started, fastest_step_time_s=fastest_step_time_s,
                   message=message)

    @functools.cached_property
    def prediction(self) -> Prediction | None:
        """The full :class:`~costmodel.Prediction` of the chosen configuration."""
        return predict_choice(self.problem, self.choice) if self.choice else None

    @property
    def bound(self) -> str | None:
        """The dominant roofline term of the chosen configuration."""
        return bound_of(self.choice.metrics) if self.choice else None

    @property
    def config(self) -> dict[str, Any] | None:
        return self.choice.config(self.problem) if self.choice else None

    @property
    def usd_per_mtok(self) -> float | None:
        return self.choice.metrics["usd_per_mtok"] if self.choice else None

    @property
    def usd_per_mtok_at_capacity(self) -> float | None:
        """USD per million tokens when the provisioned chips run at full throughput (as ``predict`` prices).

        Without a demand this equals :attr:`usd_per_mtok`. With ``demand_tokens_per_s`` the objective
        :attr:`usd_per_mtok` prices the provisioned replicas over the *demanded* tokens (idle capacity
        is paid for), so it is at least this value.
        """
        if not self.choice:
            return None
        m = self.choice.metrics
        return 1e6 * m["chips"] * self.problem.base.usd_per_chip_hour / (3600.0 * m["tokens_per_s"])

    @property
    def step_time_s(self) -> float | None:
        return self.choice.metrics["step_time_s"] if self.choice else None

    def launch(self, engine: str) -> str:
        """The launch commands of this deployment for ``engine`` (``"vllm"``, ``"sglang"`` or ``"trtllm"``):
        its flags are the engine's own, for the version :func:`costmodel.launch.engine_flags` states
        (as ``costmodel optimize ... --emit ENGINE``)."""
        from ..launch import launch

        return launch(self, engine)

    def _energy(self) -> dict[str, Any]:
        """Power and energy of the chosen configuration at the demand (docs/theory.md §21); ``None`` without a
        choice or for a chip without a board power."""
        c, b = self.choice, self.problem.base
        known = c is not None and b.hardware.has_power
        e = b.electricity
        watts = c.metrics["power_w_per_chip"] if known else None
        joules = c.metrics["joules_per_token"] if known else None
        usd = None if joules is None else 1e6 * joules * usd_per_joule(e.pue, e.usd_per_kwh)
        return {"power_w_per_chip": watts, "joules_per_output_token": joules, "joules_per_input_token": None,
                "usd_per_mtok_energy": usd, "electricity": e.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``costmodel optimize --json``."""
        c = self.choice
        d: dict[str, Any] = {
            "feasible": self.feasible,
            "config": self.config,
            "usd_per_mtok": c.metrics["usd_per_mtok"] if c else None,
            "usd_per_mtok_at_capacity": self.usd_per_mtok_at_capacity,
            "pricing": "demand" if self.problem.demand_tokens_per_s else "capacity",
            "step_time_s": c.metrics["step_time_s"] if c else None,
            "ttft_s": c.metrics["ttft_s"] if c else None,
            "tokens_per_s": c.metrics["tokens_per_s"] if c else None,
            "binding": self.binding,
            "bound": self.bound,
            "memory_bytes_per_chip": c.metrics["memory_bytes_per_chip"] if c else None,
            "breakdown_s": breakdown_of(c.metrics) if c else None,
            "mfu": c.metrics["mfu"] if c else None,
            "objective": self.problem.objective,
            **self._energy(),
            "shadow_price_usd_per_mtok_per_ms": self.shadow_price_usd_per_mtok_per_ms,
            "fastest_step_time_s": self.fastest_step_time_s,
            "alternatives": [dict(a.config(self.problem), usd_per_mtok=a.metrics["usd_per_mtok"],
                                  joules_per_output_token=a.metrics["joules_per_token"] if c and
                                  self.problem.hardware.has_power else None,
                                  step_time_s=a.metrics["step_time_s"]) for a in self.alternatives],
            "problem": {
                "model": self.problem.model.name, "hardware": self.problem.hardware.name,
                "context": self.problem.base.workload.context, "prompt": self.problem.base.workload.prompt,
                "tpot_s": self.problem.tpot_s, "ttft_s": self.problem.ttft_s,
                "max_chips": self.problem.max_chips, "demand_tokens_per_s": self.problem.demand_tokens_per_s,
                "usd_per_chip_hour": self.problem.base.usd_per_chip_hour,
            },
            "method": self.method,
            "wall_time_s": self.wall_time_s,
            "message": self.message,
        }
        return d


def predict_choice(problem: Problem, c: Choice) -> Prediction:
    """The full :class:`Prediction` of a choice (breakdown, memory, bound)."""
    b = problem.base
    prec = problem.precisions[c.prec]
    sc = scenario(b.model, b.hardware, Workload(batch=c.batch, context=b.workload.context, prompt=b.workload.prompt),
                  Parallel(tp=c.tp, pp=c.pp, ep=c.ep, replicas=int(c.metrics["replicas"])),
                  Precision(prec.weights, prec.kv, prec.math, b.activations, b.dispatch), b.efficiency,
                  b.usd_per_chip_hour, electricity=b.electricity)
    return evaluate(sc, problem.rules)
