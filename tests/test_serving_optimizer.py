"""The serving optimiser (`cm.optimize_serving`, `costmodel optimize --isl ...`): feasible under `cm.serve`,
monotone in the targets, the gradient path equal to the exhaustive one, infeasible targets answered."""

from __future__ import annotations

import json
import math

import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.optimizer.serving.candidates import space_size
from costmodel.optimizer.serving.problem import CHUNK_OPTIONS, make_serving_problem

MODEL, CHIP = "llama-3-8b", "h100-sxm"
REQ = cm.Requests(1024, 256)


#: answers already solved in this module, by their arguments: several tests ask the same problem (the answer
#: is a frozen dataclass and the solve is deterministic, so sharing it proves the same)
_SOLVED: dict[str, cm.ServingSolution] = {}


def opt(**kw):
    key = repr(sorted(kw.items()))
    if key not in _SOLVED:
        _SOLVED[key] = _solve(**kw)
    return _SOLVED[key]


def _solve(**kw):
    args = dict(rate_per_s=20.0, ttft_s=0.3, tpot_s=0.02, max_chips=16, method="exhaustive")
    args.update(kw)
    return cm.optimize_serving(kw.pop("model", MODEL), CHIP, kw.pop("requests", REQ),
                               **{k: v for k, v in args.items() if k not in ("model", "requests")})


def reserve(sol: cm.ServingSolution, rate: float, requests=REQ, model=MODEL):
    """The answer's deployment re-evaluated with cm.serve at Load.rate(rate) over its replicas."""
    c = sol.config
    prec = cm.Precision(c.get("weights") or c["decode"]["weights"], c.get("kv") or c["decode"]["kv"])
    if sol.mode == "aggregated":
        return cm.serve(model, CHIP, requests, cm.Load.rate(rate),
                        parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"], replicas=c["replicas"]),
                        precision=prec, chunk_tokens=c["chunk"], rules=cm.Rules(attention_sharding=c["attention"]))
    p, d = c["prefill"], c["decode"]
    dg = cm.Disaggregated(cm.Pool(cm.Parallel(tp=p["tp"], pp=p["pp"], ep=p["ep"], replicas=p["replicas"]),
                                  batch=p["batch"]),
                          cm.Pool(cm.Parallel(tp=d["tp"], pp=d["pp"], ep=d["ep"], replicas=d["replicas"])))
    return cm.serve(model, CHIP, requests, cm.Load.rate(rate), precision=prec, disagg=dg)


@pytest.mark.parametrize("kw", [dict(), dict(rate_per_s=3.0, ttft_s=0.1, tpot_s=0.01),
                                dict(requests=cm.Requests(8192, 512), rate_per_s=2.0, ttft_s=2.0, tpot_s=0.03)])
def test_answers_are_feasible_under_serve(kw):
    sol = opt(**kw)
    req = kw.get("requests", REQ)
    rate, ttft, tpot = kw.get("rate_per_s", 20.0), kw.get("ttft_s", 0.3), kw.get("tpot_s", 0.02)
    assert sol.feasible and set(sol.modes) == {"aggregated", "disaggregated"}
    for m in sol.modes.values():
        if not m.feasible:
            continue
        s = reserve(m, rate, req)
        assert s.fits and not s.saturated and s.ttft_s <= ttft * (1 + 1e-9) and s.tpot_s <= tpot * (1 + 1e-9)
        assert s.chips == m.chips <= 16
        assert m.ttft_s == pytest.approx(s.ttft_s, rel=1e-9) and m.tpot_s == pytest.approx(s.tpot_s, rel=1e-9)
        # the objective: the deployment's price per hour over the output tokens it serves per hour
        assert m.usd_per_mtok_output == pytest.approx(m.chips * m.usd_per_hour / m.chips / (rate * req.output_tokens
                                                                                           * 3600 / 1e6))
        assert m.usd_per_hour == pytest.approx(m.chips * cm.load_hardware(CHIP).usd_per_chip_hour)


def test_winner_is_the_cheaper_mode():
    sol = opt()
    ok = [m for m in sol.modes.values() if m.feasible]
    assert sol.usd_per_mtok_output == min(m.usd_per_mtok_output for m in ok)
    assert sol.mode in ("aggregated", "disaggregated") and sol.mode in sol.message


@pytest.mark.parametrize("target", ["tpot_s", "ttft_s"])
def test_tightening_a_target_never_lowers_the_cost(target):
    costs = []
    for value in ((0.04, 0.02, 0.012, 0.009) if target == "tpot_s" else (1.0, 0.3, 0.1, 0.05)):
        sol = opt(**{target: value})
        costs.append(sol.usd_per_mtok_output if sol.feasible else math.inf)
    assert costs == sorted(costs) and math.isfinite(costs[0])


