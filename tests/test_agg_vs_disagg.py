"""The serving optimiser reproduces the known trade between aggregated and disaggregated serving
(DistServe, Zhong et al. 2024; docs/optimizer.md, "Aggregated or disaggregated?")."""

from __future__ import annotations

import pytest

import costmodel as cm
from costmodel.optimizer.serving import optimize_serving


def _costs(isl: int, tpot_s: float) -> dict[str, float]:
    sol = optimize_serving("llama-3-70b", "h100-sxm", cm.Requests(isl, 256), rate_per_s=10.0, ttft_s=2.0,
                           tpot_s=tpot_s, max_chips=256, mode="auto", weights="bf16,fp8", efficiency="calibrated")
    assert sol.feasible
    return {mode: best.usd_per_mtok_output for mode, best in sol.modes.items() if best.feasible}


@pytest.mark.parametrize(("isl", "tpot_s", "winner"), [
    (16384, 0.015, "disaggregated"),  # long prompts interfere with a tight TPOT target
    (256, 0.100, "aggregated"),       # short prompts, loose target: one pool does both phases
])
def test_the_known_winner(isl, tpot_s, winner):
    costs = _costs(isl, tpot_s)
    loser = ({"aggregated", "disaggregated"} - {winner}).pop()
    assert costs[winner] < costs.get(loser, float("inf"))
