"""Fleet planning (docs/fleet.md): the assignment program equals a brute-force enumeration over the same
candidates; the example fleet plans through ``cm.plan`` and the command line; tightening a target never
lowers the cost; an infeasible fleet names the model and what it would need."""

from __future__ import annotations

import itertools
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.fleet.candidates import Candidate
from costmodel.fleet.plan import solve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "fleet.toml"
MODELS = ["llama-3-8b", "llama-3-70b", "qwen3-32b", "mixtral-8x7b"]
CHIPS = ["h100-sxm", "h200", "mi300x", "b200", "gaudi3"]


# ---------------------------------------------------------------- brute force (itertools, no solver)

def brute_cheapest(cost, chips, caps):
    """``(min USD/h, choice)`` over every way to put each model on one chip type within the caps, or ``None``."""
    n_models, n_types = len(cost), len(caps)
    best = None
    for choice in itertools.product(range(n_types), repeat=n_models):
        if any(math.isinf(cost[m][k]) for m, k in enumerate(choice)):
            continue
        used = [sum(chips[m][k] for m, kk in enumerate(choice) if kk == k) for k in range(n_types)]
        if any(u > c for u, c in zip(used, caps)):
            continue
        total = sum(cost[m][k] for m, k in enumerate(choice))
        if best is None or total < best[0]:
            best = (total, choice)
    return best


def brute_most(cost, chips, caps):
    """``(models served, min USD/h among the plans serving that many)``: a model may also stay unserved."""
    n_models, n_types = len(cost), len(caps)
    best = (0, 0.0)
    for choice in itertools.product(range(n_types + 1), repeat=n_models):  # n_types: not served
        if any(k < n_types and math.isinf(cost[m][k]) for m, k in enumerate(choice)):
            continue
        used = [sum(chips[m][k] for m, kk in enumerate(choice) if kk == k) for k in range(n_types)]
        if any(u > c for u, c in zip(used, caps)):
            continue
        served = sum(k < n_types for k in choice)
        total = sum(cost[m][k] for m, k in enumerate(choice) if k < n_types)
        if served > best[0] or (served == best[0] and total < best[1]):
            best = (served, total)
    return best


def brute_extra(cost, chips, caps, k):
    """The fewest chips of type ``k`` to add for every model to be served (``None``: no number suffices)."""
    most = sum(max((c for c in row if c), default=0) for row in chips)  # every model on k at its largest
    for extra in range(most + 1):
        if brute_cheapest(cost, chips, [c + extra * (j == k) for j, c in enumerate(caps)]) is not None:
            return extra
    return None


# ---------------------------------------------------------------- random fleets over given candidates

def random_fleet(rng, models=MODELS, chips=CHIPS):
    """A validated fleet of 1-3 models and 1-3 chip types with random caps and prices."""
    ms = rng.choice(len(models), size=rng.integers(1, 4), replace=False)
    ks = rng.choice(len(chips), size=rng.integers(1, 4), replace=False)
    fleet = cm.load_fleet({
        "models": {f"m{i}": {"model": models[j], "isl": 1024, "osl": 256, "rate_per_s": 1.0} for i, j in enumerate(ms)},
        "chips": {chips[j]: {"available": int(rng.integers(0, 40)), "usd_per_chip_hour": float(rng.uniform(0.5, 6))}
                  for j in ks}})
    return fleet, [int(j) for j in ms], [int(j) for j in ks]


def fake_solution(chips):
    return types.SimpleNamespace(mode="aggregated", config={"chips": chips}, usd_per_mtok_output=1.0, ttft_s=0.1,
                                 tpot_s=0.02, binding="tpot")


def synthetic_candidates(rng, fleet):
    """A frontier point per (model, chip type): 1-48 chips at the fleet's price, or none (1 in 5)."""
    rows = []
    for m in fleet.models:
        row = []
        for c in fleet.chips:
            if rng.random() < 0.2:
                row.append(Candidate(m.name, c.name, None, None, reason="out of reach"))
            else:
                n = int(rng.integers(1, 49))
                row.append(Candidate(m.name, c.name, n, n * c.usd_per_chip_hour,
                                     fake_solution(n) if n <= c.available + 1 else None))
        rows.append(tuple(row))
    return tuple(rows)


def check_against_brute_force(fleet, cands):
    """Every figure of the plan equals the brute-force enumeration over the same candidates."""
    p = solve(fleet, cands)
    cost = [[math.inf if c.chips is None else c.usd_per_hour for c in row] for row in cands]
    chips = [[0 if c.chips is None else c.chips for c in row] for row in cands]
    caps = [c.available for c in fleet.chips]
    best = brute_cheapest(cost, chips, caps)
    assert p.feasible == (best is not None)
    placed = {k: 0 for k in range(len(caps))}
    for m, mp in enumerate(p.models):
        if mp.hardware is not None:
            k = [c.name for c in fleet.chips].index(mp.hardware)
            placed[k] += chips[m][k]
            assert mp.usd_per_hour == cost[m][k]
    assert all(placed[k] <= caps[k] == p.chips[k].available and placed[k] == p.chips[k].used for k in placed)
    assert p.usd_per_hour == pytest.approx(sum(mp.usd_per_hour or 0 for mp in p.models), rel=1e-12)
    if best is not None:
        assert p.usd_per_hour == pytest.approx(best[0], rel=1e-9) and not p.unserved
        for k, row in enumerate(p.chips):
            plus = brute_cheapest(cost, chips, [c + (j == k) for j, c in enumerate(caps)])[0]
            free = brute_cheapest(cost, chips, [math.inf if j == k else c for j, c in enumerate(caps)])[0]
            assert row.usd_per_hour_per_extra_chip == pytest.approx(best[0] - plus, abs=1e-9)
            assert row.usd_per_hour_without_cap == pytest.approx(free, rel=1e-9)
            assert row.binding == (free < best[0] - 1e-9)
    else:
        served, total = brute_most(cost, chips, caps)
        assert len(p.models) - len(p.unserved) == served
        assert p.usd_per_hour == pytest.approx(total, rel=1e-9, abs=1e-12)
        for k, row in enumerate(p.chips):
            assert row.extra_chips_needed == brute_extra(cost, chips, caps, k)
        for name in p.unserved:
            assert name in p.message
    return p


def test_program_equals_brute_force_on_random_fleets():
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(120):
        fleet, _, _ = random_fleet(rng)
        p = check_against_brute_force(fleet, synthetic_candidates(rng, fleet))
        outcomes.add((p.feasible, any(c.binding for c in p.chips)))
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}  # every case was met


def test_a_cap_of_zero_and_a_model_without_any_candidate():
    fleet = cm.load_fleet({"models": {"a": {"model": "llama-3-8b", "isl": 128, "osl": 64, "rate_per_s": 1}},
                           "chips": {"h100-sxm": {"available": 0}, "h200": {"available": 4}}})
    none = ((Candidate("a", "h100-sxm", 2, 4.0), Candidate("a", "h200", None, None, reason="out of reach")),)
    p = check_against_brute_force(fleet, none)
    assert not p.feasible and p.unserved == ("a",) and p.chips[0].extra_chips_needed == 2
    assert p.needs == {"a": {"h100-sxm": {"chips": 2, "free": 0}, "h200": {"chips": None, "free": 4}}}
    assert "a needs 2 h100-sxm (0 free)" in p.message and "2 more h100-sxm" in p.message
