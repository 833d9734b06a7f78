"""Power, energy and electricity (docs/theory.md §21): hand arithmetic on one configuration per chip family,
the bounds every prediction keeps, the owned price basis, the energy objective against exhaustive search,
serving's split between input and output tokens, and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import costmodel as cm
from costmodel.config import DEFAULT_PUE, DEFAULT_USD_PER_KWH
from costmodel.specs.hardware import MEMORY_POWER_SHARE
from cli_run import run_cli

#: one chip per family with a board power: NVIDIA Hopper, NVIDIA Blackwell, AMD, Intel, Google
FAMILIES = ("h100-sxm", "b200", "mi300x", "gaudi3", "tpu-v4")


def _model_for(chip: str) -> str:
    return "llama-3-8b"


@pytest.mark.parametrize("chip", FAMILIES)
def test_a_compute_bound_prefill_draws_the_whole_board(chip):
    """Ideal prefill on one chip: the step is all compute (u_c = 1), so the board draws P_max, and the joules
    per prompt token are (P_max + P_host)·T_step/(B·T_in), by hand from the datasheet figures."""
    h = cm.load_hardware(chip)
    p = cm.predict(_model_for(chip), chip, cm.Workload(batch=1, context=4096, phase="prefill"), efficiency="ideal")
    v = p.values
    assert v["compute_s"] == pytest.approx(v["step_time_s"], rel=1e-12)  # compute-bound, nothing else
    assert p.power_w_per_chip == pytest.approx(h.max_power_w, rel=1e-12)
    host = h.host_power_w or 0.0
    d = p.to_dict()
    assert d["joules_per_input_token"] == pytest.approx((h.max_power_w + host) * v["step_time_s"] / 4096, rel=1e-12)
    assert d["joules_per_output_token"] is None


@pytest.mark.parametrize("chip", FAMILIES)
def test_a_memory_bound_decode_draws_the_memory_share(chip):
    """Ideal decode of one sequence: the step is the weight and KV stream (u_m = 1), the compute busy
    F/(C·T) of it; by hand P = P_idle + (P_max - P_idle)(1 - (1 - F/(C T))(1 - β_m))."""
    h = cm.load_hardware(chip)
    p = cm.predict(_model_for(chip), chip, cm.Workload(batch=1, context=2048), efficiency="ideal")
    v = p.values
    t = v["step_time_s"]
    assert v["weights_s"] + v["kv_s"] == pytest.approx(t, rel=1e-12)
    u_c = v["flops_per_step"] / (h.flops_per_s[p.scenario.math] * t)
    hand = h.idle_power_w + (h.max_power_w - h.idle_power_w) * (1 - (1 - u_c) * (1 - MEMORY_POWER_SHARE))
    assert p.power_w_per_chip == pytest.approx(hand, rel=1e-9)
    joules = (hand + (h.host_power_w or 0.0)) * t
    assert p.to_dict()["joules_per_output_token"] == pytest.approx(joules, rel=1e-9)
    usd = joules * DEFAULT_PUE * DEFAULT_USD_PER_KWH / 3.6e6 * 1e6
    assert p.usd_per_mtok_energy == pytest.approx(usd, rel=1e-9)


def _random_configs(rng, n):
    chips = [c for c in cm.list_hardware() if cm.load_hardware(c).has_power]
    out = []
    for _ in range(n):
        chip = str(rng.choice(chips))
        model = str(rng.choice(["llama-3-8b", "llama-3-70b", "mixtral-8x7b", "qwen3-32b"]))
        phase = str(rng.choice(["decode", "prefill"]))
        out.append({"model": model, "hardware": chip,
                    "workload": cm.Workload(batch=float(2 ** rng.integers(0, 9)), context=float(2 ** rng.integers(8, 15)),
                                            phase=phase),
                    "parallel": cm.Parallel(tp=int(2 ** rng.integers(0, 4))),
                    "efficiency": str(rng.choice(["ideal", "calibrated"]))})
    return out


def test_power_and_energy_stay_within_their_bounds():
    """Over random configurations: P_idle <= P <= P_max; joules per token never below n·P_idle·T/tokens (the
    issue's floor) nor above n·(P_max + P_host)·T/tokens."""
    rng = np.random.default_rng(7)
    configs = _random_configs(rng, 160)
    cols = cm.predict_many(configs)
    for i, c in enumerate(configs):
        h = cm.load_hardware(c["hardware"])
        n, t, tokens = cols["chips_per_replica"][i], cols["step_time_s"][i], cols["tokens_per_step"][i]
        assert h.idle_power_w * (1 - 1e-12) <= cols["power_w_per_chip"][i] <= h.max_power_w * (1 + 1e-12), c
        j = cols["joules_per_token"][i]
        assert j >= n * h.idle_power_w * t / tokens * (1 - 1e-12), c
        assert j <= n * (h.max_power_w + (h.host_power_w or 0.0)) * t / tokens * (1 + 1e-12), c


@pytest.mark.parametrize("field", ["max_power_w", "idle_power_w", "host_power_w", "memory_power_share"])
def test_more_power_never_lowers_the_energy(field):
    base = cm.load_hardware("h100-sxm")
    wl = cm.Workload(batch=32, context=4096)
    values = {"max_power_w": (700.0, 800.0, 1000.0), "idle_power_w": (40.0, 75.0, 200.0),
              "host_power_w": (0.0, 575.0, 900.0), "memory_power_share": (0.0, 0.5, 1.0)}[field]
    joules = [cm.predict("llama-3-70b", base.replace(**{field: v}), wl, parallel=cm.Parallel(tp=4)).joules_per_token
              for v in values]
    assert joules == sorted(joules) and joules[0] < joules[-1]


def test_the_price_basis_adds_the_electricity_only_for_owned_chips():
    wl, par = cm.Workload(batch=64, context=4096), cm.Parallel(tp=4)
    rented = cm.predict("llama-3-70b", "h100-sxm", wl, parallel=par)
    owned = cm.predict("llama-3-70b", "h100-sxm", wl, parallel=par, electricity=cm.Electricity(price_basis="owned"))
    assert owned.usd_per_mtok == pytest.approx(rented.usd_per_mtok + rented.usd_per_mtok_energy, rel=1e-12)
    d = owned.to_dict()
    assert d["electricity"] == {"usd_per_kwh": DEFAULT_USD_PER_KWH, "pue": DEFAULT_PUE, "price_basis": "owned",
                                "in_usd_per_mtok": True}
    dearer = cm.predict("llama-3-70b", "h100-sxm", wl, parallel=par,
                        electricity=cm.Electricity(usd_per_kwh=0.16, pue=1.2))
    assert dearer.usd_per_mtok_energy == pytest.approx(rented.usd_per_mtok_energy * 0.16 * 1.2
                                                       / (DEFAULT_USD_PER_KWH * DEFAULT_PUE), rel=1e-12)
    assert dearer.usd_per_mtok == rented.usd_per_mtok  # rental: the electricity is already in the price


def test_a_chip_without_a_published_power_reports_none_and_refuses_owned():
    p = cm.predict("llama-3-8b", "tpu-v5e").to_dict()
    assert p["power_w_per_chip"] is None and p["joules_per_output_token"] is None and p["usd_per_mtok_energy"] is None
    with pytest.raises(cm.CostModelError, match="board power of tpu-v5e.*--max-power-w"):
        cm.predict("llama-3-8b", "tpu-v5e", electricity=cm.Electricity(price_basis="owned"))
    given = cm.load_hardware("tpu-v5e").replace(max_power_w=200.0, idle_power_w=30.0)
    assert cm.predict("llama-3-8b", given).to_dict()["power_w_per_chip"] > 30.0


@pytest.mark.parametrize("bad", [{"pue": 0.9}, {"pue": float("nan")}, {"usd_per_kwh": -1.0}, {"usd_per_kwh": 1e9},
                                 {"price_basis": "leased"}])
def test_bad_electricity_is_refused(bad):
    with pytest.raises(cm.CostModelError):
        cm.Electricity(**bad)


def test_the_energy_objective_equals_exhaustive_search():
    """``objective="energy"`` minimises joules per output token: the gradient path's answer is the exhaustive
    minimum, with a demand (the replicas' power over the demanded tokens) and without."""
    for demand in (None, 20_000.0):
        kw = dict(context=4096, tpot_s=0.05, max_chips=16, weights="bf16,fp8", demand_tokens_per_s=demand,
                  objective="energy")
        g = cm.optimize("llama-3.1-70b", "h200", **kw)
        e = cm.optimize("llama-3.1-70b", "h200", method="exhaustive", **kw)
        assert g.feasible and e.feasible
        jg, je = g.to_dict()["joules_per_output_token"], e.to_dict()["joules_per_output_token"]
        assert jg == pytest.approx(je, rel=1e-9)
        cost = cm.optimize("llama-3.1-70b", "h200", **(kw | {"objective": "cost"}), method="exhaustive")
        assert je <= cost.to_dict()["joules_per_output_token"] * (1 + 1e-12)  # the cheapest is no greener


def test_owned_chips_pay_their_electricity_in_the_optimiser():
    kw = dict(context=4096, tpot_s=0.05, max_chips=16, demand_tokens_per_s=10_000.0, usd_per_chip_hour=1.0)
    owned = cm.optimize("llama-3.1-70b", "h100-sxm", electricity=cm.Electricity(price_basis="owned"), **kw)
    ref = cm.optimize("llama-3.1-70b", "h100-sxm", electricity=cm.Electricity(price_basis="owned"),
                      method="exhaustive", **kw)
    assert owned.feasible and owned.usd_per_mtok == pytest.approx(ref.usd_per_mtok, rel=1e-9)
    d = owned.to_dict()
    chip_part = 1e6 * d["config"]["chips"] * 1.0 / 3600 / 10_000.0
    assert owned.usd_per_mtok == pytest.approx(chip_part + d["usd_per_mtok_energy"], rel=1e-9)


def test_serving_splits_the_energy_between_input_and_output_tokens():
    req = cm.Requests(1024, 256)
    for kwargs in ({"parallel": cm.Parallel(tp=4)},
                   {"disagg": cm.Disaggregated(cm.Pool(cm.Parallel(tp=4)), cm.Pool(cm.Parallel(tp=4)))}):
        s = cm.serve("llama-3.1-70b", "h100-sxm", req, cm.Load.rate(2.0), **kwargs)
        h = cm.load_hardware("h100-sxm")
        total = s.chips * (s.power_w_per_chip + h.host_power_w)
        split = s.joules_per_output_token * s.output_tokens_per_s + s.joules_per_input_token * s.input_tokens_per_s
        assert split == pytest.approx(total, rel=1e-9)
        assert h.idle_power_w <= s.power_w_per_chip <= h.max_power_w
        owned = cm.serve("llama-3.1-70b", "h100-sxm", req, cm.Load.rate(2.0), electricity=cm.Electricity(price_basis="owned"),
                         **kwargs)
        assert owned.usd_per_mtok_output == pytest.approx(s.usd_per_mtok_output + s.usd_per_mtok_energy, rel=1e-9)
        assert owned.usd_per_mtok_input == pytest.approx(s.usd_per_mtok_input + s.usd_per_mtok_energy_input, rel=1e-9)


def test_an_idle_prefill_pool_draws_its_idle_power():
    """Disaggregated at a vanishing rate the prefill pool idles: its chips draw P_idle, the decode pool its step."""
    dg = cm.Disaggregated(cm.Pool(cm.Parallel(tp=4)), cm.Pool(cm.Parallel(tp=4)))
    slow = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(1024, 256), cm.Load.rate(1e-6), disagg=dg)
    h = cm.load_hardware("h100-sxm")
    assert slow.joules_per_input_token * slow.input_tokens_per_s == pytest.approx(4 * (h.idle_power_w + h.host_power_w),
                                                                                   rel=1e-4)


