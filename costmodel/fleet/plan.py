"""``plan``: the cheapest fleet within the chip caps, which caps bind, what one more chip is worth.

Candidates (:mod:`.candidates`) -> the assignment program (:mod:`.milp`) -> re-solves with each cap
lifted by one chip and removed -> the answer (:class:`FleetPlan`). An infeasible fleet is an answer:
the models that cannot be served, what each would need, and the fewest extra chips of each type
that make the whole fleet feasible (docs/fleet.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DEFAULT_EFFICIENCY, IDEAL
from ..errors import ConfigError
from ..symbolic import Rules
from . import milp
from .candidates import Candidate, candidates
from .spec import Fleet, load_fleet

__all__ = ["plan", "FleetPlan", "ModelPlan", "ChipPlan", "PowerPlan", "METHODS"]

#: the serving optimiser's methods (``cm.optimize_serving``'s ``method``).
METHODS = ("gradient", "exhaustive")


@dataclass(frozen=True)
class ModelPlan:
    """Where one model is served.

    Attributes:
        name: the model's label.
        model: the model it serves.
        hardware: the chip type chosen (``None``: not served).
        chips: chips of its deployment.
        usd_per_hour: their cost.
        mode: ``"aggregated"`` or ``"disaggregated"``.
        config: the serving optimiser's configuration.
        usd_per_mtok_output: the deployment's USD per million output tokens at the model's demand.
        ttft_s, tpot_s: the deployment's TTFT and TPOT at the demand.
        binding: the serving constraint that sets the deployment's size (``"ttft"``, ``"tpot"``, ``"memory"``, ...).
        power_kw: the deployment's IT power, boards and hosts, in kW (``None``: no board power known).
    """

    name: str
    model: str
    hardware: str | None = None
    chips: int | None = None
    usd_per_hour: float | None = None
    mode: str | None = None
    config: dict | None = None
    usd_per_mtok_output: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    binding: str | None = None
    power_kw: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PowerPlan:
    """The site's power in the plan (docs/fleet.md, docs/theory.md §21).

    Attributes:
        cap_kw: the site's cap on IT power (``None``: no cap).
        used_kw: IT power of the plan's deployments (``None``: a chip without a board power).
        binding: the cap binds (without it the fleet would be cheaper, or serve more models).
        usd_per_hour_per_extra_kw: what one more kW of cap saves per hour (re-solved with the cap + 1 kW;
            ``None`` without a cap or for an infeasible fleet).
        usd_per_hour_without_cap: the fleet's cost without the power cap (``None``: still infeasible, or
            no cap).
    """

    cap_kw: float | None
    used_kw: float | None
    binding: bool = False
    usd_per_hour_per_extra_kw: float | None = None
    usd_per_hour_without_cap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ChipPlan:
    """One chip type's use in the plan.

    Attributes:
        hardware: the chip type.
        available: its cap.
        used: chips the plan uses.
        usd_per_chip_hour: the price the plan pays.
        binding: the cap binds (without it the fleet would be cheaper, or serve more models).
        usd_per_hour_per_extra_chip: what one more chip of this type saves per hour (re-solved with
            the cap + 1; 0 when it saves nothing; ``None`` for an infeasible fleet).
        usd_per_hour_without_cap: the fleet's cost with this cap removed (``None``: still infeasible).
        extra_chips_needed: for an infeasible fleet, the fewest chips of this type to add (other caps
            unchanged) for every model to be served (``None``: no number suffices, or feasible).
        wanted_by: the models that want more of this chip: those the plan without this cap puts on
            it and this plan does not (empty when the cap does not bind).
    """

    hardware: str
    available: int
    used: int
    usd_per_chip_hour: float
    binding: bool
    usd_per_hour_per_extra_chip: float | None
    usd_per_hour_without_cap: float | None
    extra_chips_needed: int | None = None
    wanted_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FleetPlan:
    """The answer of :func:`plan`.

    Attributes:
        feasible: every model is served within the caps.
        usd_per_hour: total cost of the plan (of the models served, when infeasible).
        models: one :class:`ModelPlan` per model, in the fleet's order.
        chips: one :class:`ChipPlan` per chip type, in the fleet's order.
        unserved: labels of the models the caps cannot serve (empty when feasible).
        needs: per unserved model, per chip type, the chips its own deployment needs there
            (``None``: no deployment on that type) and the chips left free by the others.
        message: a paragraph: the plan, the binding caps, or what is missing.
        candidates: ``[model][chip type]`` frontier points the program chose from.
        method: the serving optimiser's method.
        wall_time_s: seconds for the whole plan.
        candidates_time_s: seconds of the serving optimisations.
        milp_time_s: seconds of every program solved (the plan and its re-solves).
        power: the site's power: the cap, what the plan draws, whether the cap binds and what one more kW
            is worth (:class:`PowerPlan`).
    """

    feasible: bool
    usd_per_hour: float
    models: tuple[ModelPlan, ...]
    chips: tuple[ChipPlan, ...]
    unserved: tuple[str, ...]
    needs: dict[str, dict[str, dict[str, int | None]]]
    message: str
    candidates: tuple[tuple[Candidate, ...], ...] = field(repr=False)
    method: str = "gradient"
    wall_time_s: float = 0.0
    candidates_time_s: float = 0.0
    milp_time_s: float = 0.0
    power: PowerPlan = PowerPlan(None, None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (docs/fleet.md lists the keys)."""
        return {"feasible": self.feasible, "usd_per_hour": self.usd_per_hour, "power": self.power.to_dict(),
                "models": [m.to_dict() for m in self.models], "chips": [c.to_dict() for c in self.chips],
                "unserved": list(self.unserved), "needs": self.needs, "message": self.message,
                "candidates": [c.to_dict() for row in self.candidates for c in row], "method": self.method,
                "wall_time_s": self.wall_time_s, "candidates_time_s": self.candidates_time_s,
                "milp_time_s": self.milp_time_s}


