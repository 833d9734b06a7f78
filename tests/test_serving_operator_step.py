"""The serving optimiser on the operator-level step (``step="operators"``, docs/theory.md §20): its answer
equals a brute force over ``cm.serve`` on the same step, both methods agree, the operator ideal never
serves more than the single-roofline ideal, and the command line takes ``--step``."""

from __future__ import annotations

import itertools
import json

import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.optimizer.serving.problem import make_serving_problem

MODEL, CHIP = "llama-3-8b", "h100-sxm"
REQ = cm.Requests(1024, 256)
RATE, TTFT, TPOT, CHIPS = 20.0, 0.3, 0.02, 4
OPS = cm.Rules(step="operators")

_SOLVED: dict[str, cm.ServingSolution] = {}


def opt(**kw):
    """The answer of the module's problem on the operator step with ``kw`` changed (kept across tests)."""
    key = repr(sorted(kw.items()))
    if key not in _SOLVED:
        args = dict(requests=REQ, rate_per_s=RATE, ttft_s=TTFT, tpot_s=TPOT, max_chips=CHIPS, method="exhaustive",
                    step="operators", efficiency="kernels")
        _SOLVED[key] = cm.optimize_serving(MODEL, CHIP, **(args | kw))
    return _SOLVED[key]


@pytest.fixture(scope="module")
def brute():
    """Every aggregated deployment within the budget (split, replicas, chunk, attention) on the operator step,
    evaluated by ``cm.serve``: those meeting the targets, as (chips, config)."""
    chunks = make_serving_problem(MODEL, CHIP, REQ, rate_per_s=RATE).chunks
    out = []
    for tp, chunk, attention in itertools.product((1, 2, 4), chunks, ("heads", "batch")):
        if tp == 1 and attention == "batch":
            continue
        for replicas in range(1, CHIPS // tp + 1):
            try:
                s = cm.serve(MODEL, CHIP, REQ, cm.Load.rate(RATE), parallel=cm.Parallel(tp=tp, replicas=replicas),
                             chunk_tokens=chunk, efficiency="kernels",
                             rules=cm.Rules(attention_sharding=attention, step="operators"))
            except cm.CostModelError:
                continue
            if s.fits and not s.saturated and s.ttft_s <= TTFT * (1 + 1e-9) and s.tpot_s <= TPOT * (1 + 1e-9):
                out.append((tp * replicas, (tp, replicas, chunk, attention)))
    assert out  # the problem is feasible on the operator step
    return out


@pytest.mark.parametrize("method", ["exhaustive", "gradient"])
def test_the_operator_answer_is_the_brute_force_fewest_chips(brute, method):
    sol = opt(mode="agg", method=method)
    assert sol.feasible and sol.chips == min(c for c, _ in brute)
    assert sol.tpot_s <= TPOT * (1 + 1e-9) and sol.ttft_s <= TTFT * (1 + 1e-9)


def test_the_answer_reports_the_operator_steps_own_figures():
    """The answer's TPOT and TTFT are ``cm.serve``'s on the operator step for its deployment, not the
    single roofline's."""
    sol = opt(mode="agg")
    c = sol.config
    common = dict(parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"], replicas=c["replicas"]),
                  chunk_tokens=c["chunk"], efficiency="kernels",
                  precision=cm.Precision(weights=c["weights"], kv=c["kv"]))
    ops = cm.serve(MODEL, CHIP, REQ, cm.Load.rate(RATE), rules=cm.Rules(attention_sharding=c["attention"],
                                                                      step="operators"), **common)
    roof = cm.serve(MODEL, CHIP, REQ, cm.Load.rate(RATE), rules=cm.Rules(attention_sharding=c["attention"]),
                    **common)
    assert sol.tpot_s == pytest.approx(ops.tpot_s, rel=1e-6)
    assert sol.ttft_s == pytest.approx(ops.ttft_s, rel=1e-6)
    assert abs(ops.tpot_s / roof.tpot_s - 1) > 1e-3  # the two steps differ here, so the check has teeth


def test_both_modes_agree_between_methods():
    for mode in ("agg", "disagg"):
        a, b = opt(mode=mode, method="gradient"), opt(mode=mode, method="exhaustive")
        assert a.feasible == b.feasible
        if a.feasible:
            assert a.usd_per_mtok == pytest.approx(b.usd_per_mtok, rel=1e-9)


def test_the_operator_ideal_never_needs_fewer_chips_than_the_roofline_ideal():
    """A sum of per-kernel maxima is never below the maximum of the sums (docs/theory.md §20), so at the
    ideal efficiency the operator step's steps are never shorter and its answer never smaller."""
    for chips, tpot in ((CHIPS, 0.012),):
        kw = dict(mode="agg", method="exhaustive", efficiency="ideal", tpot_s=tpot, max_chips=chips, rate_per_s=40.0)
        roof, ops = opt(step="roofline", **kw), opt(**kw)
        assert roof.feasible and ops.feasible
        if ops.feasible:
            assert ops.chips >= roof.chips
            assert ops.tpot_s >= roof.tpot_s * (1 - 1e-9) or ops.chips > roof.chips


def test_max_rate_on_the_operator_step_is_below_the_roofline_ideal():
    kw = dict(max_chips=2, ttft_s=0.5, tpot_s=0.05, mode="agg", efficiency="ideal", rtol=0.05)
    roof = cm.max_rate(MODEL, CHIP, REQ, **kw)
    ops = cm.max_rate(MODEL, CHIP, REQ, step="operators", **kw)
    assert roof.feasible and ops.feasible
    assert ops.rate_per_s <= roof.rate_per_s * (1 + 0.05)
    assert ops.tpot_s <= 0.05 * (1 + 1e-9)


def test_a_bad_step_is_refused_with_the_choices():
    with pytest.raises(cm.ConfigError, match="roofline, operators"):
        cm.optimize_serving(MODEL, CHIP, REQ, rate_per_s=RATE, step="kernels")


def test_the_command_line_takes_step(capsys):
    args = ["optimize", "--model", MODEL, "--hardware", CHIP, "--isl", "1024", "--osl", "256", "--rate", str(RATE),
            "--ttft-ms", str(TTFT * 1e3), "--tpot-ms", str(TPOT * 1e3), "--max-chips", str(CHIPS), "--mode", "agg",
            "--method", "exhaustive", "--step", "operators", "--efficiency", "kernels", "--json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    sol = opt(mode="agg")
    assert d["chips"] == sol.chips and d["tpot_s"] == pytest.approx(sol.tpot_s, rel=1e-9)
    # the decode problem (no --isl) takes it too: the step is priced by its kernels
    base = ["optimize", "--model", MODEL, "--hardware", CHIP, "--context", "2048", "--tpot-ms", "20",
            "--max-chips", "4", "--efficiency", "kernels", "--method", "exhaustive", "--json"]
    assert main(base) == 0
    roof = json.loads(capsys.readouterr().out)
    assert main(base + ["--step", "operators"]) == 0
    ops = json.loads(capsys.readouterr().out)
    want = cm.optimize(MODEL, CHIP, context=2048, tpot_s=0.02, max_chips=4, efficiency="kernels", rules=OPS,
                       method="exhaustive")
    assert ops["config"]["batch"] == want.config["batch"] and ops["usd_per_mtok"] == pytest.approx(want.usd_per_mtok, rel=1e-9)
    assert ops["usd_per_mtok"] != pytest.approx(roof["usd_per_mtok"], rel=1e-3)


def test_the_fleet_plan_prices_its_deployments_on_the_step_asked_for():
    fleet = {"chips": {CHIP: {"available": CHIPS}},
             "models": {"chat": {"model": MODEL, "isl": 1024, "osl": 256, "rate_per_s": RATE,
                                 "ttft_ms": TTFT * 1e3, "tpot_ms": TPOT * 1e3, "mode": "agg"}}}
    p = cm.plan(fleet, method="exhaustive", efficiency="kernels", step="operators")
    sol = opt(mode="agg", max_chips=CHIPS + 1)
    assert p.feasible and p.models[0].chips == sol.chips
    assert p.usd_per_hour == pytest.approx(sol.usd_per_hour, rel=1e-9)
    with pytest.raises(cm.ConfigError, match="roofline, operators"):
        cm.plan(fleet, step="kernels")
