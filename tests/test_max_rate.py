"""The highest rate a chip budget serves (`cm.max_rate`, `costmodel optimize ... --maximise rate`): equal to a
plain bisection with repeated `cm.optimize_serving` calls, its deployment meeting the targets under `cm.serve`
within the budget, 0.5% more infeasible, an impossible problem answered with rate 0."""

from __future__ import annotations

import json
import math

import pytest

import costmodel as cm
from tests.cli_run import run_cli

MODEL, CHIP = "llama-3-8b", "h100-sxm"
REQ = cm.Requests(1024, 256)
TARGETS = dict(ttft_s=0.5, tpot_s=0.03)
BUDGET = 4

_KEPT: dict[str, cm.MaxRateAnswer] = {}


def answer(**kw) -> cm.MaxRateAnswer:
    """The answer of the module's problem (kept: several tests read the same one; the solve is deterministic)."""
    key = repr(sorted(kw.items()))
    if key not in _KEPT:
        args = dict(TARGETS, max_chips=BUDGET) | kw
        _KEPT[key] = cm.max_rate(MODEL, CHIP, REQ, **args)
    return _KEPT[key]


def feasible(rate: float, mode: str, max_chips: int = BUDGET, **kw) -> bool:
    s = cm.optimize_serving(MODEL, CHIP, REQ, rate_per_s=rate, max_chips=max_chips, mode=mode, **(TARGETS | kw))
    return s.feasible


def reference(mode: str, lo: float = 1e-2, hi: float = 1e4, rtol: float = 1e-3) -> float:
    """The highest feasible rate by plain bisection on log(rate) with optimize_serving at each rate."""
    assert feasible(lo, mode) and not feasible(hi, mode)
    while hi / lo > 1 + rtol:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if feasible(mid, mode) else (lo, mid)
    return lo


def served(config: dict, mode: str, rate: float):
    """The deployment of ``config`` under cm.serve at Load.rate(rate)."""
    if mode == "aggregated":
        c = config
        return cm.serve(MODEL, CHIP, REQ, cm.Load.rate(rate), precision=cm.Precision(c["weights"], c["kv"]),
                        parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"], replicas=c["replicas"]),
                        chunk_tokens=c["chunk"], rules=cm.Rules(attention_sharding=c["attention"]))
    p, d = config["prefill"], config["decode"]
    dg = cm.Disaggregated(cm.Pool(cm.Parallel(tp=p["tp"], pp=p["pp"], ep=p["ep"], replicas=p["replicas"]),
                                  batch=p["batch"]),
                          cm.Pool(cm.Parallel(tp=d["tp"], pp=d["pp"], ep=d["ep"], replicas=d["replicas"])))
    return cm.serve(MODEL, CHIP, REQ, cm.Load.rate(rate), precision=cm.Precision(d["weights"], d["kv"]), disagg=dg)


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_equals_bisection_with_optimize_serving(mode):
    name = {"agg": "aggregated", "disagg": "disaggregated"}[mode]
    got = answer().modes[name]
    assert got.feasible and got.rate_per_s > 0
    ref = reference(mode)
    assert got.rate_per_s == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize("name", ["aggregated", "disaggregated"])
def test_deployment_meets_the_targets_at_the_rate_and_more_is_infeasible(name):
    m = answer().modes[name]
    mode = {"aggregated": "agg", "disaggregated": "disagg"}[name]
    s = served(m.config, name, m.rate_per_s)
    assert s.ttft_s <= TARGETS["ttft_s"] * (1 + 1e-9) and s.tpot_s <= TARGETS["tpot_s"] * (1 + 1e-9)
    assert s.fits and not s.saturated and s.chips <= BUDGET == answer().max_chips
    assert m.chips == s.chips and m.ttft_s == pytest.approx(s.ttft_s) and m.tpot_s == pytest.approx(s.tpot_s)
    assert m.output_tokens_per_s == pytest.approx(m.rate_per_s * REQ.output_tokens)
    assert feasible(m.rate_per_s, mode)
    assert not feasible(m.rate_per_s * 1.005, mode)
    assert m.infeasible_above_per_s <= m.rate_per_s * (1 + 1e-3) * (1 + 1e-12)


