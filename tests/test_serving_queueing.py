"""Open-loop queueing (docs/serving.md §19.3): closed forms by hand, and against the discrete-event simulation."""

import math

import numpy as np
import pytest

import costmodel as cm
from costmodel.serving.api import replica_of
from costmodel.serving.queueing import bulk_prefill_queue, goodput_rate, kingman_wait_s, md1_wait_s
from costmodel.serving.simulate import simulate
from costmodel.symbolic import Rules


def test_md1_and_kingman_by_hand():
    assert md1_wait_s(0.5, 1.0) == pytest.approx(0.5)            # ρ s / (2(1-ρ)) = 0.5/(2·0.5)
    assert kingman_wait_s(0.5, 1.0, service_cv2=1.0) == pytest.approx(1.0)  # M/M/1: ρ s/(1-ρ)
    assert math.isinf(md1_wait_s(2.0, 0.5))


def test_bulk_queue_with_constant_steps_is_the_deterministic_service_queue():
    """Steps of a fixed length τ that serve everything queued: a prompt waits for the end of the
    running step (τ/2 on average) and then one step, so TTFT = 1.5·τ at any rate."""
    tau = 0.02
    out = bulk_prefill_queue([tau] * 9, rate_per_s=30.0, units_per_prompt=1)
    assert out["mean_step_s"] == pytest.approx(tau, rel=1e-12)
    assert out["ttft_s"] == pytest.approx(1.5 * tau, rel=1e-6)  # the chain is truncated
    assert out["stable"]


def test_goodput_is_the_largest_rate_meeting_the_target():
    assert goodput_rate(lambda r: 0.1 + r / 100, 0.5, 100.0) == pytest.approx(40.0, rel=1e-3)
    assert goodput_rate(lambda r: 1.0, 0.5, 100.0) == 0.0


def test_simulation_with_a_linear_step_matches_the_fluid_fixed_point():
    """τ = a + b·B + e·c: the mean step solves τ = a + (b·D + e·P)·R·τ (Little's law)."""
    a, b, e, R = 0.01, 1e-4, 1e-5, 20.0
    req = cm.Requests(1024, 256)
    sim = simulate(lambda B, c: a + b * B + e * c, req, R, n_requests=3000, seed=3)
    tau = a / (1 - R * (b * 255 + e * 1024))
    assert sim.tpot_s == pytest.approx(tau, rel=0.08)
    assert sim.requests_per_s == pytest.approx(R, rel=0.05)


@pytest.mark.parametrize("model,parallel,requests,chunk", [
    ("llama-3-8b", cm.Parallel(tp=1), cm.Requests(1024, 256), 8192),
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(4096, 512), 2048),  # prompts in two chunks
    ("llama-3-8b", cm.Parallel(tp=1), cm.Requests.mix([(0.7, 512, 128), (0.3, 2048, 512)]), 8192),
])
@pytest.mark.parametrize("utilisation", [0.2, 0.5, 0.8])
def test_ttft_and_tpot_within_10_percent_of_the_simulation(model, parallel, requests, chunk, utilisation):
    r_max = cm.serve(model, "h100-sxm", requests, cm.Load.rate(1e-3), parallel=parallel,
                     chunk_tokens=chunk, efficiency=cm.IDEAL).max_rate_per_s
    rate = utilisation * r_max
    s = cm.serve(model, "h100-sxm", requests, cm.Load.rate(rate), parallel=parallel, chunk_tokens=chunk, efficiency=cm.IDEAL)
    assert s.utilisation == pytest.approx(utilisation, rel=1e-9)
    rep = replica_of(model, "h100-sxm", parallel, cm.Precision(), cm.IDEAL, None, Rules())
    S, A = requests.input_tokens + requests.output_tokens / 2, requests.input_tokens / 2
    sim = simulate(rep.step_function(S, A), requests, rate, chunk_tokens=chunk,
                   max_batch=s.details["max_batch"], n_requests=3000, seed=7)
    assert s.ttft_s == pytest.approx(sim.ttft_s, rel=0.10)
    assert s.tpot_s == pytest.approx(sim.tpot_s, rel=0.10)
    assert s.requests_per_s == pytest.approx(sim.requests_per_s, rel=0.10)