def test_the_command_line_reports_power_and_takes_the_electricity(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3.1-70b", "--tp", "4", "--batch", "64", "--json")
    d = json.loads(out)
    assert code == 0 and {"power_w_per_chip", "joules_per_output_token", "joules_per_input_token",
                          "usd_per_mtok_energy"} <= set(d)
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3.1-70b", "--tp", "4", "--batch", "64", "--json",
                            "--price-basis", "owned", "--usd-per-kwh", "0.2", "--pue", "1.1")
    o = json.loads(out)
    assert o["usd_per_mtok"] == pytest.approx(d["usd_per_mtok"] + o["usd_per_mtok_energy"], rel=1e-9)
    assert o["usd_per_mtok_energy"] == pytest.approx(d["usd_per_mtok_energy"] * 0.2 * 1.1
                                                     / (DEFAULT_USD_PER_KWH * DEFAULT_PUE), rel=1e-9)
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3.1-70b", "--tp", "4", "--batch", "64")
    assert code == 0 and "J per output token" in out
    code, out, _ = run_cli(capsys, "predict", "--isl", "1024", "--osl", "256", "--rate", "2", "--json")
    s = json.loads(out)
    assert code == 0 and s["joules_per_output_token"] > 0 and s["joules_per_input_token"] > 0
    code, out, _ = run_cli(capsys, "predict", "--hardware", "tpu-v5e", "--max-power-w", "200", "--idle-power-w", "30", "--json")
    assert code == 0 and 30 <= json.loads(out)["power_w_per_chip"] <= 200
    code, out, _ = run_cli(capsys, "optimize", "--minimise", "energy", "--max-chips", "8", "--json")
    e = json.loads(out)
    assert code == 0 and e["objective"] == "energy" and e["joules_per_output_token"] > 0