def test_the_best_mode_is_the_highest_rate_and_auto_agrees():
    a = answer()
    best = max(a.modes.values(), key=lambda m: m.rate_per_s)
    assert a.feasible and a.mode == best.mode and a.rate_per_s == best.rate_per_s and a.config == best.config
    assert cm.optimize_serving(MODEL, CHIP, REQ, rate_per_s=a.rate_per_s, max_chips=BUDGET, **TARGETS).feasible
    assert not cm.optimize_serving(MODEL, CHIP, REQ, rate_per_s=a.rate_per_s * 1.005, max_chips=BUDGET,
                                   **TARGETS).feasible


def test_json_is_finite_and_complete():
    d = answer().to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    for key in ("feasible", "mode", "rate_per_s", "output_tokens_per_s", "config", "chips", "ttft_s", "tpot_s",
                "modes", "message"):
        assert key in d
    for m in d["modes"].values():
        assert {"rate_per_s", "output_tokens_per_s", "config", "chips", "ttft_s", "tpot_s"} <= set(m)


def test_a_larger_budget_never_serves_less():
    small, big = answer(mode="agg"), answer(mode="agg", max_chips=2 * BUDGET)
    assert big.rate_per_s >= small.rate_per_s * (1 - 1e-3)


def test_the_start_does_not_change_the_answer():
    ref = answer(mode="agg").rate_per_s
    for start in (1e-3, 1e3):
        got = cm.max_rate(MODEL, CHIP, REQ, max_chips=BUDGET, mode="agg", start_rate_per_s=start, **TARGETS)
        assert got.rate_per_s == pytest.approx(ref, rel=1e-3)


def test_an_impossible_problem_is_an_answer_with_rate_zero():
    a = cm.max_rate(MODEL, CHIP, REQ, max_chips=BUDGET, ttft_s=0.5, tpot_s=1e-4)
    assert not a.feasible and a.rate_per_s == 0.0 and a.mode is None and a.config is None
    for m in a.modes.values():
        assert not m.feasible and m.rate_per_s == 0.0 and m.fastest and m.fastest["tpot_s"] > 1e-4
        assert "serves no rate" in m.message
    json.dumps(a.to_dict(), allow_nan=False)


@pytest.mark.parametrize("kw, match", [
    (dict(rtol=0.0), "rtol"), (dict(method="newton"), "method"), (dict(max_chips=0), "max_chips"),
    (dict(start_rate_per_s=-1.0), "rate"),
])
def test_bad_input_is_refused(kw, match):
    args = dict(TARGETS, max_chips=BUDGET) | kw
    with pytest.raises(cm.CostModelError, match=match):
        cm.max_rate(MODEL, CHIP, REQ, **args)


_CLI = ("optimize", "--model", MODEL, "--hardware", CHIP, "--isl", "1024", "--osl", "256", "--ttft-ms", "500",
        "--tpot-ms", "30", "--max-chips", str(BUDGET), "--maximise", "rate")


def test_cli_json_is_the_answer(capsys):
    code, out, _ = run_cli(capsys, *_CLI, "--json")
    assert code == 0
    d = json.loads(out)
    ref = answer().to_dict()
    assert d["mode"] == ref["mode"] and d["rate_per_s"] == pytest.approx(ref["rate_per_s"])
    assert set(d["modes"]) == {"aggregated", "disaggregated"}


def test_cli_table(capsys):
    code, out, _ = run_cli(capsys, *_CLI)
    assert code == 0
    for row in ("rate", "output tok/s", "chips", "config", "TTFT", "TPOT"):
        assert any(line.strip().startswith(row) for line in out.splitlines()), row
    assert "answer: " in out and "aggregated" in out and "disaggregated" in out


@pytest.mark.parametrize("argv, message", [
    (("--isl", "1024", "--osl", "256", "--rate", "3"), "--rate"),
    (("--isl", "1024", "--osl", "256", "--demand-tps", "300"), "--demand-tps"),
    (("--isl", "1024",), "--isl and --osl"),
    ((), "--isl and --osl"),
    (("--isl", "1024", "--osl", "256", "--objective", "total"), "--objective"),
    (("--isl", "1024", "--osl", "256", "--hardware", "h100-sxm,h200"), "one chip"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, "optimize", "--maximise", "rate", *argv)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
