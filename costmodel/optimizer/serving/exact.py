"""The exact serving model: a candidate deployment re-evaluated with :func:`costmodel.serve`.

The vectorised tables (:mod:`.evaluate`) rank candidates; the answer is the best one (the cheapest,
or with ``objective="energy"`` the fewest watts) that ``cm.serve`` confirms at ``Load.rate(R)``
spread over its replicas: TTFT and TPOT within the targets, not saturated, fitting in memory, within
the chip budget. Candidates are confirmed best first; one that ``cm.serve`` refuses (its open-loop
chain has a longer mean step than the fluid mean step) gets one more replica at a time while it
stays better than the best confirmed so far.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import Parallel
from ...errors import CostModelError
from ...serving.aggregated import forget_rate_limits
from ...serving.api import serve
from ...serving.workload import Disaggregated, Load, Pool
from .problem import ServingProblem, on_chip, pool_usd_per_hour

__all__ = ["Deployment", "serve_deployment", "usd_per_hour", "objective_estimate", "objective_achieved", "watts_of",
           "decode_problem", "forget_confirmed", "meets_targets",
           "confirm", "MAX_CHECKS"]

#: cm.serve evaluations one answer may spend (each takes milliseconds to a few hundred ms)
MAX_CHECKS = 12
_RTOL = 1e-9


@dataclass(frozen=True)
class Deployment:
    """One candidate deployment (either mode) and the figures the tables gave it."""

    mode: str  # "agg" | "disagg"
    prec: int
    spec: int
    replicas: int  # aggregated replicas, or decode-pool replicas
    split: tuple[int, int, int]  # aggregated split, or the decode pool's
    attention: str = "heads"
    chunk: int = 8192
    prefill_split: tuple[int, int, int] | None = None
    prefill_batch: int = 1
    prefill_replicas: int = 0
    prefill_hardware: str | None = None  # a pair of chips (:mod:`.pairs`): each pool's chip
    decode_hardware: str | None = None
    figures: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def chips(self) -> int:
        n = self.replicas * int(np.prod(self.split))
        if self.mode == "disagg":
            n += self.prefill_replicas * int(np.prod(self.prefill_split))
        return n

    @property
    def pool_chips(self) -> tuple[int, int]:
        """Chips of the prefill pool and of the decode pool (aggregated: ``(0, chips)``)."""
        n_d = self.replicas * int(np.prod(self.split))
        return (self.prefill_replicas * int(np.prod(self.prefill_split)) if self.mode == "disagg" else 0), n_d

    def with_more(self) -> "Deployment":
        """One more replica where the exact model asks for it (aggregated: one more replica; disaggregated:
        of the pool that misses its target)."""
        import dataclasses

        return dataclasses.replace(self, replicas=self.replicas + 1)


def usd_per_hour(problem: ServingProblem, d: Deployment) -> float:
    """What ``d`` costs per hour: its chips at the chip's price, or for a pair of chips each pool at its own."""
    if d.decode_hardware is None:
        return d.chips * problem.usd_per_chip_hour
    n_p, n_d = d.pool_chips
    return float(pool_usd_per_hour(n_p, on_chip(problem, d.prefill_hardware).usd_per_chip_hour, n_d,
                                   on_chip(problem, d.decode_hardware).usd_per_chip_hour))


def objective_estimate(problem: ServingProblem, d: Deployment) -> float:
    """The objective of ``d`` before ``cm.serve`` confirms it (:meth:`ServingProblem.objective_value`): its USD
    per hour and the tables' watts, with each replica the confirmation added (:meth:`Deployment.with_more`) at
    least idle. The USD per hour is exact; the watts, the tables' figure."""
    usd = usd_per_hour(problem, d)
    if not problem.uses_power:
        return usd
    f = d.figures
    extra = (d.replicas - f.get("replicas", d.replicas)) * int(np.prod(d.split)) if d.mode == "agg" else 0
    return float(problem.objective_value(usd, f["watts"] + extra * problem.idle_watts))