@pytest.mark.parametrize("kw", [dict(), dict(rate_per_s=50.0, tpot_s=0.015, max_chips=32),
                                dict(requests=cm.Requests(4096, 1024), rate_per_s=1.0, ttft_s=1.0, tpot_s=0.01),
                                dict(requests=cm.Requests(8192, 128, prefix_hit=0.5), rate_per_s=8.0, ttft_s=0.4,
                                     tpot_s=0.03, max_chips=64)])
def test_gradient_equals_exhaustive(kw):
    g, e = opt(method="gradient", **kw), opt(**kw)
    assert g.feasible == e.feasible
    for name in g.modes:
        a, b = g.modes[name], e.modes[name]
        assert a.feasible == b.feasible
        if a.feasible:
            assert a.usd_per_mtok == pytest.approx(b.usd_per_mtok, rel=1e-3)


def test_infeasible_target_answers_with_the_fastest_figures():
    sol = opt(ttft_s=0.001, tpot_s=0.02, verify=True)
    d = sol.to_dict()
    assert d["gap"] is None and d["exhaustive_usd_per_mtok_output"] is None
    assert not sol.feasible and sol.mode is None and sol.config is None
    assert sol.fastest["ttft_s"] > 0.001 and math.isfinite(sol.fastest["tpot_s"]) and sol.fastest["ttft_chips"] <= 16
    assert "fastest achievable" in sol.message and sol.binding == "ttft"
    json.dumps(d, allow_nan=False)  # no inf or NaN at any depth


def test_lack_of_chips_says_how_many():
    sol = opt(rate_per_s=1000.0, ttft_s=None, tpot_s=0.05, max_chips=8, mode="agg")
    assert not sol.feasible and sol.binding == "chips"
    bigger = opt(rate_per_s=1000.0, ttft_s=None, tpot_s=0.05, max_chips=sol.min_chips_needed, mode="agg")
    assert bigger.feasible and bigger.chips == sol.min_chips_needed
    smaller = opt(rate_per_s=1000.0, ttft_s=None, tpot_s=0.05, max_chips=sol.min_chips_needed - 1, mode="agg")
    assert not smaller.feasible


def test_demand_tps_is_rate_times_output_tokens():
    a, b = opt(rate_per_s=20.0), opt(rate_per_s=None, demand_tps=20.0 * 256)
    assert a.usd_per_mtok_output == b.usd_per_mtok_output and a.config == b.config


def test_total_objective_prices_input_and_output_tokens():
    a, b = opt(), opt(objective="total")
    assert a.chips == b.chips
    assert b.usd_per_mtok == pytest.approx(a.usd_per_mtok * 256 / (1024 + 256))


def test_space_size_by_hand():
    # one chip: one split (1, 1, 1), one replica; 2 attention shardings x 8 chunk budgets, one precision
    p = make_serving_problem(MODEL, CHIP, REQ, rate_per_s=1.0, max_chips=1)
    assert space_size(p, "agg") == 2 * len(CHUNK_OPTIONS)
    # disaggregated on two chips: one prefill and one decode replica of one chip, 5 prefill batches
    p = make_serving_problem(MODEL, CHIP, REQ, rate_per_s=1.0, max_chips=2, mode="disagg")
    assert space_size(p, "disagg") == 5


def test_speculation_is_an_option():
    spec = cm.Speculative("mtp", 2, accept=0.8)
    sol = opt(spec=spec, rate_per_s=2.0, tpot_s=0.006, ttft_s=None, mode="agg")
    plain = opt(rate_per_s=2.0, tpot_s=0.006, ttft_s=None, mode="agg")
    assert sol.feasible
    assert (sol.usd_per_mtok or math.inf) <= (plain.usd_per_mtok or math.inf)


def test_verify_fills_gap():
    sol = opt(method="gradient", verify=True)
    assert sol.gap == pytest.approx(0.0, abs=1e-3) and sol.exhaustive_usd_per_mtok_output > 0
    assert {"exhaustive_usd_per_mtok_output", "gap"} <= set(sol.to_dict())


@pytest.mark.parametrize("kw, match", [
    (dict(rate_per_s=1.0, demand_tps=100.0), "exactly one of rate_per_s"),
    (dict(rate_per_s=None), "exactly one of rate_per_s"),
    (dict(mode="both"), "mode must be one of agg, disagg, auto"),
    (dict(objective="input"), "objective must be one of output, total"),
    (dict(method="newton"), "method must be one of gradient, exhaustive"),
    (dict(rate_per_s=-1.0), "rate"),
    (dict(ttft_s=float("nan")), "ttft_s"),
    (dict(max_chips=0), "max_chips"),
    (dict(spec="mtp"), "spec must be None, a costmodel.Speculative"),
    (dict(requests=(1024, 256)), "requests must be a costmodel.Requests"),
])
def test_bad_input_is_refused(kw, match):
    with pytest.raises(cm.CostModelError, match=match):
        opt(**kw)