@pytest.mark.parametrize("args", [["--pue", "0.5"], ["--usd-per-kwh", "nan"], ["--price-basis", "leased"],
                                  ["--max-power-w", "-3"], ["--hardware", "tpu-v5e", "--price-basis", "owned"],
                                  ["--idle-power-w", "900"]])
def test_bad_electricity_flags_are_one_line_errors(capsys, args):
    code, out, err = run_cli(capsys, "predict", *args)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_catalog_cites_every_power_figure():
    for name in cm.list_hardware():
        h = cm.load_hardware(name)
        if h.max_power_w is None:
            assert name.startswith("tpu-v") and name != "tpu-v4"  # Google publishes no power for these
            continue
        for key in ("max_power_w", "idle_power_w"):
            assert len(h.sources.get(key, "")) > 20, f"{name}.{key} has no source"
        assert h.host_power_w is None or len(h.sources.get("host_power_w", "")) > 20
        assert 0 < h.idle_power_w < 0.2 * h.max_power_w


def test_the_serving_problem_prices_one_chips_power_and_refuses_what_it_cannot_tell(capsys):
    serving = ["optimize", "--model", "llama-3-8b", "--isl", "1024", "--osl", "256", "--rate", "2", "--tpot-ms", "50",
               "--max-chips", "8", "--json"]
    code, out, _ = run_cli(capsys, *serving)
    base = json.loads(out)["serving"]["power_w_per_chip"]
    code, out, _ = run_cli(capsys, *serving, "--max-power-w", "900")
    assert code == 0 and json.loads(out)["serving"]["power_w_per_chip"] > base  # the override reaches cm.serve
    for extra in (["--minimise", "energy", "--objective", "total"], ["--price-basis", "owned", "--hardware", "tpu-v5e"],
                  ["--minimise", "energy", "--decode-hardware", "h100-sxm,tpu-v5e"],
                  ["--prefill-hardware", "b200", "--max-power-w", "900"]):
        code, out, err = run_cli(capsys, *serving, *extra)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "Traceback" not in err, extra
