"""The serving optimiser over pairs of chips (`optimize_serving(..., prefill_hardware=, decode_hardware=)`,
`costmodel optimize ... --prefill-hardware --decode-hardware`): one chip in both lists is today's answer, the
gradient path equals the exhaustive one, the search is a superset of the one-chip searches, and no pair is
cheaper than its two pools apart allow (docs/serving.md §19.4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.optimizer.serving.candidates import decode_frame, prefill_frame, space_size
from costmodel.optimizer.serving.exhaustive import all_points
from costmodel.optimizer.serving.problem import make_serving_problem, on_chip
from costmodel.specs import load_hardware

MODEL = "llama-3-8b"
REQ = cm.Requests(1024, 256)
#: a small problem: a 16-chip budget, TTFT and TPOT targets that both bind somewhere
SMALL = dict(rate_per_s=20.0, ttft_s=0.3, tpot_s=0.02, max_chips=16)

_SOLVED: dict[str, cm.ServingSolution] = {}


def opt(model=MODEL, hardware="h100-sxm", requests=REQ, **kw) -> cm.ServingSolution:
    """A disaggregated answer, kept per arguments (the solve is deterministic)."""
    args = {"mode": "disagg", "method": "exhaustive", **SMALL, **kw}
    key = repr((model, hardware, requests, sorted(args.items())))
    if key not in _SOLVED:
        _SOLVED[key] = cm.optimize_serving(model, hardware, requests, **args)
    return _SOLVED[key]


def price(chip: str) -> float:
    return load_hardware(chip).usd_per_chip_hour


#: problems where the pools take several replicas and both targets bind somewhere
BUSY = [dict(requests=cm.Requests(4096, 256), rate_per_s=40.0, ttft_s=0.3, tpot_s=0.015, max_chips=32),
        dict(requests=cm.Requests(2048, 256), rate_per_s=60.0, ttft_s=0.2, tpot_s=0.02, max_chips=32),
        dict(model="llama-3.1-70b", requests=cm.Requests(2000, 300), rate_per_s=10.0, ttft_s=0.6, tpot_s=0.04,
             max_chips=64)]


@pytest.mark.parametrize("method", ["gradient", "exhaustive"])
@pytest.mark.parametrize("hardware, kw", [("h100-sxm", {}), ("b200", {}), ("h100-sxm", BUSY[0]), ("b200", BUSY[2])])
def test_one_chip_in_both_lists_is_todays_answer(method, hardware, kw):
    """Both lists naming one chip search the pools on that chip alone: the answer is the one-chip
    disaggregated answer exactly, whatever chip ``hardware`` (the aggregated mode's) names."""
    today = opt(method=method, **kw)
    pair = opt(hardware=hardware, method=method, prefill_hardware=["h100-sxm"], decode_hardware="h100-sxm", **kw)
    assert today.feasible and pair.feasible
    assert pair.config == today.config
    assert (pair.usd_per_mtok, pair.usd_per_hour, pair.chips) == (today.usd_per_mtok, today.usd_per_hour, today.chips)
    assert (pair.ttft_s, pair.tpot_s) == (today.ttft_s, today.tpot_s)
    assert pair.config["prefill_hardware"] == pair.config["decode_hardware"] == "h100-sxm"


PAIRS = dict(prefill_hardware="h100-sxm,b200", decode_hardware="h200,mi300x")
#: a choice of precisions where the best pools are fp8 while a bf16 decode pool takes as few chips
PRECISIONS = dict(requests=cm.Requests(2048, 256), rate_per_s=30.0, ttft_s=0.3, tpot_s=0.015, max_chips=32,
                  weights="bf16,fp8", kv="bf16,fp8")


@pytest.mark.parametrize("hardware", ["mi300x", "h200"])
def test_each_prefill_split_is_scored_with_the_decode_pool_of_its_precision(hardware):
    """The gradient path scores a prefill split with the best decode pool of the split's own precision, not
    only of the decode pool's best precision: with bf16 and fp8 decode pools of one chip each, the fp8
    prefill pool of one replica is found (one chip, as the exhaustive path finds, not two in bf16)."""
    g, e = opt(hardware=hardware, method="gradient", **PRECISIONS), opt(hardware=hardware, **PRECISIONS)
    assert g.usd_per_mtok == pytest.approx(e.usd_per_mtok, rel=1e-9) and g.chips == e.chips == 2


@pytest.mark.parametrize("kw", [dict(), dict(rate_per_s=3.0, ttft_s=0.1, tpot_s=0.01),
                                dict(requests=cm.Requests(8192, 512), rate_per_s=10.0, ttft_s=0.5, tpot_s=0.01,
                                     max_chips=32),
                                dict(model="llama-3.1-70b", requests=cm.Requests(4096, 512), rate_per_s=8.0,
                                     ttft_s=1.0, tpot_s=0.03, max_chips=64), *BUSY, PRECISIONS])
def test_gradient_equals_exhaustive_over_pairs(kw):
    g = opt(method="gradient", verify=True, **PAIRS, **kw)
    e = opt(**PAIRS, **kw)
    assert g.feasible and e.feasible
    assert g.usd_per_mtok == pytest.approx(e.usd_per_mtok, rel=1e-9)
    assert g.gap == pytest.approx(0.0, abs=1e-12) and g.exhaustive_usd_per_mtok_output == e.usd_per_mtok_output
    c = g.config
    assert c["prefill_hardware"] in ("h100-sxm", "b200") and c["decode_hardware"] in ("h200", "mi300x")


def test_the_answer_is_priced_pool_by_pool_and_confirmed_by_serve():
    """Each pool at its own chip's price; the answer is cm.serve's figures of the pair it names."""
    sol = opt(**PAIRS)
    c = sol.config
    p, d = c["prefill"], c["decode"]
    assert sol.chips == p["chips"] + d["chips"] <= SMALL["max_chips"]
    assert sol.usd_per_hour == pytest.approx(p["chips"] * price(c["prefill_hardware"])
                                             + d["chips"] * price(c["decode_hardware"]), rel=1e-12)
    assert sol.usd_per_mtok_output == pytest.approx(sol.usd_per_hour / (SMALL["rate_per_s"] * 256 * 3600 / 1e6))
    dg = cm.Disaggregated(
        cm.Pool(cm.Parallel(tp=p["tp"], pp=p["pp"], ep=p["ep"], replicas=p["replicas"]), batch=p["batch"],
                hardware=c["prefill_hardware"]),
        cm.Pool(cm.Parallel(tp=d["tp"], pp=d["pp"], ep=d["ep"], replicas=d["replicas"]), hardware=c["decode_hardware"]))
    s = cm.serve(MODEL, "h100-sxm", REQ, cm.Load.rate(SMALL["rate_per_s"]), disagg=dg,
                 precision=cm.Precision(d["weights"], d["kv"]))
    assert s.ttft_s == pytest.approx(sol.ttft_s, rel=1e-12) and s.tpot_s == pytest.approx(sol.tpot_s, rel=1e-12)
    assert s.fits and not s.saturated and s.ttft_s <= SMALL["ttft_s"] and s.tpot_s <= SMALL["tpot_s"]
    assert s.usd_per_request * s.requests_per_s * 3600 == pytest.approx(sol.usd_per_hour, rel=1e-12)


def test_a_given_price_prices_every_chip():
    """``usd_per_chip_hour`` overrides every chip's price: the pair is then the one of the fewest chips."""
    sol = opt(usd_per_chip_hour=1.0, **PAIRS)
    assert sol.usd_per_hour == pytest.approx(sol.chips * 1.0, rel=1e-12)
    assert sol.serving["usd_per_request"] * sol.serving["requests_per_s"] * 3600 == pytest.approx(sol.chips)
    fewest = min(opt(usd_per_chip_hour=1.0, prefill_hardware=a, decode_hardware=b).chips
                 for a in ("h100-sxm", "b200") for b in ("h200", "mi300x"))
    assert sol.chips == fewest


@pytest.mark.parametrize("kw", [dict(), BUSY[0], BUSY[2]])
def test_pairs_search_a_superset_of_one_chip(kw):
    """Every chip in both lists: the pairs include each chip with itself, so the answer costs no more than
    the best one-chip disaggregated answer among them, nor than any single pair."""
    chips = ["h100-sxm", "h200", "mi300x"]
    both = opt(prefill_hardware=chips, decode_hardware=chips, **kw)
    alone = [opt(hardware=c, **kw) for c in chips]
    best = min(a.usd_per_mtok for a in alone if a.feasible)
    assert both.feasible and both.usd_per_mtok <= best * (1 + 1e-12)
    for a, b in (("h100-sxm", "mi300x"), ("mi300x", "h200")):
        one = opt(prefill_hardware=a, decode_hardware=b, **kw)
        assert not one.feasible or both.usd_per_mtok <= one.usd_per_mtok * (1 + 1e-12)


# ---------------------------------------------------------------- the bound: a pair is no cheaper than its pools

def _cheapest_decode_pool(problem, chip: str) -> float:
    """USD/h of the cheapest decode pool on ``chip`` alone: the fewest replicas within TPOT and memory at the
    rate, over every split, precision and speculation option (it does not depend on the prefill pool)."""
    B = on_chip(problem, chip)
    f = decode_frame(B, all_points(B))
    usd = f["replicas"] * f["chips_per_replica"] * price(chip)
    return float(usd[f["feasible"]].min())


def _cheapest_prefill_pool(problem, chip: str, decode_chip: str) -> float:
    """USD/h of the cheapest prefill pool on ``chip`` meeting TTFT at the rate with the KV hand-over over the
    fastest link a pair with ``decode_chip`` can have: ``n_p`` chips of the slower scale-out link (the two
    chips differ), or of the chip's scale-up link (the same chip); each link of the pair is at most that."""
    A, B = on_chip(problem, chip), on_chip(problem, decode_chip)
    pre = prefill_frame(A, all_points(A))
    kv = {c: float(k) for c, k in zip([B.precisions[i] for i in decode_frame(B, all_points(B))["prec"]],
                                      decode_frame(B, all_points(B))["kv_bytes_per_token"])}
    ha, hb = A.hardware, B.hardware
    per_chip = ha.scale_up_bytes_per_s if ha.name == hb.name else min(ha.scale_out_bytes_per_s,
                                                                        hb.scale_out_bytes_per_s)
    R, T, req = problem.rate_per_s, problem.ttft_s, problem.requests
    k = (1 + req.prefill_tokens_cv2) / 2
    best = math.inf
    for i in np.flatnonzero(pre["fits"]):
        choice = A.precisions[int(pre["prec"][i])]
        if choice not in kv:  # the decode chip has no pool in this precision
            continue
        n_p, t_pf, b_p = float(pre["chips_per_replica"][i]), float(pre["prefill_time_s"][i]), pre["prefill_batch"][i]
        t_kv = req.input_tokens * kv[choice] / (per_chip * n_p)
        svc = t_pf / b_p
        q = (T - t_pf - t_kv) / (k * svc)  # Kingman: W = k·ρ/(1-ρ)·svc <= T - T_pf - t_kv
        if q <= 0:
            continue
        rho = min(q / (1 + q), 1 - 1e-9)
        best = min(best, math.ceil(R * svc / rho * (1 + 1e-9)) * n_p * price(chip))
    return best


@pytest.mark.parametrize("kw", [{}, BUSY[0], BUSY[2]])
@pytest.mark.parametrize("a, b", [("b200", "h200"), ("h100-sxm", "mi300x"), ("mi300x", "b200"), ("h200", "h200")])
def test_a_pair_costs_at_least_its_pools_apart(kw, a, b):
    """The bound (docs/serving.md §19.4): the prefill pool on A and the decode pool on B cost at least the
    cheapest prefill pool on A (KV over the fastest link the pair can have) plus the cheapest decode pool on
    B. The one-chip answers obey the same bound with their own chip in both roles."""
    kw = dict(kw)
    model, requests = kw.pop("model", MODEL), kw.pop("requests", REQ)
    targets = {**SMALL, **kw}
    problem = make_serving_problem(model, "h100-sxm", requests, mode="disagg", prefill_hardware=a,
                                   decode_hardware=b, **targets)
    sol = opt(model, "h100-sxm", requests, prefill_hardware=a, decode_hardware=b, **targets)
    if not sol.feasible:
        pytest.skip(f"{model}: no deployment on {a} -> {b}")
    floor = _cheapest_prefill_pool(problem, a, b) + _cheapest_decode_pool(problem, b)
    assert math.isfinite(floor) and sol.usd_per_hour >= floor * (1 - 1e-12)
    for chip in {a, b}:
        one = opt(model, chip, requests, **targets)
        if one.feasible:
            assert one.usd_per_hour >= (_cheapest_prefill_pool(problem, chip, chip)
                                        + _cheapest_decode_pool(problem, chip)) * (1 - 1e-12)


# ---------------------------------------------------------------- the rest of the contract

def test_space_size_counts_each_pair():
    # two chips of budget: one prefill and one decode replica of one chip, 5 prefill batches, per pair
    p = make_serving_problem(MODEL, "h100-sxm", REQ, rate_per_s=1.0, max_chips=2, mode="disagg",
                             decode_hardware="h100-sxm,h200")
    assert space_size(p, "disagg") == 2 * 5
    assert space_size(p, "agg") == space_size(make_serving_problem(MODEL, "h100-sxm", REQ, rate_per_s=1.0,
                                                                   max_chips=2), "agg")


def test_auto_mode_keeps_the_aggregated_mode_on_hardware():
    sol = opt(mode="auto", **PAIRS)
    agg = opt(mode="agg")
    assert sol.modes["aggregated"].config == agg.config
    assert sol.modes["disaggregated"].config["decode_hardware"] in ("h200", "mi300x")


def test_an_infeasible_pair_search_answers_with_the_fastest_figures():
    sol = opt(ttft_s=0.001, **PAIRS)
    assert not sol.feasible and sol.fastest["ttft_s"] > 0.001
    assert "prefill on h100-sxm or b200, decode on h200 or mi300x" in sol.message
    json.dumps(sol.to_dict(), allow_nan=False)


def test_launch_names_each_pools_chip():
    sol = opt(**PAIRS)
    c = sol.config
    text = sol.launch("vllm")
    if c["prefill_hardware"] != c["decode_hardware"]:
        assert f"# prefill instance on {c['prefill_hardware']} GPUs" in text
        assert f"# decode instance on {c['decode_hardware']} GPUs" in text
    assert " on h100-sxm GPUs" not in opt().launch("vllm")  # one chip: nothing to say


@pytest.mark.parametrize("kw, match", [
    (dict(mode="agg", prefill_hardware="b200"), "mode='agg' has none"),
    (dict(decode_hardware="b201"), "unknown hardware 'b201'"),
    (dict(prefill_hardware=3), "prefill_hardware must be a chip name"),
    (dict(decode_hardware=" , "), "decode_hardware names no chip"),
])
def test_bad_chip_lists_are_refused(kw, match):
    with pytest.raises(cm.CostModelError, match=match):
        opt(**kw)


ARGV = ["optimize", "--model", MODEL, "--isl", "1024", "--osl", "256", "--rate", "20", "--ttft-ms", "300",
        "--tpot-ms", "20", "--max-chips", "16", "--method", "exhaustive", "--mode", "disagg",
        "--prefill-hardware", "h100-sxm,b200", "--decode-hardware", "h200,mi300x"]


def test_cli_json_names_the_pair(capsys):
    assert main(ARGV + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    ref = opt(**PAIRS)
    assert d["config"] == ref.config and d["usd_per_mtok_output"] == ref.usd_per_mtok_output
    assert d["modes"]["disaggregated"]["config"]["prefill_hardware"] == ref.config["prefill_hardware"]


def test_cli_table_says_each_pools_chip(capsys):
    assert main(ARGV) == 0
    out = capsys.readouterr().out
    c = opt(**PAIRS).config
    assert out.startswith("problem: llama-3-8b, prefill on h100-sxm or b200, decode on h200 or mi300x, ")
    assert f" on {c['prefill_hardware']}" in out.splitlines()[2] and f" on {c['decode_hardware']}," in out


@pytest.mark.parametrize("extra, message", [
    (["--mode", "agg"], "--prefill-hardware/--decode-hardware: chips of the disaggregated pools, which --mode agg"),
    (["--hardware", "h100-sxm,b200"], "a search over chip pairs takes one chip in --hardware"),
    (["--decode-hardware", "h201"], "unknown hardware 'h201'"),
])
def test_cli_errors_are_one_line(capsys, extra, message):
    code = main(ARGV + extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_pair_flags_need_the_serving_problem(capsys):
    code = main(["optimize", "--prefill-hardware", "b200"])
    err = capsys.readouterr().err
    assert code == 2 and "--prefill-hardware: the serving problem needs --isl and --osl" in err
    assert len(err.strip().splitlines()) == 1
