"""Fleet planning (docs/fleet.md): the assignment program equals a brute-force enumeration over the same
candidates; the example fleet plans through ``cm.plan`` and the command line; tightening a target never
lowers the cost; an infeasible fleet names the model and what it would need."""

from __future__ import annotations

import contextlib
import importlib.util
import io
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

_spec = importlib.util.spec_from_file_location(
    "fleet_plan_experiment", Path(__file__).resolve().parents[1] / "experiments" / "fleet_plan.py")
_fleet_experiment = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fleet_experiment)


def brute_cheapest(cost, chips, caps, power=None, power_cap=math.inf):
    """``(min USD/h, choice)`` over every way to put each model on one chip type within the caps (and the site's
    power cap, ``power[m][k]`` kW per candidate), or ``None``."""
    n_models, n_types = len(cost), len(caps)
    best = None
    for choice in itertools.product(range(n_types), repeat=n_models):
        if any(math.isinf(cost[m][k]) for m, k in enumerate(choice)):
            continue
        used = [sum(chips[m][k] for m, kk in enumerate(choice) if kk == k) for k in range(n_types)]
        if any(u > c for u, c in zip(used, caps)):
            continue
        if power is not None and sum(power[m][k] for m, k in enumerate(choice)) > power_cap * (1 + 1e-9):
            continue
        total = sum(cost[m][k] for m, k in enumerate(choice))
        if best is None or total < best[0]:
            best = (total, choice)
    return best


#: ``(models served, min USD/h among the plans serving that many)``, a model allowed to stay unserved:
#: the enumeration experiments/fleet_plan.py checks the program against
brute_most = _fleet_experiment.brute


def brute_extra(cost, chips, caps, k, **power):
    """The fewest chips of type ``k`` to add for every model to be served (``None``: no number suffices)."""
    most = sum(max((c for c in row if c), default=0) for row in chips)  # every model on k at its largest
    for extra in range(most + 1):
        if brute_cheapest(cost, chips, [c + extra * (j == k) for j, c in enumerate(caps)], **power) is not None:
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
    pw = {"power": [[c.power_kw or 0.0 for c in row] for row in cands],
          "power_cap": math.inf if fleet.power_cap_kw is None else fleet.power_cap_kw}
    best = brute_cheapest(cost, chips, caps, **pw)
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
            plus = brute_cheapest(cost, chips, [c + (j == k) for j, c in enumerate(caps)], **pw)[0]
            free = brute_cheapest(cost, chips, [math.inf if j == k else c for j, c in enumerate(caps)], **pw)[0]
            assert row.usd_per_hour_per_extra_chip == pytest.approx(best[0] - plus, abs=1e-9)
            assert row.usd_per_hour_without_cap == pytest.approx(free, rel=1e-9)
            assert row.binding == (free < best[0] - 1e-9)
            # a binding cap names who wants more of it: models this plan keeps off the chip (the plan
            # without the cap uses more of it than the cap, so at least one model moves there)
            assert bool(row.wanted_by) == row.binding
            for name in row.wanted_by:
                assert next(mp for mp in p.models if mp.name == name).hardware != row.hardware
                assert f"without it {name}" in p.message or f" and {name} (now" in p.message
    else:
        served, total = brute_most(cost, chips, caps, pw["power"], pw["power_cap"])
        assert len(p.models) - len(p.unserved) == served
        assert p.usd_per_hour == pytest.approx(total, rel=1e-9, abs=1e-12)
        for k, row in enumerate(p.chips):
            assert row.extra_chips_needed == brute_extra(cost, chips, caps, k, **pw)
    if fleet.power_cap_kw is not None:  # the site's power: what the plan draws, and what one more kW is worth
        cap = fleet.power_cap_kw
        assert p.power.used_kw <= cap * (1 + 1e-9)
        free = brute_cheapest(cost, chips, caps)
        if best is not None:
            more = brute_cheapest(cost, chips, caps, pw["power"], cap + 1.0)[0]
            assert p.power.usd_per_hour_per_extra_kw == pytest.approx(best[0] - more, abs=1e-9)
            assert p.power.binding == (free[0] < best[0] - 1e-9)
            assert p.power.usd_per_hour_without_cap == pytest.approx(free[0], rel=1e-9)
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


def test_program_with_a_site_power_cap_equals_brute_force_on_random_fleets():
    """Random kW per candidate and a cap between the least a plan could draw and what the uncapped plan draws
    (or the most any could): the plan, its re-solves and the value of one more kW equal the enumeration."""
    import dataclasses

    rng = np.random.default_rng(23)
    binding = 0
    for _ in range(120):
        fleet, _, _ = random_fleet(rng)
        cands = tuple(tuple(dataclasses.replace(c, power_kw=None if c.chips is None else float(c.chips * rng.uniform(0.5, 1.5)))
                            for c in row) for row in synthetic_candidates(rng, fleet))
        draws = [sum(min((c.power_kw for c in row if c.power_kw is not None), default=0.0) for row in cands),
                 sum(max((c.power_kw for c in row if c.power_kw is not None), default=0.0) for row in cands)]
        free = solve(fleet, cands).power.used_kw  # what the plan draws without a cap: cap below it, mostly
        hi = free if free and free > draws[0] and rng.random() < 0.8 else draws[1]
        capped = dataclasses.replace(fleet, power_cap_kw=float(rng.uniform(draws[0], hi)) if hi > 0 else 1.0)
        p = check_against_brute_force(capped, cands)
        binding += p.power.binding
    assert 5 <= binding < 120  # the caps bind often enough to test what binding means, and not always


