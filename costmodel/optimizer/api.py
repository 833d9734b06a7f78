"""``optimize``: the cheapest configuration that meets a latency target, and why."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_EFFICIENCY, Efficiency, Electricity
from ..errors import ConfigError, keywords_checked
from ..specs import HardwareSpec, ModelSpec, bytes_per_element
from ..symbolic import Rules
from .exact import Metrics, exact_metrics
from .exhaustive import exhaustive_metrics
from .gradient import relaxed_solve
from .problem import PrecisionChoice, Problem, make_problem
from .search import local_search, round_to_lattice
from .solution import Choice, Solution, alternatives, binding_of, choice_at, pick, shadow_price

__all__ = ["optimize", "METHODS"]

METHODS = ("gradient", "exhaustive")


@dataclass(frozen=True)
class _Found:
    """Evaluated candidates, their exact metrics, and the index of the one picked."""

    cands: dict[str, np.ndarray]
    metrics: Metrics
    index: int

    def value(self, key: str) -> float:
        """Metric ``key`` of the picked candidate."""
        return float(self.metrics[key][self.index])

    def choice(self) -> Choice:
        return choice_at(self.cands, self.metrics, self.index)


def _gradient_candidates(problem: Problem, objective: str, tpot_s: float | None = None,
                         budget: int | None = None, extra: set | None = None) -> tuple[dict, dict]:
    """Relaxed solve -> rounding to the lattice -> hill climb with the exact model."""
    budget = budget or problem.max_chips
    rr = relaxed_solve(problem, objective, max_chips=budget)
    start = round_to_lattice(problem, rr.u, rr.prec, budget) | (extra or set())
    return local_search(problem, start, objective, tpot_s=tpot_s, budget=budget)


def _fastest(problem: Problem, method: str, budget: int | None = None) -> _Found | None:
    """The fastest configuration (min TPOT) that fits within the chip budget, or ``None``."""
    budget = budget or problem.max_chips
    if method == "exhaustive" and budget == problem.max_chips:
        cands, m = exhaustive_metrics(problem)
    else:
        cands, m = _gradient_candidates(problem, "latency", budget=budget)
    if not m:
        return None
    per_replica = m["chips"] / m["replicas"]
    i = pick(cands, m, m["fits"] & (per_replica <= budget), key="step_time_s")
    return None if i is None else _Found(cands, m, i)


def _infeasible(problem: Problem, method: str, t0: float) -> Solution:
    fast = _fastest(problem, method)
    hw, budget = problem.hardware.name, problem.max_chips
    if fast is None:
        msg = (f"{problem.model.name} does not fit on {budget} {hw} chips at context "
               f"{problem.base.workload.context:g} in any allowed precision; allow more chips (max_chips) "
               f"or lower precision (weights='fp8,int8,int4')")
        return Solution.infeasible(problem, None, "memory", msg, method=method, started=t0)
    fastest = fast.value("step_time_s")
    if fastest <= problem.tpot_s:  # TPOT is reachable: the first token or the demand is not
        return _ttft_or_demand_infeasible(problem, method, fast.cands, fast.metrics, t0)
    target = fastest * (1 + 1e-6)  # the cheapest configuration reaching the fastest latency
    cands = fast.cands
    if method == "exhaustive":
        c2, m2 = cands, exact_metrics(problem, *(cands[k] for k in ("tp", "pp", "ep", "batch")), cands["prec"],
                                      tpot_s=target)
    else:
        fast_pt = {tuple(int(cands[k][fast.index]) for k in ("tp", "pp", "ep", "prec"))}
        c2, m2 = _gradient_candidates(problem, problem.objective, tpot_s=target, extra=fast_pt)
    j = pick(c2, m2, m2["fits"] & m2["ok_tpot"] & m2["ok_chips"] & (c2["batch"] > 0),
             key=problem.objective_key) if m2 else None
    chosen = choice_at(c2, m2, j) if j is not None else fast.choice()
    hints = _hints(problem) + [f"relax the target to {fastest * 1e3:.3g} ms"]
    msg = (f"no configuration meets TPOT {problem.tpot_s * 1e3:.3g} ms: the fastest possible is "
           f"{fastest * 1e3:.3g} ms on {int(chosen.metrics['chips'])} {hw} chips; " + " or ".join(hints))
    return Solution.infeasible(problem, chosen, "tpot", msg, method=method, started=t0, fastest_step_time_s=fastest)


def _ttft_or_demand_infeasible(problem: Problem, method: str, cands: dict, m: dict, t0: float) -> Solution:
    """The TPOT target is reachable; say whether the TTFT target or the demand is not, and by how much."""
    hw, budget = problem.hardware.name, problem.max_chips
    fits = m["fits"] & (m["chips"] / m["replicas"] <= budget)
    k = pick(cands, m, fits & m["ok_tpot"], key="ttft_s")
    if problem.ttft_s is not None and k is not None and m["ttft_s"][k] > problem.ttft_s:
        c = choice_at(cands, m, k)
        first = c.metrics["ttft_s"]
        msg = (f"no configuration meets TTFT {problem.ttft_s * 1e3:.3g} ms for {problem.base.workload.prompt:g}-token "
               f"prompts: the fastest first token is {first * 1e3:.3g} ms on {int(c.metrics['chips'] / c.metrics['replicas'])} "
               f"{hw} chips; relax the TTFT target to {first * 1e3:.3g} ms, shorten the prompt or allow more chips")
        return Solution.infeasible(problem, c, "ttft", msg, method=method, started=t0)
    one = _solve(dataclasses.replace(problem, demand_tokens_per_s=None), method)
    if one is None:  # no split meets TPOT and TTFT together within the budget
        c = choice_at(cands, m, k) if k is not None else None
        msg = (f"no configuration meets TPOT {problem.tpot_s * 1e3:.3g} ms and TTFT together on {budget} {hw} chips; "
               "relax one of the targets or allow more chips")
        return Solution.infeasible(problem, c, "ttft", msg, method=method, started=t0)
    c = one.choice()
    per_replica, tps = int(c.metrics["chips"]), c.metrics["tokens_per_s"]
    replicas = math.ceil(problem.demand_tokens_per_s / tps)
    most = (budget // per_replica) * tps
    cfg = c.config(problem)
    msg = (f"serving {problem.demand_tokens_per_s:g} tok/s within the targets needs {replicas * per_replica} {hw} chips "
           f"({replicas} replicas of tp={cfg['tp']} pp={cfg['pp']} ep={cfg['ep']} at batch {cfg['batch']}, "
           f"{tps:,.0f} tok/s each) but the budget is {budget}; allow {replicas * per_replica} chips or lower the "
           f"demand to {most:,.0f} tok/s")
    return Solution.infeasible(problem, c, "chips", msg, method=method, started=t0)


def _solve(problem: Problem, method: str) -> _Found | None:
    """Candidates, their exact metrics and the index of the cheapest feasible one, or ``None``."""
    cands, m = (exhaustive_metrics(problem) if method == "exhaustive"
                else _gradient_candidates(problem, problem.objective))
    i = pick(cands, m, key=problem.objective_key) if m else None
    return None if i is None else _Found(cands, m, i)


def _hints(problem: Problem) -> list[str]:
    """What would make the target reachable: a bigger chip budget, or smaller weights."""
    hints = []
    for factor in (2, 4, 8):
        bigger = _fastest(problem, "gradient", budget=problem.max_chips * factor)
        if bigger is not None and bigger.value("step_time_s") <= problem.tpot_s:
            hints.append(f"allow {problem.max_chips * factor} chips "
                         f"(fastest there: {bigger.value('step_time_s') * 1e3:.3g} ms)")
            break
    allowed = {c.weights for c in problem.precisions}
    smallest = min(problem.precisions, key=lambda c: bytes_per_element(c.weights))
    for fmt in ("fp8", "fp4"):
        if fmt in problem.hardware.flops_per_s and fmt not in allowed and \
                bytes_per_element(fmt) < bytes_per_element(smallest.weights):
            variant = dataclasses.replace(problem, precisions=(PrecisionChoice(fmt, smallest.kv, fmt),))
            smaller = _fastest(variant, "gradient")
            if smaller is not None and smaller.value("step_time_s") <= problem.tpot_s:
                hints.append(f"allow {fmt} weights (weights='{fmt}'; "
                             f"fastest there: {smaller.value('step_time_s') * 1e3:.3g} ms)")
                break
    return hints


def _feasible_message(problem: Problem, sol_cfg: dict, m: dict, binding: str) -> str:
    energy = f" and {m['joules_per_token']:.3g} J per token" if problem.objective == "energy" else ""
    return (f"serve {problem.model.name} on {sol_cfg['chips']} {problem.hardware.name} "
            f"(tp={sol_cfg['tp']} pp={sol_cfg['pp']} ep={sol_cfg['ep']} x{sol_cfg['replicas']}, batch "
            f"{sol_cfg['batch']}, {sol_cfg['weights']} weights, {sol_cfg['kv']} KV) at ${m['usd_per_mtok']:.4g}/Mtok"
            f"{energy}, {m['step_time_s'] * 1e3:.3g} ms per token; the {binding} constraint binds")


@keywords_checked
def optimize(
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
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    rules: Rules | None = None,
    method: str = "gradient",
    n_alternatives: int = 3,
    math: str | None = None,
    objective: str = "cost",
    electricity: Electricity | None = None,
) -> Solution:
    """The cheapest configuration serving ``model`` on ``hardware`` within the targets.

    Minimises USD per million output tokens over batch, tp, pp, ep, replicas and
    the allowed precisions, subject to TPOT <= ``tpot_s``, TTFT <= ``ttft_s``,
    memory, and ``max_chips``.

    Args:
        model, hardware: catalog names (or a config.json path) or specs.
        context: cached tokens per sequence at each decode step.
        prompt: prompt length for TTFT (default: ``context``).
        tpot_s: target time per output token.
        ttft_s: target time to first token (prefill of one prompt + one step), or ``None``.
        max_chips: chip budget over all replicas.
        demand_tokens_per_s: output tokens/s to serve (sets the replicas), or ``None``.
        weights, kv: a precision or a set to choose from (tuple or ``"bf16,fp8"``).
        usd_per_chip_hour: price override.
        efficiency: achievable fractions of peak, or a profile name (``"ideal"``, ``"calibrated"``)
            or path (default ``"calibrated"``, :data:`costmodel.DEFAULT_EFFICIENCY`; ``"ideal"`` for the
            roofline bound).
        rules: how roofline terms combine (``None``: the defaults; the phase is always decode).
        method: ``"gradient"`` (relaxation + augmented Lagrangian + local exact search)
            or ``"exhaustive"`` (every admissible configuration).
        n_alternatives: how many runner-up configurations to report.
        math: precision of the matrix math for every weight format (default: each format's own float
            format; bf16 for integer weights, or when the chip has no math in the model's format).
        objective: ``"cost"`` (default: USD per million tokens, the electricity included for owned chips) or
            ``"energy"`` (joules per output token, chips and host, docs/theory.md §21).
        electricity: the price of electricity, the PUE and the chip price's basis
            (:class:`costmodel.Electricity`; default rental prices).

    Returns:
        A :class:`Solution`: feasible or not, always with an actionable message.

    Raises:
        CostModelError: bad input (unknown names, non-positive targets, unknown precisions).

    Example:
        >>> import costmodel as cm
        >>> s = cm.optimize("llama-3-8b", "h100-sxm", context=4096, tpot_s=0.02, max_chips=8)
        >>> s.feasible, s.step_time_s <= 0.02
        (True, True)
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(n_alternatives, int) and not isinstance(n_alternatives, bool) and 0 <= n_alternatives <= 1000):
        raise ConfigError(f"n_alternatives must be a whole number in [0, 1000], got {n_alternatives!r}")
    t0 = time.perf_counter()
    problem = make_problem(model, hardware, context=context, prompt=prompt, tpot_s=tpot_s, ttft_s=ttft_s,
                           max_chips=max_chips, demand_tokens_per_s=demand_tokens_per_s, weights=weights, kv=kv,
                           usd_per_chip_hour=usd_per_chip_hour, efficiency=efficiency, rules=rules, math=math,
                           objective=objective, electricity=electricity)
    found = _solve(problem, method)
    if found is None:
        return _infeasible(problem, method, t0)
    chosen = found.choice()
    binding = binding_of(problem, chosen)
    sol_cfg = chosen.config(problem)
    return Solution(
        problem=problem, feasible=True, choice=chosen, binding=binding,
        shadow_price_usd_per_mtok_per_ms=shadow_price(chosen, binding),
        alternatives=alternatives(found.cands, found.metrics, chosen, n_alternatives, problem.objective_key),
        method=method,
        wall_time_s=time.perf_counter() - t0, fastest_step_time_s=None,
        message=_feasible_message(problem, sol_cfg, chosen.metrics, binding),
    )