CONTRACT = {"feasible", "mode", "config", "usd_per_mtok_output", "usd_per_mtok_input", "ttft_s", "tpot_s",
            "output_tokens_per_s_per_chip", "chips", "binding", "method", "wall_time_s", "modes"}
ARGV = ["optimize", "--model", MODEL, "--isl", "1024", "--osl", "256", "--rate", "20", "--ttft-ms", "300",
        "--tpot-ms", "20", "--max-chips", "16", "--efficiency", "ideal", "--method", "exhaustive"]


def test_cli_json_keys(capsys):
    assert main(ARGV + ["--json", "--verify"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert CONTRACT | {"exhaustive_usd_per_mtok_output", "gap"} <= set(d)
    assert set(d["modes"]) == {"aggregated", "disaggregated"}
    agg, dis = d["modes"]["aggregated"]["config"], d["modes"]["disaggregated"]["config"]
    assert {"tp", "pp", "ep", "attention", "batch", "replicas", "chips", "weights", "kv", "chunk", "spec"} <= set(agg)
    assert set(dis) == {"prefill", "decode", "chunk", "spec", "prefill_hardware", "decode_hardware"}
    assert dis["prefill_hardware"] == dis["decode_hardware"] == CHIP
    assert set(dis["prefill"]) == set(dis["decode"]) == {"tp", "pp", "ep", "batch", "replicas", "chips", "weights", "kv"}
    assert d["gap"] == pytest.approx(0.0, abs=1e-12)


def test_cli_side_by_side(capsys):
    assert main(ARGV) == 0
    out = capsys.readouterr().out
    assert "aggregated" in out and "disaggregated" in out and "answer:" in out and "configurations" in out


@pytest.mark.parametrize("extra, message", [
    (["--osl", "256", "--rate", "2"], "needs --isl and --osl"),
    (["--isl", "1024", "--osl", "256"], "exactly one of --rate"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--demand-tps", "100"], "exactly one of --rate"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--spec-len", "2"], "need --spec-draft"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--spec-draft", "mtp"], "needs --spec-len"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--math", "bf16"], "--math does not apply"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--mode", "both"], "invalid choice"),
    (["--isl", "0", "--osl", "256", "--rate", "2"], "--isl: must be a number"),
    (["--isl", "1024", "--osl", "256", "--rate", "nan"], "--rate: must be a number"),
    (["--isl", "1024", "--osl", "256", "--rate", "2", "--objective", "x"], "invalid choice"),
])
def test_cli_errors_are_one_line(capsys, extra, message):
    try:
        code = main(["optimize", "--model", MODEL, *extra])
    except SystemExit as e:  # argparse refuses a value
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def _plateau_climb(landscape: dict, default: float):
    """Run the serving climb on a made-up lattice scored by ``landscape`` (``default`` elsewhere)."""
    from types import SimpleNamespace

    import numpy as np

    from costmodel.optimizer.serving.gradient import _climb

    lattice = SimpleNamespace(degrees={"tp": [1, 2, 4, 8], "pp": [1, 2], "ep": [1, 2, 4, 8, 16]}, precisions=("bf16",))
    calls = []

    def score_of(points):
        calls.append(len(points))
        return np.array([landscape.get(p[:3], default) for p in points], dtype=float), {}

    seen, _ = _climb(lattice, {(1, 1, 16, 0)}, score_of, 32)
    return seen, calls


def test_the_climb_crosses_a_plateau_of_equal_chip_counts():
    """Chip counts tie across neighbouring splits: from tp1 pp1 ep16 the only equal neighbour is
    tp1 pp2 ep8, whose chip exchange reaches tp4 pp2 ep1 at half the chips (Qwen3-235B on H100 with
    25k-token prompts took this path). Stopping at the first tie never sees it."""
    from costmodel.optimizer.serving.gradient import PLATEAU_STEPS

    seen, _ = _plateau_climb({(1, 1, 16): 16.0, (1, 2, 8): 16.0, (4, 2, 1): 8.0}, 32.0)
    assert seen[(4, 2, 1, 0)] == 8.0
    flat, calls = _plateau_climb({}, 16.0)  # a plateau everywhere: a bounded walk, not the whole lattice
    assert len(calls) <= 2 + PLATEAU_STEPS and len(flat) < 4 * 2 * 5