def _tables(cands: tuple[tuple[Candidate, ...], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cost = np.array([[np.inf if c.chips is None else c.usd_per_hour for c in row] for row in cands], float)
    chips = np.array([[0 if c.chips is None else c.chips for c in row] for row in cands], float)
    power = np.array([[0.0 if c.power_kw is None else c.power_kw for c in row] for row in cands], float)
    return cost, chips, power


def _model_plan(fleet: Fleet, cands, m: int, k: int | None) -> ModelPlan:
    md = fleet.models[m]
    if k is None:
        return ModelPlan(md.name, md.model)
    c = cands[m][k]
    s = c.solution
    return ModelPlan(md.name, md.model, c.hardware, c.chips, c.usd_per_hour, s.mode, s.config,
                     s.usd_per_mtok_output, s.ttft_s, s.tpot_s, s.binding, c.power_kw)


def solve(fleet: Fleet, cands: tuple[tuple[Candidate, ...], ...], *, method: str = "gradient",
          candidates_time_s: float = 0.0) -> FleetPlan:
    """The plan over given candidates: the program, its re-solves and the answer."""
    t0 = time.perf_counter()
    cost, chips, power = _tables(cands)
    caps = np.array([c.available for c in fleet.chips], float)
    kw = {"power": power, "power_cap": np.inf if fleet.power_cap_kw is None else fleet.power_cap_kw}
    best = milp.assign(cost, chips, caps, **kw)
    feasible = best is not None
    base = best if feasible else milp.serve_most(cost, chips, caps, **kw)
    served = sum(k is not None for k in base.choice)
    rows = []
    for k, chip in enumerate(fleet.chips):
        used = int(sum(chips[m, kk] for m, kk in enumerate(base.choice) if kk == k))
        plus, free = caps.copy(), caps.copy()
        plus[k] += 1
        free[k] = np.inf
        uncapped = milp.assign(cost, chips, free, **kw)
        if feasible:
            more = milp.assign(cost, chips, plus, **kw)  # feasible: caps only grew
            saving = max(best.usd_per_hour - more.usd_per_hour, 0.0)
            binding = uncapped.usd_per_hour < best.usd_per_hour * (1 - 1e-12)
            extra, without = None, uncapped
        else:
            saving = None
            without = milp.serve_most(cost, chips, free, **kw)
            binding = sum(kk is not None for kk in without.choice) > served
            extra = milp.extra_chips(cost, chips, caps, k, **kw)
        wanted = tuple(fleet.models[m].name for m, (kk, was) in enumerate(zip(without.choice, base.choice))
                       if binding and kk == k and was != k)
        rows.append(ChipPlan(chip.name, chip.available, used, chip.usd_per_chip_hour, bool(binding), saving,
                             None if uncapped is None else uncapped.usd_per_hour, extra, wanted))
    site = _power_plan(fleet, cands, cost, chips, caps, power, base, best, served)
    milp_s = time.perf_counter() - t0
    models = tuple(_model_plan(fleet, cands, m, k) for m, k in enumerate(base.choice))
    unserved = tuple(mp.name for mp in models if mp.hardware is None)
    needs = {}
    for m, mp in enumerate(models):
        if mp.hardware is None:
            needs[mp.name] = {c.name: {"chips": cands[m][k].chips, "free": c.available - rows[k].used}
                              for k, c in enumerate(fleet.chips)}
    return FleetPlan(feasible, base.usd_per_hour, models, tuple(rows), unserved, needs,
                     _message(fleet, models, rows, unserved, needs, base.usd_per_hour, cands, site), cands, method,
                     candidates_time_s + milp_s, candidates_time_s, milp_s, site)


def _power_plan(fleet: Fleet, cands, cost, chips, caps, power, base, best, served: int) -> PowerPlan:
    """What the plan draws, and, under a site cap, whether it binds and what one more kW is worth."""
    chosen = [cands[m][k] for m, k in enumerate(base.choice) if k is not None]
    used = None if any(c.power_kw is None for c in chosen) else float(sum(c.power_kw for c in chosen))
    cap = fleet.power_cap_kw
    if cap is None:
        return PowerPlan(None, used)
    free = milp.assign(cost, chips, caps)  # the chip caps alone
    if best is not None:
        more = milp.assign(cost, chips, caps, power=power, power_cap=cap + 1.0)  # feasible: the cap only grew
        binding = free.usd_per_hour < best.usd_per_hour * (1 - 1e-12)
        return PowerPlan(cap, used, bool(binding), max(best.usd_per_hour - more.usd_per_hour, 0.0), free.usd_per_hour)
    most = milp.serve_most(cost, chips, caps)
    binding = sum(k is not None for k in most.choice) > served
    return PowerPlan(cap, used, bool(binding), None, None if free is None else free.usd_per_hour)


def _money(v: float) -> str:
    return f"${v:,.2f}/h" if v >= 0.1 else f"${v:.3g}/h"


def _message(fleet, models, rows, unserved, needs, total, cands, site: PowerPlan) -> str:
    if not unserved:
        placed = "; ".join(f"{mp.name} on {mp.chips} {mp.hardware} ({mp.mode})" for mp in models)
        text = f"Serve {placed}: {_money(total)}."
        binding = [r for r in rows if r.binding]
        by_name = {mp.name: mp for mp in models}
        for r in binding:
            moves = [f"{n} (now on {by_name[n].chips} {by_name[n].hardware})" for n in r.wanted_by]
            text += (f" The {r.hardware} cap ({r.available}) binds"
                     + (f": without it {' and '.join(moves)} would move to {r.hardware}" if moves else "")
                     + "; one more chip saves "
                     f"{_money(r.usd_per_hour_per_extra_chip) if r.usd_per_hour_per_extra_chip else 'nothing'}"
                     f", without the cap the fleet costs {_money(r.usd_per_hour_without_cap)}.")
        if site.binding:
            saving = site.usd_per_hour_per_extra_kw
            text += (f" The site's power cap ({site.cap_kw:,.4g} kW) binds: the plan draws {site.used_kw:,.4g} kW; "
                     f"one more kW saves {_money(saving) if saving else 'nothing'}, without the cap the fleet costs "
                     f"{_money(site.usd_per_hour_without_cap)}.")
        elif site.cap_kw is not None:
            text += f" The plan draws {site.used_kw:,.4g} kW of the site's {site.cap_kw:,.4g} kW."
        if not binding and not site.binding:
            text += " No cap binds: each model is on its cheapest chip type."
        return text
    m_index = {m.name: i for i, m in enumerate(fleet.models)}
    parts = []
    for name in unserved:
        opts = [f"{v['chips']} {hw} ({max(v['free'], 0)} free)" for hw, v in needs[name].items() if v["chips"] is not None]
        why = [c.reason for c in cands[m_index[name]] if c.chips is None and c.reason]
        parts.append(f"{name} needs " + (" or ".join(opts) if opts else "a chip type it can run on")
                     + (f" ({why[0]} elsewhere)" if why and not opts else ""))
    caps = "the caps" + (" and the site's power cap" if site.binding else "")
    text = (f"Infeasible: {caps} cannot serve every model. Not served: {'; '.join(parts)}.")
    fixes = [f"{r.extra_chips_needed} more {r.hardware}" for r in rows if r.extra_chips_needed is not None]
    text += (f" Every model is served with {' or '.join(fixes)}." if fixes
             else " No single chip type's extra chips serve every model.")
    if len(unserved) < len(models):
        text += f" The other models are served for {_money(total)}."
    return text


def plan(fleet: str | Path | Mapping[str, Any] | Fleet, *, efficiency: Any = DEFAULT_EFFICIENCY,
         method: str = "gradient", step: str = Rules.step) -> FleetPlan:
    """The cheapest fleet: for every model its chip type, mode, configuration and replicas, within the caps.

    Args:
        fleet: a fleet TOML file, a parsed mapping of the same shape, or a :class:`~costmodel.fleet.Fleet`
            (docs/fleet.md).
        efficiency: ``"calibrated"`` (default), ``cm.IDEAL`` (``"ideal"``) or a profile path, as ``cm.optimize``.
        method: the serving optimiser's method, ``"gradient"`` or ``"exhaustive"``.
        step: how every deployment's steps are priced, ``"roofline"`` (default) or ``"operators"``, as
            ``cm.optimize_serving``.

    Returns:
        A :class:`FleetPlan`; an infeasible fleet is an answer (``feasible`` false), not an error.

    Raises:
        ConfigError: a malformed fleet, an unknown method or efficiency profile.

    ``p = cm.plan("docs/examples/fleet.toml")`` then ``p.usd_per_hour``, ``p.message`` and
    ``[(m.name, m.hardware, m.chips, m.config) for m in p.models]``.
    """
    fleet = load_fleet(fleet)
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r:.80}")
    _check_efficiency(efficiency, fleet)
    step = Rules(step=step).step  # refused with the allowed values before anything is compiled
    t0 = time.perf_counter()
    cands = candidates(fleet, efficiency=efficiency, method=method, step=step)
    return solve(fleet, cands, method=method, candidates_time_s=time.perf_counter() - t0)


def _check_efficiency(efficiency: Any, fleet: Fleet) -> None:
    """Refuse an unknown or malformed profile once, before any optimisation runs."""
    from ..efficiency import resolve_efficiency
    from ..specs import load_hardware

    resolve_efficiency(efficiency, load_hardware(fleet.chips[0].name), "decode")
