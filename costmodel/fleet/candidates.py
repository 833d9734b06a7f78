"""Candidate deployments: per (model, chip type), the fewest chips that serve the model's demand.

At a fixed demand a deployment on one chip type costs ``price x chips`` per hour, and the cap of that
type counts the same chips, so cost and cap usage are one number: the cost-versus-chips frontier of
a (model, chip type) pair is a single point, the deployment with the fewest chips that meets the
model's targets at its rate. Any other deployment on that type costs more *and* uses more of the
cap, so a plan holding it is improved by swapping in the frontier point; the program over these
points is exact over every single-type deployment the serving optimiser considers.

The serving optimiser minimises USD per million output tokens at the demand, which at a fixed rate
is ``price x chips`` over a fixed token count: its answer is that point. Owned chips are priced with
their electricity (docs/theory.md §21), so the optimiser weighs their watts too and answers the cheapest
deployment with it, which may hold a chip more than the fewest: there the point is the cheapest, and
the program exact over the cheapest deployment of each pair. It is asked with a budget of
``available + 1`` chips, so the same candidates also answer "what is one more chip worth"; when the
fewest chips exceed that budget it reports how many would be needed (``min_chips_needed``), which is
the candidate's size for the questions that lift a cap (its configuration is then not computed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_EFFICIENCY, DEFAULT_PUE, DEFAULT_USD_PER_KWH, Electricity
from ..errors import CostModelError, PrecisionError
from ..symbolic import Rules, usd_per_joule
from .spec import ChipSupply, Fleet, ModelDemand

__all__ = ["Candidate", "candidates", "RETRY_BUDGET"]

#: the budget of a second request when nothing fits within ``available + 1`` chips (nor the
#: multiples of it the serving optimiser tries): a model larger than one chip's memory, on a cap of 0.
RETRY_BUDGET = 64


@dataclass(frozen=True)
class Candidate:
    """The frontier point of one (model, chip type) pair.

    Attributes:
        model: the model's label in the fleet.
        hardware: the chip type.
        chips: the fewest chips that meet the model's targets at its rate (``None``: none does).
        usd_per_hour: ``chips x`` the fleet's price of the chip type (``None`` with ``chips``), plus the
            electricity of owned chips at the site's price and PUE.
        power_kw: IT power of the deployment, boards (their mean power at the demand, ``cm.serve``) and hosts,
            in kW; for a deployment the optimiser did not size (``needs N chips``), ``N`` boards at their
            maximum power; ``None`` without a board power.
        solution: the serving optimiser's answer (a ``ServingSolution``) when ``chips`` is within
            the budget asked (``available + 1``); ``None`` otherwise.
        reason: why there is no deployment within the budget (empty when there is one).
    """

    model: str
    hardware: str
    chips: int | None
    usd_per_hour: float | None
    solution: Any = None
    reason: str = ""
    power_kw: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``model``, ``hardware``, ``chips``, ``usd_per_hour``, ``mode``, ``reason``."""
        return {"model": self.model, "hardware": self.hardware, "chips": self.chips,
                "usd_per_hour": self.usd_per_hour, "power_kw": self.power_kw,
                "mode": self.solution.mode if self.solution else None, "reason": self.reason}


def _optimize_serving():
    from ..optimizer.serving import optimize_serving  # imports JAX: only when a fleet is planned

    return optimize_serving


def _fastest(sol: Any) -> str:
    fast = getattr(sol, "fastest", None) or {}
    parts = [f"{k[:-2].upper()} {fast[k] * 1e3:.3g} ms" for k in ("ttft_s", "tpot_s")
             if isinstance(fast.get(k), (int, float))]
    if not parts:
        return "nothing fits in memory and keeps up with the rate"
    return f"the targets are out of reach (fastest {', '.join(parts)})"