def test_a_cap_of_zero_and_a_model_without_any_candidate():
    fleet = cm.load_fleet({"models": {"a": {"model": "llama-3-8b", "isl": 128, "osl": 64, "rate_per_s": 1}},
                           "chips": {"h100-sxm": {"available": 0}, "h200": {"available": 4}}})
    none = ((Candidate("a", "h100-sxm", 2, 4.0), Candidate("a", "h200", None, None, reason="out of reach")),)
    p = check_against_brute_force(fleet, none)
    assert not p.feasible and p.unserved == ("a",) and p.chips[0].extra_chips_needed == 2
    assert p.needs == {"a": {"h100-sxm": {"chips": 2, "free": 0}, "h200": {"chips": None, "free": 4}}}
    assert "a needs 2 h100-sxm (0 free)" in p.message and "2 more h100-sxm" in p.message


# ---------------------------------------------------------------- with the serving optimiser

def serve_again(fleet, mp, efficiency):
    """``cm.serve`` of the plan's deployment for model ``mp`` at the model's rate (the exact serving model)."""
    md = next(m for m in fleet.models if m.name == mp.name)
    rate = md.rate_per_s if md.rate_per_s is not None else md.output_tokens_per_s / md.requests.output_tokens
    price = next(c.usd_per_chip_hour for c in fleet.chips if c.name == mp.hardware)
    c = mp.config
    if mp.mode == "aggregated":
        return cm.serve(md.model, mp.hardware, md.requests, cm.Load.rate(rate),
                        parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"], replicas=c["replicas"]),
                        precision=cm.Precision(weights=c["weights"], kv=c["kv"]), chunk_tokens=float(c["chunk"]),
                        rules=cm.Rules(attention_sharding=c["attention"]), efficiency=efficiency,
                        usd_per_chip_hour=price)
    pools = {k: cm.Parallel(tp=c[k]["tp"], pp=c[k]["pp"], ep=c[k]["ep"], replicas=c[k]["replicas"])
             for k in ("prefill", "decode")}
    dg = cm.Disaggregated(prefill=cm.Pool(pools["prefill"], batch=c["prefill"]["batch"]), decode=cm.Pool(pools["decode"]))
    return cm.serve(md.model, mp.hardware, md.requests, cm.Load.rate(rate), disagg=dg,
                    precision=cm.Precision(weights=c["decode"]["weights"], kv=c["decode"]["kv"]),
                    efficiency=efficiency, usd_per_chip_hour=price)


@pytest.fixture(scope="module")
def example():
    """``(fleet, plan, JSON)``: ``costmodel plan docs/examples/fleet.toml --json`` run once, its ``cm.plan`` answer
    kept on the way (planning takes a serving optimisation per model and chip type: run it once)."""
    import costmodel.fleet.plan as planner

    kept = []

    def spy(*args, **kwargs):
        kept.append(real(*args, **kwargs))
        return kept[-1]

    real, planner.plan = planner.plan, spy
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(["plan", str(EXAMPLE), "--json"])
    finally:
        planner.plan = real
    assert code == 0 and len(kept) == 1
    return cm.load_fleet(EXAMPLE), kept[0], json.loads(out.getvalue())


def test_example_plan_meets_every_target_under_the_serving_model(example):
    fleet, p, _ = example
    assert p.feasible and len(p.models) == len(fleet.models) and p.usd_per_hour > 0
    for md, mp in zip(fleet.models, p.models):
        s = serve_again(fleet, mp, "calibrated")
        assert s.chips == mp.chips and s.fits and not s.saturated, mp.name
        assert md.ttft_s is None or s.ttft_s <= md.ttft_s * (1 + 1e-6), mp.name
        assert md.tpot_s is None or s.tpot_s <= md.tpot_s * (1 + 1e-6), mp.name
        assert md.hardware is None or mp.hardware in md.hardware
        price = next(c.usd_per_chip_hour for c in fleet.chips if c.name == mp.hardware)
        assert mp.usd_per_hour == pytest.approx(mp.chips * price, rel=1e-12)
    for c in p.chips:
        assert c.used <= c.available


def test_example_plan_equals_brute_force_over_its_candidates(example):
    fleet, p, _ = example
    assert check_against_brute_force(fleet, p.candidates).usd_per_hour == pytest.approx(p.usd_per_hour, rel=1e-12)
    for row in p.candidates:  # each frontier point is the fewest chips: one fewer is not a deployment it found
        for c in row:
            assert c.chips is None or c.solution is None or c.solution.chips == c.chips


