"""Serving a workload (docs/serving.md §19): closed forms against brute force and independent predictions."""

import math

import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel.compile import compiled, compiled_serving
from costmodel.errors import ConfigError
from costmodel.symbolic import Rules
from costmodel.symbolic.serving import serving_sym, sum_of_max_of_lines

H100 = "h100-sxm"
TP8 = cm.Parallel(tp=8)


def _serving_inputs(sc, **values):
    x = sc.inputs() | {"steps": 1.0, "prefill_tokens": 0.0, "prefill_position": 0.0, "draft_length": 0.0,
                       "acceptance": 0.0}
    return x | values


@pytest.mark.parametrize("a1,b1,a2,b2,lo,hi", [
    (0.0, 1.0, 10.0, 0.0, 1, 30),     # crossover inside, rising line
    (10.0, -1.0, 0.0, 0.0, 1, 30),    # crossover inside, falling line
    (5.0, 0.5, 1.0, 0.5, 1, 30),      # parallel lines
    (0.0, 2.0, 100.0, 0.1, 1, 30),    # crossover past the end
    (3.5, 0.25, 4.0, 0.2, 7, 7),      # one term
    (1.0, 1.0, 2.0, 0.0, 5, 4),       # no terms
])
def test_sum_of_max_of_lines_equals_the_sum(a1, b1, a2, b2, lo, hi):
    expr = sum_of_max_of_lines(*map(sp.nsimplify, (a1, b1, a2, b2)), sp.Integer(lo), sp.Integer(hi))
    brute = sum(max(a1 + b1 * t, a2 + b2 * t) for t in range(lo, hi + 1))
    assert float(expr) == pytest.approx(brute, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("model,parallel,rules", [
    ("llama-3-70b", TP8, Rules()),
    ("llama-3-70b", TP8, Rules(combine="sum")),
    ("llama-3-70b", TP8, Rules(combine="scaling-book", comm_overlap="full")),
    ("mixtral-8x7b", cm.Parallel(tp=2, pp=2), Rules()),
])
@pytest.mark.parametrize("batch", [1.0, 96.0, 900.0])
def test_static_batch_decode_sum_equals_brute_force(model, parallel, rules, batch):
    """Σ_{t=1..n} ℓ(S + t) in closed form equals the sum of compiled decode steps (float64, rtol 1e-9)."""
    I, n = 700.0, 333
    sc = cm.scenario(model, H100, cm.Workload(batch=batch, context=I), parallel, efficiency=cm.IDEAL)
    closed = float(compiled_serving(sc.model.structure, rules)(_serving_inputs(sc, steps=float(n)))["static_decode_s"])
    step = compiled(sc.model.structure, rules)
    contexts = I + np.arange(1, n + 1, dtype=float)
    brute = float(np.sum(step(sc.inputs() | {"context": contexts})["step_time_s"]))
    assert closed == pytest.approx(brute, rel=1e-9)


def test_static_batch_sum_with_speculation_advances_the_context_by_e_per_step():
    sc = cm.scenario("llama-3-8b", H100, cm.Workload(batch=64.0, context=512.0), efficiency=cm.IDEAL)
    f = compiled_serving(sc.model.structure, Rules())
    x = _serving_inputs(sc, steps=200.0, draft_length=3.0, acceptance=0.7)
    E = (1 - 0.7**4) / (1 - 0.7)
    brute = sum(float(f(x | {"context": 512.0 + E * t})["step_time_s"]) for t in range(1, 201))
    assert float(f(x)["static_decode_s"]) == pytest.approx(brute, rel=1e-9)
    assert float(f(x)["tokens_per_step"]) == pytest.approx(E, rel=1e-12)


@pytest.mark.parametrize("model,parallel", [("llama-3-70b", TP8), ("deepseek-v3", cm.Parallel(tp=8, ep=4)),
                                            ("mixtral-8x7b", cm.Parallel(tp=2, pp=2))])
def test_mixed_step_without_prefill_is_the_decode_step(model, parallel):
    sc = cm.scenario(model, H100, cm.Workload(batch=37.0, context=3000.0), parallel, efficiency=cm.IDEAL)
    mixed = compiled_serving(sc.model.structure, Rules())(_serving_inputs(sc))
    decode = compiled(sc.model.structure, Rules())(sc.inputs())
    for k in ("step_time_s", "compute_s", "weights_s", "kv_s", "communication_s", "overhead_s"):
        assert float(mixed[k]) == pytest.approx(float(decode[k]), rel=1e-12)


def test_static_batch_serving_is_prefill_plus_the_decode_steps():
    """TTFT = prefill of B prompts; e2e adds the O-1 decode steps at contexts I+1 .. I+O-1 (cm.predict)."""
    I, O, B = 512.0, 129.0, 16.0
    s = cm.serve("llama-3-8b", H100, cm.Requests(I, O), cm.Load.static(B), efficiency=cm.IDEAL)
    pre = cm.predict("llama-3-8b", H100, cm.Workload(batch=B, prompt=I, phase="prefill"), efficiency=cm.IDEAL)
    steps = [cm.predict("llama-3-8b", H100, cm.Workload(batch=B, context=I + t), efficiency=cm.IDEAL).step_time_s for t in range(1, int(O))]
    assert s.ttft_s == pytest.approx(pre.step_time_s, rel=1e-9)
    assert s.e2e_latency_s == pytest.approx(pre.step_time_s + sum(steps), rel=1e-9)
    assert s.tpot_s == pytest.approx(sum(steps) / (O - 1), rel=1e-9)
    assert s.requests_per_s == pytest.approx(B / s.e2e_latency_s, rel=1e-12)
    assert s.output_tokens_per_s == pytest.approx(B * O / s.e2e_latency_s, rel=1e-12)


def test_llama70b_aggregated_tpot_at_batch_442_is_the_decode_step_plus_the_prefill_share():
    """Llama-3-70B, 8x H100, ISL = OSL = 1024, tp8, 442 decoding sequences (issue scenario).

    Expected from independent predictions: a fraction f = X of the steps carries one
    1024-token prompt (X = 442/1023 requests finish per step); such a step is the decode
    step plus the prompt's compute and KV write, with the communication of 442 + 1024
    tokens.
    """
    I = O = 1024.0
    B = 442.0
    S = I + O / 2
    dec = cm.predict("llama-3-70b", H100, cm.Workload(batch=B, context=S), parallel=TP8, efficiency=cm.IDEAL)
    pre = cm.predict("llama-3-70b", H100, cm.Workload(batch=1, prompt=I, phase="prefill"), parallel=TP8, efficiency=cm.IDEAL)
    wide = cm.predict("llama-3-70b", H100, cm.Workload(batch=B + I, context=S), parallel=TP8, efficiency=cm.IDEAL)
    chunk_step = (max(dec.compute_s + pre.compute_s, dec.weights_s + dec.kv_s + pre.kv_s)
                  + wide.communication_s + dec.overhead_s)
    X = f = B / (O - 1)
    mean_step = f * chunk_step + (1 - f) * dec.step_time_s
    # Little: N = (X/τ̄)·(k_p·t_chunk + D·τ̄) with k_p = 1 chunk step and D = O - 1 mean steps
    N = X * (chunk_step + (O - 1) * mean_step) / mean_step
    s = cm.serve("llama-3-70b", H100, cm.Requests(I, O), cm.Load.concurrency(N), parallel=TP8, efficiency=cm.IDEAL)
    assert s.decode_batch == pytest.approx(B, rel=1e-9)
    assert s.tpot_s == pytest.approx(mean_step, rel=1e-9)
    assert s.ttft_s == pytest.approx(chunk_step, rel=1e-9)  # no wait below the cap: the prompt's chunk step
    assert s.tpot_s > 1.3 * dec.step_time_s  # prefill interference: above the decode-only step
    assert s.details["prefill_share"] == pytest.approx(1 - dec.step_time_s / s.tpot_s, rel=1e-9)
    # cost: the decode share of the chip-time prices output tokens
    usd_per_s = 8 * 2.0 / 3600
    assert s.usd_per_mtok_output == pytest.approx(1e6 * usd_per_s * (1 - s.details["prefill_share"])
                                                  / s.output_tokens_per_s, rel=1e-9)
    assert s.usd_per_request == pytest.approx(usd_per_s / s.requests_per_s, rel=1e-9)


def test_throughput_never_exceeds_the_offline_bound():
    req = cm.Requests(1024, 256)
    offline = cm.serve("llama-3-8b", H100, req, cm.Load.offline(), efficiency=cm.IDEAL)
    assert offline.requests_per_s == pytest.approx(offline.max_rate_per_s, rel=1e-9)
    for n in (1, 8, 64, 256, 2048, 10**5):
        s = cm.serve("llama-3-8b", H100, req, cm.Load.concurrency(n), efficiency=cm.IDEAL)
        assert s.output_tokens_per_s <= offline.output_tokens_per_s * (1 + 1e-9)
    for u in (0.1, 0.5, 0.9, 2.0):
        s = cm.serve("llama-3-8b", H100, req, cm.Load.rate(u * offline.max_rate_per_s), efficiency=cm.IDEAL)
        assert s.output_tokens_per_s <= offline.output_tokens_per_s * (1 + 1e-9)
    capped = cm.serve("llama-3-8b", H100, req, cm.Load.offline(max_batch=32), efficiency=cm.IDEAL)
    assert capped.decode_batch == pytest.approx(32, rel=1e-9)
    assert capped.output_tokens_per_s < offline.output_tokens_per_s


def test_ttft_rises_with_rate_and_saturation_is_reported():
    req = cm.Requests(1024, 256)
    r_max = cm.serve("llama-3-8b", H100, req, cm.Load.offline(), efficiency=cm.IDEAL).max_rate_per_s
    ttft = [cm.serve("llama-3-8b", H100, req, cm.Load.rate(u * r_max), efficiency=cm.IDEAL).ttft_s for u in (0.05, 0.2, 0.4, 0.6, 0.8)]
    assert all(a < b for a, b in zip(ttft, ttft[1:]))
    past = cm.serve("llama-3-8b", H100, req, cm.Load.rate(1.5 * r_max), efficiency=cm.IDEAL)
    assert past.saturated and math.isinf(past.ttft_s) and past.utilisation >= 1.5 * (1 - 1e-9)
    d = past.to_dict()
    assert d["ttft_s"] is None and d["e2e_latency_s"] is None and d["saturated"] is True
    assert past.requests_per_s == pytest.approx(past.max_rate_per_s, rel=1e-6)  # served flat out
    assert past.max_rate_per_s <= r_max * (1 + 1e-9)


def test_concurrency_obeys_littles_law():
    s = cm.serve("llama-3-8b", H100, cm.Requests(2048, 512), cm.Load.concurrency(100, ), efficiency=cm.IDEAL)
    assert s.requests_per_s * s.e2e_latency_s == pytest.approx(100, rel=1e-9)
    assert s.e2e_latency_s == pytest.approx(s.ttft_s + 511 * s.tpot_s, rel=1e-9)


@pytest.mark.parametrize("I,O,chunk", [(1024, 1024, 8192), (10000, 256, 4096), (2048, 1, 8192)])
def test_closed_loop_of_one_request_pays_its_prompts_chunk_steps(I, O, chunk):
    """Concurrency 1: TTFT is the prompt's own k_p = ⌈P/C⌉ chunk steps, never less than prefilling it alone.

    Llama-3-70B at tp8 (ideal): 1024 prompt tokens take 31 ms to prefill (``costmodel predict --phase
    prefill --prompt 1024 --tp 8``); the closed loop once priced them as one mean step (7.7 ms).
    """
    from costmodel.serving.api import replica_of

    s = cm.serve("llama-3-70b", H100, cm.Requests(I, O), cm.Load.concurrency(1), parallel=TP8, chunk_tokens=chunk,
                 efficiency="ideal")
    k_p = math.ceil(I / chunk)
    alone = cm.predict("llama-3-70b", H100, cm.Workload(batch=1, prompt=min(I, chunk), phase="prefill"),
                       parallel=TP8, efficiency="ideal").step_time_s
    assert s.ttft_s >= k_p * alone * (1 - 1e-3)  # a chunk step also decodes the ~1 running sequence
    rep = replica_of("llama-3-70b", H100, TP8, cm.Precision(), "ideal", None, Rules())
    t_chunk = float(rep.step(s.decode_batch, min(chunk, I), I + O / 2, I / 2))
    assert s.ttft_s == pytest.approx(k_p * t_chunk, rel=1e-6)  # nothing waits below the cap
    assert s.requests_per_s * s.e2e_latency_s == pytest.approx(1, rel=1e-9)  # Little's law
    assert s.e2e_latency_s == pytest.approx(s.ttft_s + (O - 1) * s.tpot_s, rel=1e-9)


@pytest.mark.parametrize("n", [1, 7, 100, 1000, 10**5])
def test_closed_loop_obeys_littles_law_below_and_past_the_cap(n):
    req = cm.Requests(2048, 512)
    s = cm.serve("llama-3-8b", H100, req, cm.Load.concurrency(n), efficiency=cm.IDEAL)
    assert s.requests_per_s * s.e2e_latency_s == pytest.approx(n, rel=1e-9)
    assert s.e2e_latency_s == pytest.approx(s.ttft_s + 511 * s.tpot_s, rel=1e-9)
    offline = cm.serve("llama-3-8b", H100, req, cm.Load.offline(), efficiency=cm.IDEAL)
    assert s.requests_per_s <= offline.requests_per_s * (1 + 1e-9)
    if n == 10**5:  # past the cap the replica runs flat out and the admission queue holds the rest
        assert s.requests_per_s == pytest.approx(offline.requests_per_s, rel=1e-9)
        assert s.ttft_s > 10 * offline.ttft_s


def test_closed_loop_requests_in_system_increase_with_the_step_rate():
    """The bisection's premise: ``X·(k_p·t_chunk(X) + D·τ̄(X))/τ̄(X)`` increases on ``(0, X_cap]``."""
    grid = np.geomspace(1, 5000, 40)
    for req in (cm.Requests(1024, 1024), cm.Requests(20000, 64), cm.Requests(128, 4096)):
        served = [cm.serve("llama-3-70b", H100, req, cm.Load.concurrency(n), parallel=TP8, chunk_tokens=8192, efficiency=cm.IDEAL)
                  for n in grid]
        rates = [s.requests_per_s for s in served]
        assert all(b >= a * (1 - 1e-9) for a, b in zip(rates, rates[1:]))


def test_prefix_hits_shorten_ttft():
    cold = cm.serve("llama-3-8b", H100, cm.Requests(8192, 128), cm.Load.concurrency(4), efficiency=cm.IDEAL)
    warm = cm.serve("llama-3-8b", H100, cm.Requests(8192, 128, prefix_hit=0.75), cm.Load.concurrency(4), efficiency=cm.IDEAL)
    assert warm.ttft_s < cold.ttft_s


@pytest.mark.parametrize("load", [cm.Load.static(1), cm.Load.static(64), cm.Load.static(1024),
                                  cm.Load.concurrency(8), cm.Load.rate(2.0), cm.Load.offline()])
@pytest.mark.parametrize("draft", ["mtp", "llama-3-8b"])
def test_speculation_with_acceptance_zero_is_never_faster(load, draft):
    req = cm.Requests(1024, 257)
    plain = cm.serve("llama-3-70b", H100, req, load, parallel=TP8, efficiency=cm.IDEAL)
    spec = cm.serve("llama-3-70b", H100, req, load, parallel=TP8, spec=cm.Speculative(draft, 3, accept=0.0), efficiency=cm.IDEAL)
    assert spec.tpot_s >= plain.tpot_s * (1 - 1e-12)


def test_speculation_cuts_tpot_and_cost_at_small_batch_and_costs_more_past_the_critical_batch():
    req, mtp = cm.Requests(1024, 1024), cm.Speculative("mtp", 3, accept=0.8)
    small = [cm.serve("llama-3-70b", H100, req, cm.Load.static(1), parallel=TP8, spec=s, efficiency=cm.IDEAL) for s in (None, mtp)]
    assert small[1].tpot_s < 0.5 * small[0].tpot_s
    assert small[1].usd_per_mtok_output < 0.5 * small[0].usd_per_mtok_output
    big = [cm.serve("llama-3-70b", H100, req, cm.Load.static(1024), parallel=TP8, spec=s, efficiency=cm.IDEAL) for s in (None, mtp)]
    assert big[1].usd_per_mtok_output > big[0].usd_per_mtok_output


def test_accepted_length_gives_the_acceptance():
    s = cm.Speculative("mtp", 3, accepted_length=2.5)
    a = s.acceptance
    assert (1 - a**4) / (1 - a) == pytest.approx(2.5, rel=1e-12)
    assert cm.Speculative("mtp", 2, accepted_length=1.0).acceptance == 0.0


def test_disaggregated_with_a_free_link_matches_the_pool_formulas():
    """Prefill pool of 2 tp4 replicas, decode pool of 1 tp8 replica, a free link (DistServe's pool algebra)."""
    I, O = 2048.0, 256.0
    dg = cm.Disaggregated(prefill=cm.Pool(cm.Parallel(tp=4, replicas=2)), decode=cm.Pool(TP8), link=math.inf)
    req = cm.Requests(I, O)
    S, D = I + O / 2, O - 1
    t_pf = cm.predict("llama-3-70b", H100, cm.Workload(batch=1, prompt=I, phase="prefill"),
                      parallel=cm.Parallel(tp=4), efficiency=cm.IDEAL).step_time_s
    mu_p = 2 / t_pf
    cap = cm.predict("llama-3-70b", H100, cm.Workload(batch=1, context=S), parallel=TP8, efficiency=cm.IDEAL).max_batch
    step_cap = cm.predict("llama-3-70b", H100, cm.Workload(batch=cap, context=S), parallel=TP8, efficiency=cm.IDEAL).step_time_s
    mu_d = cap / (D * step_cap)
    off = cm.serve("llama-3-70b", H100, req, cm.Load.offline(), disagg=dg, efficiency=cm.IDEAL)
    assert off.chips == 16 and off.mode == "disaggregated"
    assert off.requests_per_s == pytest.approx(min(mu_p, mu_d), rel=1e-6)
    assert off.max_rate_per_s == pytest.approx(min(mu_p, mu_d), rel=1e-6)
    R = 0.3 * min(mu_p, mu_d)
    s = cm.serve("llama-3-70b", H100, req, cm.Load.rate(R), disagg=dg, efficiency=cm.IDEAL)
    rho = R / 2 * t_pf  # M/D/1 on each prefill replica
    assert s.ttft_s == pytest.approx(rho * t_pf / (2 * (1 - rho)) + t_pf, rel=1e-9)
    step = cm.predict("llama-3-70b", H100, cm.Workload(batch=s.decode_batch, context=S), parallel=TP8, efficiency=cm.IDEAL).step_time_s
    assert s.tpot_s == pytest.approx(step, rel=1e-9)
    assert s.decode_batch / (D * step) == pytest.approx(R, rel=1e-6)  # Little's law on the decode pool
    usd_per_s = 16 * 2.0 / 3600
    assert s.usd_per_request == pytest.approx(usd_per_s / R, rel=1e-9)
    assert s.usd_per_mtok_input == pytest.approx(1e6 * usd_per_s / 2 / (R * I), rel=1e-9)


def test_disaggregated_kv_transfer_counts_in_ttft_unless_overlapped():
    pools = dict(prefill=cm.Pool(cm.Parallel(tp=4)), decode=cm.Pool(cm.Parallel(tp=4)))
    req, load = cm.Requests(4096, 128), cm.Load.concurrency(1)
    free = cm.serve("llama-3-70b", H100, req, load, disagg=cm.Disaggregated(**pools, link=math.inf), efficiency=cm.IDEAL)
    auto = cm.serve("llama-3-70b", H100, req, load, disagg=cm.Disaggregated(**pools), efficiency=cm.IDEAL)
    kv_bytes = 4096 * 2 * 80 * 8 * 128 * 2  # I·κ: 2·L·N_kv·H·b_kv per token
    t_kv = kv_bytes / (450e9 * 4)  # both replicas in one 8-GPU NVLink domain: 4 chips of scale-up
    assert auto.details["kv_transfer_s"] == pytest.approx(t_kv, rel=1e-12)
    assert auto.ttft_s == pytest.approx(free.ttft_s + t_kv, rel=1e-9)
    over = cm.serve("llama-3-70b", H100, req, load, disagg=cm.Disaggregated(**pools, overlap=True), efficiency=cm.IDEAL)
    assert over.ttft_s == pytest.approx(free.ttft_s, rel=1e-9)


def test_attention_data_parallelism_removes_kv_replication_for_mla_and_moe():
    """DeepSeek-style: attention and KV sharded by batch over tp·ep, experts by ep (§19.6)."""
    par = cm.Parallel(tp=8, ep=4)
    req, load = cm.Requests(4096, 1024), cm.Load.offline()
    heads = cm.serve("deepseek-v3", H100, req, load, parallel=par, efficiency=cm.IDEAL)
    batch = cm.serve("deepseek-v3", H100, req, load, parallel=par, rules=Rules(attention_sharding="batch"), efficiency=cm.IDEAL)
    assert batch.details["max_batch"] > 5 * heads.details["max_batch"]  # the MLA latent is no longer on every tp rank
    assert batch.output_tokens_per_s > heads.output_tokens_per_s


def test_json_contract_and_no_nan():
    s = cm.serve("llama-3-8b", H100, cm.Requests(1024, 1024), cm.Load.concurrency(16), efficiency=cm.IDEAL)
    d = s.to_dict()
    assert list(d)[:18] == ["mode", "ttft_s", "tpot_s", "e2e_latency_s", "output_tokens_per_s",
                            "output_tokens_per_s_per_chip", "input_tokens_per_s", "tokens_per_s_per_user",
                            "requests_per_s", "decode_batch", "utilisation", "chips", "fits",
                            "memory_bytes_per_chip", "usd_per_mtok_output", "usd_per_mtok_input",
                            "usd_per_request", "breakdown_s"]
    assert set(d["breakdown_s"]) == {"compute", "weights", "kv", "communication", "overhead"}
    assert d["utilisation"] is None and d["chips"] == 1


@pytest.mark.parametrize("make,message", [
    (lambda: cm.Requests(0, 10), "input_tokens"),
    (lambda: cm.Requests(10, -1), "output_tokens"),
    (lambda: cm.Requests(10, 10, prefix_hit=1.0), "prefix_hit"),
    (lambda: cm.Load.rate(0), "rate"),
    (lambda: cm.Load("bursty", 1), "load kind"),
    (lambda: cm.Speculative("mtp", 3, accept=1.0), "acceptance"),
    (lambda: cm.Speculative("mtp", 3, accept=-0.1), "acceptance"),
    (lambda: cm.Speculative("mtp", 3), "accept"),
    (lambda: cm.Speculative("mtp", 2, accepted_length=3.0), "accepted length"),
    (lambda: cm.Speculative("mtp", 0, accept=0.5), "length"),
    (lambda: cm.Requests.mix([(1, 10)]), "classes"),
    (lambda: cm.serve("llama-3-8b", H100, cm.Requests(), cm.Load.offline(), chunk_tokens=0, efficiency=cm.IDEAL), "chunk_tokens"),
])
def test_bad_values_raise_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_request_mix_means():
    req = cm.Requests.mix([(3, 1000, 100), (1, 3000, 500)], prefix_hit=0.5)
    assert req.input_tokens == pytest.approx(1500) and req.output_tokens == pytest.approx(200)
    assert req.prefill_tokens == pytest.approx(750)
    # Var(P)/E[P]^2 with P = 500 (w 3/4) and 1500 (w 1/4): E = 750, E[P^2] = 750000
    assert req.prefill_tokens_cv2 == pytest.approx(750000 / 750**2 - 1)


def test_serving_symbols_are_nonnegative_where_zero_is_meaningful():
    c, a = serving_sym("prefill_tokens", "acceptance")
    assert c.is_nonnegative and a.is_nonnegative


def test_static_batch_with_windowed_attention_sums_the_compiled_steps():
    """gpt-oss: windowed layers bend the KV line (min(S, W)); the static sum is the steps' sum."""
    I, O, B, pr, par = 1024.0, 257.0, 8.0, cm.Precision(math="bf16"), cm.Parallel(tp=4)
    s = cm.serve("gpt-oss-120b", H100, cm.Requests(I, O), cm.Load.static(B), parallel=par, precision=pr, efficiency=cm.IDEAL)
    pre = cm.predict("gpt-oss-120b", H100, cm.Workload(batch=B, prompt=I, phase="prefill"), parallel=par,
                     precision=pr, efficiency=cm.IDEAL)
    steps = sum(cm.predict("gpt-oss-120b", H100, cm.Workload(batch=B, context=I + t), parallel=par,
                           precision=pr, efficiency=cm.IDEAL).step_time_s for t in range(1, int(O)))
    assert s.e2e_latency_s == pytest.approx(pre.step_time_s + steps, rel=1e-9)


def test_pools_on_two_chips():
    """Disaggregated pools on different chips (Pool.hardware): naming the serve's own chip for both pools is
    today's answer exactly; on two chips, each pool's cost and time are its own chip's (the prefill pool's
    TTFT share and cost equal those of the same pool in a one-chip deployment on the prefill chip, the
    decode pool's TPOT and cost those of the decode chip's), and the KV crosses the slower scale-out link.
    So the pair's cost is the sum of the two pools' costs, each taken from its own chip: never below the
    cheaper prefill pool plus the cheaper decode pool of the two one-chip deployments (the bound holds
    with equality when the pair takes each pool from the chip where it is cheaper)."""
    from costmodel.specs import load_hardware

    req, load = cm.Requests(4096, 512), cm.Load.rate(2.0)
    P, D = cm.Parallel(tp=8), cm.Parallel(tp=8)
    one = cm.Disaggregated(cm.Pool(P), cm.Pool(D))  # both pools on the chip serve() is given
    base = cm.serve("llama-3-70b", "h100-sxm", req, load, disagg=one)
    same = cm.serve("llama-3-70b", "h100-sxm", req, load,
                    disagg=cm.Disaggregated(cm.Pool(P, hardware="h100-sxm"), cm.Pool(D, hardware="h100-sxm")))
    assert same.to_dict() == base.to_dict()
    pair = cm.serve("llama-3-70b", "h100-sxm", req, load,
                    disagg=cm.Disaggregated(cm.Pool(P, hardware="b200"), cm.Pool(D, hardware="h200")))
    on_b200 = cm.serve("llama-3-70b", "b200", req, load, disagg=one)
    on_h200 = cm.serve("llama-3-70b", "h200", req, load, disagg=one)
    d = pair.to_dict()
    assert (d["prefill_hardware"], d["decode_hardware"]) == ("b200", "h200")
    assert pair.details["prefill_time_s"] == on_b200.details["prefill_time_s"]
    assert pair.tpot_s == on_h200.tpot_s
    slow = min(load_hardware("b200").scale_out_bytes_per_s, load_hardware("h200").scale_out_bytes_per_s)
    assert pair.details["link_bytes_per_s"] == slow * 8
    hour = {c: load_hardware(c).usd_per_chip_hour for c in ("b200", "h200")}
    usd_per_s = pair.usd_per_request * pair.requests_per_s  # both pools' chips, each at its own chip's price
    assert usd_per_s == pytest.approx((8 * hour["b200"] + 8 * hour["h200"]) / 3600, rel=1e-12)
    cheapest_pools = (8 * min(hour.values()) + 8 * min(hour.values())) / 3600
    assert usd_per_s >= cheapest_pools * (1 - 1e-12)
