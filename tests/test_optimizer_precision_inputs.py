"""The optimisers' candidate tables set every precision-dependent input as ``cm.predict`` does.

Under the calibrated profile 8-bit math runs at a fitted fraction of its peak and weight-only
formats pay for dequantisation (docs/theory.md §5.7); a candidate table that dropped those
inputs would rank candidates with a faster model than the one that re-checks the answer.
"""

from __future__ import annotations

import numpy as np
import pytest

import costmodel as cm
from costmodel.efficiency import resolve_efficiency
from costmodel.optimizer.exact import exact_metrics
from costmodel.optimizer.problem import make_problem
from costmodel.optimizer.serving.evaluate import prefill_table
from costmodel.optimizer.serving.problem import make_serving_problem
from costmodel.serving.api import replica_of
from costmodel.symbolic import Rules

MODEL, CHIP = "llama-3-70b", "h100-sxm"
WEIGHTS = "bf16,fp8,int8"


def _precisions(problem):
    return [(i, cm.Precision(c.weights, c.kv, c.math)) for i, c in enumerate(problem.precisions)]


def test_the_profile_makes_precision_matter():
    """The check below has teeth: the calibrated profile prices 8-bit math and dequantisation."""
    eff, _ = resolve_efficiency("calibrated", cm.load_hardware(CHIP), "prefill")
    assert eff.low_precision_flops_factor < 1.0
    assert eff.dequant_flops_8bit > 0.0


def test_decode_optimiser_table_equals_predict_for_every_precision():
    problem = make_problem(MODEL, CHIP, context=4096, weights=WEIGHTS, efficiency="calibrated")
    choices = _precisions(problem)
    assert {p.weights for _, p in choices} >= {"bf16", "fp8", "int8"}
    for i, prec in choices:
        m = exact_metrics(problem, np.array([8]), np.array([1]), np.array([1]), np.array([256.0]), np.array([i]))
        p = cm.predict(MODEL, CHIP, cm.Workload(batch=256, context=4096), parallel=cm.Parallel(tp=8),
                       precision=prec, efficiency="calibrated")
        assert float(m["step_time_s"][0]) == pytest.approx(p.step_time_s, rel=1e-5), prec


def test_serving_optimiser_prefill_table_equals_serve_for_every_precision():
    problem = make_serving_problem(MODEL, CHIP, cm.Requests(4096, 256), rate_per_s=1.0, ttft_s=2.0, tpot_s=0.05,
                                   weights=WEIGHTS, efficiency="calibrated")
    for i, prec in _precisions(problem):
        table = prefill_table(problem, np.array([[4, 1, 1]]), np.array([i]), np.array([2.0]))
        rep = replica_of(problem.model, problem.hardware, cm.Parallel(tp=4), prec, problem.efficiency, None, Rules())
        want = float(rep.prefill(2.0, problem.requests.prefill_tokens)["step_time_s"])
        assert float(table["prefill_time_s"][0]) == pytest.approx(want, rel=1e-5), prec