def watts_of(s) -> float | None:
    """A serving prediction's watts (boards and hosts, before the facility's overhead): its joules per token
    times its tokens/s (``None`` where a chip has no board power)."""
    if s.joules_per_output_token is None:
        return None
    return s.joules_per_output_token * s.output_tokens_per_s + s.joules_per_input_token * s.input_tokens_per_s


def objective_achieved(problem: ServingProblem, d: Deployment, s) -> float:
    """The objective of ``d`` as ``cm.serve`` gives it (``s``, its prediction)."""
    usd = usd_per_hour(problem, d)
    return float(problem.objective_value(usd, watts_of(s))) if problem.uses_power else usd


def decode_problem(problem: ServingProblem, d: Deployment) -> ServingProblem:
    """The problem on ``d``'s decode chip (its precision indices and scheduler are that chip's)."""
    return problem if d.decode_hardware is None else on_chip(problem, d.decode_hardware)


def serve_deployment(problem: ServingProblem, d: Deployment):
    """The :class:`~costmodel.serving.prediction.ServingPrediction` of ``d`` at the problem's rate.

    Kept per (problem, deployment) for the process (:data:`CONFIRMED`): the two methods, ``verify``,
    the budget search of an infeasible answer and a repeated problem confirm the same candidates,
    and ``cm.serve`` is deterministic, so a kept prediction is the one a new call would return.
    """
    # the efficiency as resolved for this problem: a profile named by a path or "calibrated" may be refit
    chips = [problem] + [on_chip(problem, n) for n in (d.prefill_hardware, d.decode_hardware) if n is not None]
    resolved = tuple(b.efficiency if b is not None else None for c in chips for b in (c.decode_base, c.prefill_base))
    try:
        hash((problem, d, resolved))
    except TypeError:  # a problem holding something unhashable (e.g. a custom spec): not kept
        return _serve_kept.__wrapped__(problem, d, resolved)
    return _serve_kept(problem, d, resolved)


#: ``cm.serve`` predictions kept per (problem, deployment) (a frozen problem and a frozen deployment
#: compare by value; a deployment's table figures are left out of the comparison)
CONFIRMED = 1024


def forget_confirmed() -> None:
    """Drop the kept ``cm.serve`` predictions, replica rate limits and decode relaxations (so that a timing
    run measures every confirmation and every relaxation)."""
    from .gradient import forget_relaxations

    _serve_kept.cache_clear()
    forget_rate_limits()
    forget_relaxations()


@functools.lru_cache(maxsize=CONFIRMED)
def _serve_kept(problem: ServingProblem, d: Deployment, resolved: tuple):
    tp, pp, ep = d.split
    common = dict(precision=problem.precision_of(d.prec), efficiency=problem.efficiency,
                  usd_per_chip_hour=problem.usd_per_chip_hour, spec=problem.specs[d.spec], scheduler=problem.scheduler,
                  electricity=problem.electricity, rules=problem.rules())
    load = Load.rate(problem.rate_per_s)
    if d.mode == "agg":
        return serve(problem.model, problem.hardware, problem.requests, load,
                     parallel=Parallel(tp=tp, pp=pp, ep=ep, replicas=d.replicas), chunk_tokens=float(d.chunk),
                     **(common | {"rules": problem.rules(d.attention)}))
    a, b, c = d.prefill_split
    hw = problem.hardware
    if d.decode_hardware is not None:  # a pair of chips: each pool on its own, at its own price (or the given one)
        dec = on_chip(problem, d.decode_hardware)
        common.update(precision=dec.precision_of(d.prec), usd_per_chip_hour=problem.price_override,
                      scheduler=dec.scheduler)
        hw = dec.hardware
    dg = Disaggregated(prefill=Pool(Parallel(tp=a, pp=b, ep=c, replicas=d.prefill_replicas), batch=d.prefill_batch,
                                    hardware=d.prefill_hardware),
                       decode=Pool(Parallel(tp=tp, pp=pp, ep=ep, replicas=d.replicas), hardware=d.decode_hardware))
    return serve(problem.model, hw, problem.requests, load, disagg=dg, **common)