def test_the_example_site_power_cap_binds(example):
    """docs/examples/fleet.toml caps the site's IT power where it binds: the plan draws no more, pays more than
    without the cap, and says what one more kW saves; each model's kW is its chips' serving power and hosts."""
    fleet, p, d = example
    assert p.feasible and p.power.cap_kw == fleet.power_cap_kw and p.power.binding
    assert p.power.used_kw <= p.power.cap_kw and p.power.usd_per_hour_without_cap < p.usd_per_hour
    assert p.power.usd_per_hour_per_extra_kw > 0 and "power cap" in p.message
    assert d["power"]["binding"] and d["power"]["used_kw"] == pytest.approx(p.power.used_kw, rel=1e-12)
    for md, mp in zip(fleet.models, p.models):
        s = serve_again(fleet, mp, "calibrated")
        h = cm.load_hardware(mp.hardware)
        assert mp.power_kw == pytest.approx(mp.chips * (s.power_w_per_chip + (h.host_power_w or 0.0)) / 1e3, rel=1e-6)
    assert sum(mp.power_kw for mp in p.models) == pytest.approx(p.power.used_kw, rel=1e-12)


def test_command_line_plans_the_example(example):
    _, p, d = example
    assert d["feasible"] and d["usd_per_hour"] == pytest.approx(p.usd_per_hour, rel=1e-12)
    assert [m["hardware"] for m in d["models"]] == [m.hardware for m in p.models]
    assert set(d) == {"feasible", "usd_per_hour", "models", "chips", "unserved", "needs", "message", "candidates",
                      "method", "wall_time_s", "candidates_time_s", "milp_time_s", "power"}
    assert p.method == "gradient" and [c["available"] for c in d["chips"]] == [32, 16, 1]
    from costmodel.cli.plan_cmd import render

    text = render(d, types.SimpleNamespace(fleet=str(EXAMPLE), efficiency="calibrated", step="roofline"))
    assert text.splitlines()[1].startswith("answer: Serve chat on")
    assert all(m.name in text for m in p.models)


ONE = {"chips": {"h100-sxm": {"available": 16}, "mi300x": {"available": 8}},
       "models": {"chat": {"model": "llama-3-70b", "isl": 1024, "osl": 256, "rate_per_s": 4.0}}}


def _with(fleet, **targets):
    out = json.loads(json.dumps(fleet))
    out["models"]["chat"].update(targets)
    return out


def test_tightening_a_target_never_lowers_the_fleet_cost():
    for key, targets in (("tpot_ms", [200, 40, 12]), ("ttft_ms", [8000, 300])):
        costs = []
        for t in targets:
            p = cm.plan(_with(ONE, **{key: t}), method="exhaustive", efficiency=cm.IDEAL)
            costs.append(p.usd_per_hour if p.feasible else math.inf)
        assert costs == sorted(costs), (key, costs)
        assert math.isfinite(costs[0])


def test_an_infeasible_fleet_names_the_model_and_what_it_would_need(capsys, tmp_path):
    fleet = json.loads(json.dumps(ONE))
    fleet["chips"] = {"h100-sxm": {"available": 1}, "mi300x": {"available": 0}}
    p = cm.plan(fleet, efficiency=cm.IDEAL)
    assert not p.feasible and p.unserved == ("chat",) and p.models[0].hardware is None and p.usd_per_hour == 0
    need = p.needs["chat"]
    # Llama 3 70B in bf16 holds 141 GB of weights: more than one 80 GB H100, less than one 192 GB MI300X
    assert need["h100-sxm"]["chips"] >= 2 and need["h100-sxm"]["free"] == 1
    assert need["mi300x"]["chips"] >= 1 and need["mi300x"]["free"] == 0
    extra = {c.hardware: c.extra_chips_needed for c in p.chips}
    assert extra == {"h100-sxm": need["h100-sxm"]["chips"] - 1, "mi300x": need["mi300x"]["chips"]}
    assert all(c.binding for c in p.chips)
    # the sizes it names are the deployments a plan with room finds
    roomy = cm.plan(_with(ONE) | {"chips": {"h100-sxm": {"available": 64}, "mi300x": {"available": 64}}}, efficiency=cm.IDEAL)
    assert {c.hardware: c.chips for c in roomy.candidates[0]} == {k: v["chips"] for k, v in need.items()}
    path = tmp_path / "fleet.toml"
    path.write_text('[chips.h100-sxm]\navailable = 1\n[chips.mi300x]\navailable = 0\n'
                    '[models.chat]\nmodel = "llama-3-70b"\nisl = 1024\nosl = 256\nrate_per_s = 4.0\n')
    code = main(["plan", str(path), "--efficiency", "ideal"])
    out, err = capsys.readouterr()
    assert code == 0 and not err
    assert "INFEASIBLE" in out and f"chat needs {need['h100-sxm']['chips']} h100-sxm (1 free)" in out, out


def test_the_command_line_spells_the_methods_of_the_planner_and_the_serving_optimiser():
    from costmodel.cli import plan_cmd
    from costmodel.fleet.plan import METHODS
    from costmodel.optimizer.serving.api import METHODS as SERVING_METHODS

    assert plan_cmd.METHODS == METHODS == SERVING_METHODS