def _unsized(site: Mapping[str, float], chip: ChipSupply, chips: int) -> tuple[float, float | None]:
    """USD per hour and IT power (kW) of a deployment the optimiser did not size (``needs N chips``): ``chips``
    boards at their maximum power and their hosts (``None`` without a board power), priced as the optimiser
    prices a sized one (docs/theory.md §21)."""
    h = chip.spec
    usd = chips * chip.usd_per_chip_hour
    if not h.has_power:
        return usd, None
    watts = chips * (h.max_power_w + (h.host_power_w or 0.0))
    if chip.price_basis == "owned":
        usd += watts * 3600.0 * usd_per_joule(site["pue"], site["usd_per_kwh"])
    return usd, watts / 1e3


def one(model: ModelDemand, chip: ChipSupply, *, efficiency: Any = DEFAULT_EFFICIENCY,
        method: str = "gradient", site: Mapping[str, float] | None = None, step: str = Rules.step) -> Candidate:
    """The frontier point of ``model`` on ``chip`` (budget ``chip.available + 1``); ``site`` holds the
    ``usd_per_kwh`` and ``pue`` that price owned chips' electricity; ``step`` how steps are priced
    (``cm.optimize_serving``'s)."""
    site = site or {"usd_per_kwh": DEFAULT_USD_PER_KWH, "pue": DEFAULT_PUE}
    if model.hardware is not None and chip.name not in model.hardware:
        return Candidate(model.name, chip.name, None, None, reason="not in the model's hardware list")
    options: dict[str, Any] = {}
    if model.weights is not None:
        options["weights"] = ",".join(model.weights)
    if model.kv is not None:
        options["kv"] = ",".join(model.kv)

    # owned chips: the optimiser prices their electricity, so it weighs their watts against their chips
    electricity = Electricity(usd_per_kwh=site["usd_per_kwh"], pue=site["pue"], price_basis=chip.price_basis)

    def ask(budget: int):
        return _optimize_serving()(
            model.model, chip.spec if chip.hardware is not None else chip.name, requests=model.requests,
            rate_per_s=model.rate_per_s, demand_tps=model.output_tokens_per_s, ttft_s=model.ttft_s,
            tpot_s=model.tpot_s, max_chips=budget, mode=model.mode, efficiency=efficiency,
            usd_per_chip_hour=chip.usd_per_chip_hour, method=method, electricity=electricity, step=step,
            **options)

    try:
        sol = ask(chip.available + 1)
    except PrecisionError as e:  # e.g. fp8 asked of a chip without fp8 math
        return Candidate(model.name, chip.name, None, None, reason=str(e))
    if sol.feasible:  # the optimiser's price (with the electricity of owned chips) and power (cm.serve's)
        return Candidate(model.name, chip.name, int(sol.chips), sol.usd_per_hour, sol,
                         power_kw=None if sol.watts is None else sol.watts / 1e3)
    need = getattr(sol, "min_chips_needed", None)
    if need is None and not getattr(sol, "fastest", None) and chip.available + 1 < RETRY_BUDGET:
        # Nothing fits and keeps up within the budget, nor within the larger ones the optimiser tried:
        # ask once more with a budget of RETRY_BUDGET chips, so that "what it would need" has a number.
        try:
            big = ask(RETRY_BUDGET)
        except CostModelError:
            big = None
        if big is not None and big.feasible:
            need = int(big.chips)
        elif big is not None:
            need = getattr(big, "min_chips_needed", None)
    if need is not None:
        usd, kw = _unsized(site, chip, int(need))
        return Candidate(model.name, chip.name, int(need), usd, reason=f"needs {int(need)} chips", power_kw=kw)
    return Candidate(model.name, chip.name, None, None, reason=_fastest(sol))


def candidates(fleet: Fleet, *, efficiency: Any = DEFAULT_EFFICIENCY, method: str = "gradient",
               step: str = Rules.step) -> tuple[tuple[Candidate, ...], ...]:
    """``[model][chip type]`` frontier points of every pair of the fleet."""
    site = {"usd_per_kwh": fleet.usd_per_kwh, "pue": fleet.pue}
    return tuple(tuple(one(m, c, efficiency=efficiency, method=method, site=site, step=step) for c in fleet.chips)
                 for m in fleet.models)