def meets_targets(problem: ServingProblem, s) -> dict[str, bool]:
    """Which constraints a serving prediction meets (a target on a percentile checks that percentile)."""
    ttft, tpot = s.percentile("ttft", problem.ttft_percentile), s.percentile("tpot", problem.tpot_percentile)
    ok_ttft = problem.ttft_s is None or ttft <= problem.ttft_s * (1 + _RTOL)
    ok_tpot = problem.tpot_s is None or tpot <= problem.tpot_s * (1 + _RTOL)
    return {"ttft": bool(ok_ttft and np.isfinite(ttft)), "tpot": bool(ok_tpot), "memory": bool(s.fits),
            "demand": not s.saturated, "chips": s.chips <= problem.max_chips}


def confirm(problem: ServingProblem, ranked: list[Deployment], max_checks: int = MAX_CHECKS
            ) -> tuple[Deployment | None, Any, int]:
    """The best of ``ranked`` (best first by the tables) that ``cm.serve`` confirms: the lowest objective
    (:meth:`ServingProblem.objective_value`: the USD per hour, or the watts), a candidate's as the tables
    estimate it (:func:`objective_estimate`) against the best confirmed one's as ``cm.serve`` gives it.

    Returns the deployment, its serving prediction and the number of ``cm.serve`` calls.
    """
    best, best_pred, checks = None, None, 0
    bar = np.inf  # the best confirmed objective
    refuted: list[tuple[tuple, int, bool, bool]] = []  # (key, chunk, larger refuted, smaller refuted)
    for d in ranked:
        if checks >= max_checks or objective_estimate(problem, d) >= bar:
            break
        if _refuted(d, refuted):
            continue
        first = True
        while checks < max_checks and d.chips <= problem.max_chips and objective_estimate(problem, d) < bar:
            checks += 1
            try:
                s = serve_deployment(problem, d)
            except CostModelError:  # e.g. a draft model the split cannot hold
                break
            ok = meets_targets(problem, s)
            if all(ok.values()):
                value = objective_achieved(problem, d, s)
                if value < bar:
                    best, best_pred, bar = d, s, value
                break
            if first:
                refuted.append((_serving_key(d), d.chunk, not (ok["tpot"] and ok["memory"]),
                                not (ok["ttft"] and ok["demand"])))
                first = False
            if d.mode == "disagg":  # the pools are sized by the same closed forms: nothing to add
                break
            d = d.with_more()
    return best, best_pred, checks


def _serving_key(d: Deployment) -> tuple:
    """What ``cm.serve`` sees of an aggregated deployment besides its chunk budget (attention sharded over
    heads or sequences is one layout on one tensor-parallel rank)."""
    attention = d.attention if d.split[0] > 1 else "heads"
    return (d.mode, d.prec, d.spec, d.replicas, d.split, attention, d.prefill_split, d.prefill_batch,
            d.prefill_replicas, d.prefill_hardware, d.decode_hardware)


def _refuted(d: Deployment, refuted: list[tuple[tuple, int, bool, bool]]) -> bool:
    """Whether a confirmation already refuted ``d``: the same deployment failed at another chunk budget. A
    larger budget (more prompt tokens in a step: a longer step, more activations) cannot meet a TPOT or
    memory it missed; a smaller one (more and shorter steps per prompt, less prefill per step) cannot meet
    a TTFT or a rate it missed."""
    key = _serving_key(d)
    return any(k == key and (c == d.chunk or (larger and d.chunk > c) or (smaller and d.chunk < c))
               for k, c, larger, smaller in refuted)
