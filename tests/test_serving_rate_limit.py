"""The largest sustainable rate is a property of the deployment (docs/serving.md §19.3).

It must not move with the demanded rate, and a chip at least as good in every datasheet number
(H100 SXM -> H200 -> B200: more HBM, more bandwidth, no fewer FLOPs or link bandwidth) must never
lower it: an engine on the better chip can always run the smaller batch. A default run draws
``DEFAULT_DRAWS`` random deployments in ``SHARDS`` tests; ``--fuzz-long`` draws 1,000.
"""

from __future__ import annotations

import numpy as np
import pytest

import costmodel as cm
from costmodel.specs import load_hardware

CHIPS = ("h100-sxm", "h200", "b200")
MODELS = ("llama-3.1-8b", "llama-3.1-70b", "qwen3-32b", "mixtral-8x7b")
RATES = (0.5, 5.0, 50.0)
SHARDS = 8
DEFAULT_DRAWS = 24
LONG_DRAWS = 1000
RTOL = 1e-5


def _draw(rng: np.random.Generator) -> dict:
    return dict(model=str(rng.choice(MODELS)), tp=int(rng.choice([1, 2, 4, 8])), pp=int(rng.choice([1, 2])),
                isl=int(rng.choice([128, 512, 2000, 4000])), osl=int(rng.choice([16, 128, 300, 1000])),
                chunk=int(rng.choice([256, 512, 2048, 8192])), efficiency=str(rng.choice(["ideal", "calibrated"])),
                weights=str(rng.choice(["bf16", "fp8"])), kv=str(rng.choice(["bf16", "fp8"])))


def _limits(d: dict, chip: str) -> list[float] | None:
    """``max_rate_per_s`` at each of :data:`RATES`, or None when the deployment does not fit the chip."""
    out = []
    for rate in RATES:
        try:
            s = cm.serve(d["model"], chip, cm.Requests(d["isl"], d["osl"]), cm.Load.rate(rate),
                         parallel=cm.Parallel(tp=d["tp"], pp=d["pp"]),
                         precision=cm.Precision(weights=d["weights"], kv=d["kv"]), efficiency=d["efficiency"],
                         chunk_tokens=d["chunk"])
        except cm.CostModelError:  # a split the model cannot take
            return None
        if not s.fits:
            return None
        out.append(s.max_rate_per_s)
    return out


def test_the_chips_dominate_in_order():
    """The premise of the ordering: each chip is at least the one before in every datasheet number the
    step uses."""
    for a, b in zip(CHIPS, CHIPS[1:]):
        ha, hb = load_hardware(a), load_hardware(b)
        assert hb.hbm_bytes_per_s >= ha.hbm_bytes_per_s and hb.hbm_bytes >= ha.hbm_bytes
        assert hb.scale_up_bytes_per_s >= ha.scale_up_bytes_per_s
        assert all(hb.flops_per_s.get(k, 0) >= v for k, v in ha.flops_per_s.items())


@pytest.mark.parametrize("shard", range(SHARDS))
def test_rate_limit_is_the_deployments_own(request, shard):
    draws = LONG_DRAWS if request.config.getoption("--fuzz-long") else DEFAULT_DRAWS
    rng = np.random.default_rng(1000 + shard)
    failures = []
    for _ in range(draws // SHARDS):
        d = _draw(rng)
        limits = {chip: _limits(d, chip) for chip in CHIPS}
        for chip, rates in limits.items():
            if rates is not None and max(rates) - min(rates) > RTOL * max(rates):
                failures.append(f"{d} on {chip}: the limit moves with the demand: {rates}")
        for a, b in zip(CHIPS, CHIPS[1:]):
            if limits[a] is not None and limits[b] is not None and limits[b][0] < limits[a][0] * (1 - RTOL):
                failures.append(f"{d}: {b} sustains {limits[b][0]:.6g} req/s, below {a}'s {limits[a][0]:.6g}")
    assert not failures, "\n".join(failures)


def test_saturated_replica_serves_its_limit():
    """Past the limit the replica serves the limit itself, and the limit is what a lower demand reports."""
    kw = dict(parallel=cm.Parallel(tp=1, pp=2, replicas=4), precision=cm.Precision(weights="fp8", kv="fp8"),
              efficiency="calibrated", chunk_tokens=512)
    req = cm.Requests(2000, 300)
    low = cm.serve("llama-3.1-70b", "h200", req, cm.Load.rate(1.0), **kw)
    past = cm.serve("llama-3.1-70b", "h200", req, cm.Load.rate(3 * low.max_rate_per_s), **kw)
    assert past.saturated and past.max_rate_per_s == pytest.approx(low.max_rate_per_s, rel=1e-9)
    assert past.requests_per_s == pytest.approx(past.max_rate_per_s, rel=1e-4)
    assert past.utilisation == pytest.approx(3.0, rel=1e-9)
    just_below = cm.serve("llama-3.1-70b", "h200", req, cm.Load.rate(0.99 * low.max_rate_per_s), **kw)
    assert not just_below.saturated and np.isfinite(just_below.ttft_s)


def test_h200_never_needs_more_chips_than_h100():
    """Llama-3.1-70B at 2000/300 tokens, 20 req/s, TTFT 1 s, TPOT 40 ms: the H100 needs 8 chips, so
    the H200 (everything an H100 has, and more) needs no more, by gradient and by exhaustive search."""
    kw = dict(rate_per_s=20.0, ttft_s=1.0, tpot_s=0.040, weights=("bf16", "fp8"), kv=("bf16", "fp8"),
              efficiency="calibrated", mode="agg")
    h100 = cm.optimize_serving("llama-3.1-70b", "h100-sxm", cm.Requests(2000, 300), method="exhaustive", **kw)
    answers = {m: cm.optimize_serving("llama-3.1-70b", "h200", cm.Requests(2000, 300), method=m, **kw)
               for m in ("gradient", "exhaustive")}
    assert answers["gradient"].chips == answers["exhaustive"].chips <= h100.chips <= 9
