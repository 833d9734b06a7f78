"""Open-loop queueing (docs/serving.md §19.3): closed forms by hand, and against the discrete-event simulation."""

import math

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
                     chunk_tokens=chunk).max_rate_per_s
    rate = utilisation * r_max
    s = cm.serve(model, "h100-sxm", requests, cm.Load.rate(rate), parallel=parallel, chunk_tokens=chunk)
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
                 chunk_tokens=chunk)
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
    r = goodput("llama-3-8b", "h100-sxm", req, target)
    assert cm.serve("llama-3-8b", "h100-sxm", req, cm.Load.rate(r)).ttft_s <= target
    assert cm.serve("llama-3-8b", "h100-sxm", req, cm.Load.rate(r * 1.01)).ttft_s > target