@pytest.mark.parametrize("model,parallel,requests,chunk,concurrency", [
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(1024, 1024), 8192, 1),
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(1024, 1024), 8192, 16),
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(1024, 1024), 8192, 64),
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(4096, 512), 2048, 64),  # prompts in two chunk steps
    ("llama-3-8b", cm.Parallel(tp=1), cm.Requests(1024, 256), 8192, 4),
])
def test_closed_loop_within_10_percent_of_the_simulation(model, parallel, requests, chunk, concurrency):
    """Concurrency N: the simulated closed loop, its first N requests staggered over one latency.

    At a few requests in flight the prompts never share a step and the two agree within 3%; at
    more, randomly staggered prompts sometimes share a chunk step (TTFT a few percent above the
    closed form, which spreads them evenly).
    """
    s = cm.serve(model, "h100-sxm", requests, cm.Load.concurrency(concurrency), parallel=parallel,
                 chunk_tokens=chunk, efficiency=cm.IDEAL)
    rep = replica_of(model, "h100-sxm", parallel, cm.Precision(), cm.IDEAL, None, Rules())
    S, A = requests.input_tokens + requests.output_tokens / 2, requests.input_tokens / 2
    sim = simulate(rep.step_function(S, A), requests, concurrency=concurrency, stagger_s=s.e2e_latency_s,
                   chunk_tokens=chunk, max_batch=s.details["max_batch"], n_requests=max(2000, 10 * concurrency),
                   seed=1)
    rtol = 0.03 if concurrency <= 16 else 0.10
    assert s.ttft_s == pytest.approx(sim.ttft_s, rel=rtol)
    assert s.tpot_s == pytest.approx(sim.tpot_s, rel=rtol)
    assert s.requests_per_s == pytest.approx(sim.requests_per_s, rel=rtol)
    assert s.e2e_latency_s == pytest.approx(sim.e2e_latency_s, rel=rtol)


def test_simulated_closed_loop_started_at_once_stays_a_static_batch():
    """Equal requests all started at time 0 finish together and return together: lockstep."""
    req = cm.Requests(1024, 64)
    sim = simulate(lambda B, c: 1e-3 + 1e-5 * B + 1e-6 * c, req, concurrency=8, n_requests=400)
    prefill, decode = 1e-3 + 1e-6 * 8 * 1024, 63 * (1e-3 + 1e-5 * 8)
    assert sim.ttft_s == pytest.approx(prefill, rel=1e-9)
    assert sim.e2e_latency_s == pytest.approx(prefill + decode, rel=1e-9)


def test_goodput_meets_the_ttft_target_and_no_more():
    from costmodel.serving import goodput

    req = cm.Requests(1024, 256)
    target = 0.03
    r = goodput("llama-3-8b", "h100-sxm", req, target, efficiency=cm.IDEAL)
    assert cm.serve("llama-3-8b", "h100-sxm", req, cm.Load.rate(r), efficiency=cm.IDEAL).ttft_s <= target
    assert cm.serve("llama-3-8b", "h100-sxm", req, cm.Load.rate(r * 1.01), efficiency=cm.IDEAL).ttft_s > target


def _random_chain(rng):
    """A prompt-queue chain: up to 64 units a step, one or two prompt sizes, load 5-99%, any truncation."""
    from costmodel.serving.queueing import _arrival_units

    n = int(rng.integers(1, 65))
    mix = [(1.0, int(rng.integers(1, 6)))]
    if rng.random() < 0.4:
        mix = [(0.6, mix[0][1]), (0.4, int(rng.integers(1, 9)))]
    step = 0.01 + 0.002 * rng.random() * np.arange(n + 1)
    mean_units = sum(w * u for w, u in mix)
    rate = rng.uniform(0.05, 0.99) * n / (step[n] * mean_units)
    arrivals = _arrival_units(rate * step, mix)
    q_max = int(rng.integers(1, n + arrivals.shape[1] + 3)) if rng.random() < 0.3 else int(rng.integers(n, 800))
    return arrivals, n, max(q_max, 1)


def test_band_solver_equals_the_sparse_solver_on_random_chains():
    """The band LU (LAPACK gbtrf/gbtrs) and SuperLU solve the same stationary equations, truncation
    and lumping at ``q_max`` included."""
    from costmodel.serving.queueing import _stationary_banded, _stationary_sparse

    rng = np.random.default_rng(0)
    for _ in range(200):
        arrivals, n, q_max = _random_chain(rng)
        band, sparse = _stationary_banded(arrivals, n, q_max), _stationary_sparse(arrivals, n, q_max)
        band, sparse = band / band.sum(), sparse / sparse.sum()
        assert band.sum() == pytest.approx(1.0) and np.all(band > -1e-12)
        np.testing.assert_allclose(band, sparse, rtol=0, atol=1e-12)


