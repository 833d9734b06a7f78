"""``optimize_serving``: the cheapest deployment (aggregated or disaggregated) serving a demand within targets."""

from __future__ import annotations

import dataclasses
import time

from ...config import DEFAULT_EFFICIENCY, Efficiency, Electricity
from ...errors import ConfigError, keywords_checked
from ...serving.workload import Requests
from ...symbolic import Rules
from .answer import mode_answer, tie_break, why
from .candidates import space_size
from .problem import MODE_NAMES, ServingProblem, make_serving_problem
from .search import solve_mode
from .solution import ServingSolution

__all__ = ["optimize_serving", "solve", "METHODS"]

METHODS = ("gradient", "exhaustive")


@keywords_checked
def optimize_serving(
    model, hardware, requests: Requests = Requests(), *,
    rate_per_s: float | None = None, demand_tps: float | None = None,
    ttft_s: float | None = None, tpot_s: float | None = None, max_chips: int = 64, mode: str = "auto",
    weights: str | tuple[str, ...] | None = "bf16", kv: str | tuple[str, ...] | None = None, spec=None,
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY, usd_per_chip_hour: float | None = None,
    objective: str = "output",
    method: str = "gradient", verify: bool = False, scheduler=None, ttft_percentile: int | None = None,
    tpot_percentile: int | None = None, prefill_hardware: str | list[str] | None = None,
    decode_hardware: str | list[str] | None = None, electricity: Electricity | None = None,
    step: str = Rules.step,
) -> ServingSolution:
    """The cheapest deployment serving ``requests`` at a demand within TTFT and TPOT targets.

    Minimises the deployment's USD per million output tokens at the demand (``objective="output"``;
    ``"total"``: per million tokens in and out; ``"energy"``: its joules per request, the watts of its
    boards and hosts at the demand, docs/theory.md §21) over aggregated deployments (split, attention
    sharding, precision, chunk budget, speculation, replicas) and disaggregated ones (each pool's
    split, the prefill batch, both pools' replicas, precision, speculation), subject to TTFT
    (queueing at the rate included) and TPOT targets, memory and the chip budget of the whole
    deployment (docs/optimizer.md, "The serving problem"; docs/serving.md §19).

    Args:
        model, hardware: catalog names (or a config.json path) or specs.
        requests: prompt and output tokens per request (or a mix) and the prefix hit.
        rate_per_s, demand_tps: requests/s to sustain, or output tokens/s (exactly one).
        ttft_s, tpot_s: targets (``None``: no target).
        max_chips: chip budget of the whole deployment (all replicas, both pools).
        mode: ``"agg"``, ``"disagg"`` or ``"auto"`` (both, each reported).
        weights, kv: a precision or a set to choose from (tuple or ``"bf16,fp8"``).
        spec: ``None``, or a :class:`~costmodel.Speculative` or a list of them: options to consider
            besides no speculation.
        efficiency: an :class:`Efficiency`, ``"ideal"``, ``"calibrated"`` or a profile path.
        usd_per_chip_hour: price override (default: the chip's catalog price).
        objective: ``"output"``, ``"total"`` or ``"energy"``.
        method: ``"gradient"`` (relaxation, rounding, local search) or ``"exhaustive"``.
        verify: also run the exhaustive path; fills ``exhaustive_usd_per_mtok_output`` and ``gap``.
        scheduler: the engine's scheduling rules (:func:`costmodel.serve`'s ``scheduler``: a
            :class:`costmodel.engines.Scheduler`, an engine's name or ``None``, no caps).
        ttft_percentile, tpot_percentile: hold the target at this percentile of requests (50, 90 or
            99; docs/serving.md §19.10) instead of the mean (``None``, the default).
        prefill_hardware, decode_hardware: the chips the disaggregated pools may run on (a name,
            ``"a,b"`` or a list; either one given, the other defaults to ``hardware``): the
            disaggregated mode then searches every (prefill chip, decode chip) pair, each pool at
            its own chip's price (``usd_per_chip_hour``, if given, prices every chip), and the
            config names the pair (``prefill_hardware``, ``decode_hardware``); the aggregated mode
            stays on ``hardware`` (docs/serving.md §19.4).
        electricity: a :class:`costmodel.Electricity` (default: its defaults, rental chips): with
            ``price_basis="owned"`` the cost includes the electricity, so the search weighs watts against
            chips; every answer reports ``watts`` and ``joules_per_request`` where the chips have a board
            power.
        step: how every candidate's steps are priced (:attr:`costmodel.Rules.step`): ``"roofline"``
            (default), one roofline of all a step's FLOPs and bytes, or ``"operators"``, the sum of the
            kernels an engine runs, each its own roofline (docs/theory.md §20; use it with
            ``efficiency="kernels"``, the efficiencies fitted to measured kernels).

    Returns:
        A :class:`ServingSolution`; an infeasible problem is an answer too (``feasible=False``, with the
        fastest achievable TTFT and TPOT and the chips it would need).

    Raises:
        CostModelError: bad input.

    Example:
        >>> import costmodel as cm
        >>> s = cm.optimize_serving("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), rate_per_s=2.0,
        ...                         ttft_s=0.5, tpot_s=0.05, max_chips=8, method="exhaustive")
        >>> s.feasible, s.tpot_s <= 0.05
        (True, True)
        >>> p = cm.optimize_serving("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), rate_per_s=2.0, tpot_s=0.05,
        ...                         max_chips=8, mode="disagg", decode_hardware="h100-sxm,mi300x")
        >>> p.config["prefill_hardware"], p.config["decode_hardware"] in ("h100-sxm", "mi300x")
        ('h100-sxm', True)
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r:.80}")
    if not isinstance(verify, bool):
        raise ConfigError(f"verify must be True or False, got {verify!r:.80}")
    t0 = time.perf_counter()
    problem = make_serving_problem(model, hardware, requests, rate_per_s=rate_per_s, demand_tps=demand_tps,
                                   ttft_s=ttft_s, tpot_s=tpot_s, max_chips=max_chips, mode=mode, weights=weights,
                                   kv=kv, spec=spec, efficiency=efficiency, usd_per_chip_hour=usd_per_chip_hour,
                                   objective=objective, scheduler=scheduler, ttft_percentile=ttft_percentile,
                                   tpot_percentile=tpot_percentile, prefill_hardware=prefill_hardware,
                                   decode_hardware=decode_hardware, electricity=electricity, step=step)
    return solve(problem, method, verify, t0)


def solve(problem: ServingProblem, method: str = "gradient", verify: bool = False,
          t0: float | None = None) -> ServingSolution:
    """Solve a built :class:`ServingProblem` (see :func:`optimize_serving`)."""
    t0 = time.perf_counter() if t0 is None else t0
    answers, total = {}, 0
    for mode in problem.modes:
        space = space_size(problem, mode)
        total += space
        answers[MODE_NAMES[mode]] = mode_answer(problem, mode, solve_mode(problem, mode, method), method, space, t0)
    ok = [a for a in answers.values() if a.feasible]
    reason = why(problem, answers)
    if ok:
        win = min(ok, key=lambda a: tie_break(problem, a))
        sol = dataclasses.replace(win, modes=answers, space_size=total, message=reason)
    else:
        needs = [a.min_chips_needed for a in answers.values() if a.min_chips_needed is not None]
        fast = [a.fastest for a in answers.values() if a.fastest]
        fastest = None
        if fast:
            i = min(range(len(fast)), key=lambda k: fast[k]["ttft_s"])
            j = min(range(len(fast)), key=lambda k: fast[k]["tpot_s"])
            fastest = {"ttft_s": fast[i]["ttft_s"], "ttft_chips": fast[i]["ttft_chips"],
                       "tpot_s": fast[j]["tpot_s"], "tpot_chips": fast[j]["tpot_chips"]}
        first = next(iter(answers.values()))
        sol = dataclasses.replace(first, modes=answers, space_size=total, message=reason, fastest=fastest,
                                  min_chips_needed=min(needs) if needs else None,
                                  binding="chips" if needs else first.binding)
    sol = dataclasses.replace(sol, wall_time_s=time.perf_counter() - t0)
    if verify:
        ref = solve(problem, "exhaustive", False)
        key = "joules_per_request" if problem.objective == "energy" else "usd_per_mtok"
        gap = getattr(sol, key) / getattr(ref, key) - 1 if sol.feasible and ref.feasible else None
        sol = dataclasses.replace(sol, exhaustive_usd_per_mtok_output=ref.usd_per_mtok_output, gap=gap, verified=True)
    return sol