def test_cut_balance_equals_the_band_solver_on_chains_of_one_unit_a_step():
    """A step of one unit: the forward substitution over the cuts (LAPACK tbtrs) solves the same truncated
    chain as the band LU and SuperLU, lumping at ``q_max`` included, from a light load to the edge of
    stability (where the chain reaches its longest queues)."""
    from costmodel.serving.queueing import (Q_LIMIT, _arrival_units, _stationary_banded, _stationary_skip_free,
                                            _stationary_sparse)

    rng = np.random.default_rng(1)
    for i in range(200):
        u = int(rng.integers(1, 40))
        mix = [(1.0, u)] if rng.random() < 0.6 else [(0.7, u), (0.3, int(rng.integers(1, 40)))]
        step = np.array([0.01, 0.01 + 0.03 * rng.random()])
        load = rng.uniform(0.05, 0.9999) if i % 4 else rng.uniform(0.99, 0.99999)
        arrivals = _arrival_units(load * step / (step[1] * sum(w * m for w, m in mix)), mix)
        q_max = int(rng.integers(1, 300)) if i % 5 == 0 else int(rng.integers(300, Q_LIMIT + 1))
        cut = _stationary_skip_free(arrivals, q_max)
        cut = cut / cut.sum()
        assert np.all(cut >= 0)
        for other in (_stationary_banded(arrivals, 1, q_max), _stationary_sparse(arrivals, 1, q_max)):
            np.testing.assert_allclose(cut, other / other.sum(), rtol=0, atol=1e-11)


@pytest.mark.parametrize("parallel,chunk", [(cm.Parallel(tp=2), 256), (cm.Parallel(tp=4), 8192)])
def test_rate_limit_is_the_edge_of_the_sustainable_rates(parallel, chunk):
    """The largest sustainable rate (Brent's method on the batch, then on the rate) is where a plain
    bisection on the definition puts it: some batch ``B <= B_cap`` with the chain at ``B`` stable and
    ``R·D·E[τ](B) <= B`` (searched on a grid of batches, so the oracle may fall short of the peak by
    the grid's step). The first case is bound by the queue's stability (a 256-token chunk budget: the
    chain at ``B_cap`` alone gives a lower limit), the second by the batch that fits."""
    from costmodel.serving.aggregated import _chain_steps, _rate_limit

    req = cm.Requests(1024, 256)
    rep = replica_of("llama-3-70b", "h100-sxm", parallel, cm.Precision(), cm.IDEAL, None, Rules())
    D, S, A = 255.0, 1024 + 128.0, 512.0
    cap = float(rep.max_batch(S))

    def sustainable_at(R, B):
        step_s, mix = _chain_steps(rep, req, S, A, chunk, B)
        chain = bulk_prefill_queue(step_s, R, mix)
        return chain["stable"] and R * D * chain["mean_step_s"] <= B

    grid = cap * np.geomspace(1e-3, 1.0, 241)

    def edge(sustainable):
        hi = 1.0
        while sustainable(hi):
            hi *= 2
        lo = 0.0
        while hi - lo > 1e-7 * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if sustainable(mid) else (lo, mid)
        return lo

    at_cap = edge(lambda R: sustainable_at(R, cap))
    oracle = max(at_cap, edge(lambda R: any(sustainable_at(R, B) for B in grid[::-1])))
    r_max, B = _rate_limit(rep, 2 * oracle, req, D, S, A, chunk, cap)
    assert B <= cap and sustainable_at(r_max, B)
    assert oracle * (1 - 1e-5) <= r_max <= oracle * 1.01
    if chunk == 256:
        assert at_cap < 0.99 * r_max  # where the chain at the cap alone fell short (by 4%)


def test_kept_rate_limits_give_the_same_answers():
    """A replica's largest sustainable rate is kept across demanded rates: the figures are the same
    bit for bit as from a fresh computation."""
    from costmodel.serving.aggregated import forget_rate_limits

    req, par = cm.Requests(1024, 256), cm.Parallel(tp=2)
    kept = [cm.serve("llama-3-70b", "h100-sxm", req, cm.Load.rate(r), parallel=par, chunk_tokens=256, efficiency=cm.IDEAL)
            for r in (3.0, 5.0)]
    forget_rate_limits()
    fresh = cm.serve("llama-3-70b", "h100-sxm", req, cm.Load.rate(5.0), parallel=par, chunk_tokens=256, efficiency=cm.IDEAL)
    assert kept[1].max_rate_per_s == fresh.max_rate_per_s == kept[0].max_rate_per_s
    assert kept[1].ttft_s == fresh.ttft_s and kept[1].tpot_s == fresh.tpot_s
