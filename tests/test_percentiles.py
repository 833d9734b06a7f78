"""Latency percentiles and request-length distributions (docs/serving.md §19.10)."""

import math

import numpy as np
import pytest

import costmodel as cm
from costmodel.serving.api import replica_of
from costmodel.serving.lengths import BIN_EDGES, MAX_EXACT_CLASSES, classes_from_pairs, lognormal_classes
from costmodel.serving.percentiles import percentile_keys, weighted_quantiles
from costmodel.serving.simulate import simulate
from costmodel.symbolic import Rules

METRICS = ("ttft", "tpot", "e2e")


def ordered(s) -> bool:
    """P50 <= P90 <= P99 for every metric."""
    return all(s.percentiles[a] <= s.percentiles[b] * (1 + 1e-12)
               for m in METRICS for a, b in zip(percentile_keys(m), percentile_keys(m)[1:]))


# ------------------------------------------------------------------ the quantiles themselves

def test_weighted_quantiles_are_the_inverse_distribution_function():
    v, w = np.array([3.0, 1.0, 2.0]), np.array([0.2, 0.5, 0.3])  # sorted: 1 (0.5), 2 (0.8), 3 (1.0)
    assert list(weighted_quantiles(v, w, [0.5, 0.51, 0.8, 0.81, 0.99])) == [1.0, 2.0, 2.0, 3.0, 3.0]


def test_many_atoms_are_pooled_within_the_stated_resolution():
    rng = np.random.default_rng(0)
    v = rng.lognormal(0.0, 1.0, 400_000)
    w = rng.uniform(0.5, 1.5, v.size)
    big = weighted_quantiles(v, w, (0.5, 0.9, 0.99))  # pooled into logarithmic bins
    order = np.argsort(v)
    cum = np.cumsum(w[order]) / w.sum()
    ref = v[order][np.searchsorted(cum, (0.5, 0.9, 0.99))]
    resolution = math.log(v.max() / v.min()) / 20_000
    assert np.all(np.abs(np.log(big / ref)) <= 2 * resolution)


# ------------------------------------------------------------------ lengths

@pytest.mark.parametrize("cv", [0.25, 1.0, 3.0])
def test_lognormal_classes_keep_the_mean_and_spread(cv):
    rows = lognormal_classes(1000.0, 200.0, cv, cv)
    w = np.array([r[0] for r in rows])
    i = np.array([r[1] for r in rows])
    assert len(rows) == (len(BIN_EDGES) - 1) ** 2 and w.sum() == pytest.approx(1.0)
    assert w @ i == pytest.approx(1000.0, rel=1e-9)  # conditional means: the mean is kept
    spread = math.sqrt(w @ (i - 1000.0) ** 2) / 1000.0
    assert 0.6 * cv < spread <= cv  # bins lose the spread within a bin, never add any


def test_fixed_lengths_are_one_class():
    r = cm.Requests.lognormal(1024, 256)
    assert r.classes == ((1.0, 1024.0, 256.0),)


def test_pairs_keep_each_distinct_pair_or_the_joint_bins():
    pairs = np.array([[100, 10], [100, 10], [2000, 300], [500, 50]])
    assert classes_from_pairs(pairs) == [(0.5, 100.0, 10.0), (0.25, 500.0, 50.0), (0.25, 2000.0, 300.0)]
    rng = np.random.default_rng(1)
    many = np.column_stack([rng.integers(1, 8000, 5000), rng.integers(1, 2000, 5000)]).astype(float)
    rows = classes_from_pairs(many)
    assert len(rows) <= (len(BIN_EDGES) - 1) ** 2 and len(np.unique(many, axis=0)) > MAX_EXACT_CLASSES
    w = np.array([r[0] for r in rows])
    assert w.sum() == pytest.approx(1.0)
    assert w @ np.array([r[1] for r in rows]) == pytest.approx(many[:, 0].mean())
    assert w @ np.array([r[2] for r in rows]) == pytest.approx(many[:, 1].mean())


def test_lengths_file_with_or_without_a_header(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("input_tokens,output_tokens\n100,20\n\n300,60\n")
    b.write_text("100, 20\n300,60\n")
    ra, rb = cm.Requests.from_csv(a), cm.Requests.from_csv(b)
    assert ra.classes == rb.classes == ((0.5, 100.0, 20.0), (0.5, 300.0, 60.0))
    assert (ra.input_tokens, ra.output_tokens) == (200.0, 40.0)


@pytest.mark.parametrize("text, match", [
    ("", "holds no requests"),
    ("input,output\n", "holds no requests"),
    ("a,b\n1,2\n", "line 1: expected two numbers"),
    ("1,2\n3\n", "line 2: expected two numbers"),
    ("1,2\n0,5\n", "line 2: input tokens must be"),
    ("1,2\n5,nan\n", "line 2: output tokens must be"),
    ("1,2\n5,1e12\n", "line 2: output tokens must be"),
])
def test_bad_lengths_files_name_the_line(tmp_path, text, match):
    p = tmp_path / "l.csv"
    p.write_text(text)
    with pytest.raises(cm.ConfigError, match=match):
        cm.Requests.from_csv(p)


def test_a_lengths_file_that_is_not_text_or_not_there(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(cm.ConfigError, match="not UTF-8"):
        cm.Requests.from_csv(p)
    with pytest.raises(cm.ConfigError, match="cannot read"):
        cm.Requests.from_csv(tmp_path / "missing.csv")
    with pytest.raises(cm.ConfigError, match="not a file"):
        cm.Requests.from_csv(tmp_path)


@pytest.mark.parametrize("cv", [-0.1, 11.0, float("nan")])
def test_bad_coefficients_of_variation(cv):
    with pytest.raises(cm.ConfigError, match="cv"):
        cm.Requests.lognormal(1024, 256, cv, 0.0)


# ------------------------------------------------------------------ percentiles of each load

LOADS = [cm.Load.rate(2.0), cm.Load.rate(20.0), cm.Load.concurrency(32), cm.Load.offline(), cm.Load.static(8)]


@pytest.mark.parametrize("load", LOADS, ids=lambda l: f"{l.kind}-{l.value}")
@pytest.mark.parametrize("req", [cm.Requests(1024, 256), cm.Requests.mix([(0.7, 512, 128), (0.3, 2048, 512)]),
                                 cm.Requests(128, 1)], ids=["one", "mix", "one-token"])
def test_percentiles_are_ordered_and_finite(load, req):
    s = cm.serve("llama-3-8b", "h100-sxm", req, load, efficiency=cm.IDEAL)
    assert set(s.percentiles) == {k for m in METRICS for k in percentile_keys(m)}
    assert all(math.isfinite(v) and v >= 0 for v in s.percentiles.values())
    assert ordered(s)
    d = s.to_dict()
    assert all(d[k] == v for k, v in s.percentiles.items())
    if req.output_tokens == 1:
        assert all(s.percentiles[k] == 0 for k in percentile_keys("tpot"))


def test_disaggregated_percentiles_are_ordered():
    dg = cm.Disaggregated(prefill=cm.Pool(cm.Parallel(tp=1)), decode=cm.Pool(cm.Parallel(tp=1)))
    for load in (cm.Load.rate(5.0), cm.Load.concurrency(16), cm.Load.static(4)):
        s = cm.serve("llama-3-8b", "h100-sxm", cm.Requests.lognormal(1024, 256, 0.5, 0.5), load, disagg=dg, efficiency=cm.IDEAL)
        assert ordered(s) and all(math.isfinite(v) for v in s.percentiles.values())


def test_saturated_tails_are_unbounded_and_null_in_json():
    s = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), cm.Load.rate(1e4), efficiency=cm.IDEAL)
    assert s.saturated
    assert all(math.isinf(s.percentiles[k]) for k in percentile_keys("ttft") + percentile_keys("e2e"))
    d = s.to_dict()
    assert d["ttft_p99_s"] is None and d["tpot_p99_s"] is not None


def test_a_static_batch_is_one_figure_for_all():
    s = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), cm.Load.static(8), efficiency=cm.IDEAL)
    for m, mean in (("ttft", s.ttft_s), ("tpot", s.tpot_s), ("e2e", s.e2e_latency_s)):
        assert all(s.percentiles[k] == pytest.approx(mean) for k in percentile_keys(m))


def test_percentile_accessor():
    s = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), cm.Load.rate(5.0), efficiency=cm.IDEAL)
    assert s.percentile("ttft", None) == s.ttft_s and s.percentile("e2e", 99) == s.percentiles["e2e_p99_s"]
    with pytest.raises(cm.ConfigError, match="50, 90, 99"):
        s.percentile("ttft", 95)
    with pytest.raises(cm.ConfigError, match="ttft, tpot, e2e"):
        s.percentile("latency", 99)


def test_the_chain_distribution_has_the_chains_mean():
    """The TTFT atoms of the open-loop chain average to the chain's own Little's-law mean (§19.3)."""
    from costmodel.serving.aggregated import _chain_steps, prompt_units
    from costmodel.serving.percentiles import chain_ttft_atoms
    from costmodel.serving.queueing import bulk_prefill_queue

    req = cm.Requests(4096, 512)
    s = cm.serve("llama-3-70b", "h100-sxm", req, cm.Load.rate(2.0), parallel=cm.Parallel(tp=8), chunk_tokens=2048, efficiency=cm.IDEAL)
    rep = replica_of("llama-3-70b", "h100-sxm", cm.Parallel(tp=8), cm.Precision(), cm.IDEAL, None,
                     Rules(phase="decode"))
    S, A = req.input_tokens + req.output_tokens / 2, req.input_tokens / 2
    step_s, mix = _chain_steps(rep, req, S, A, 2048.0, s.decode_batch)
    chain = bulk_prefill_queue(step_s, 2.0, mix, states=True)
    ((v, w),) = chain_ttft_atoms(step_s, 2.0, mix, chain["states"], [u for _, u in prompt_units(req, 2048.0)[1]])
    assert float(v @ w) == pytest.approx(chain["ttft_s"], rel=0.01)
    assert s.ttft_s == pytest.approx(chain["ttft_s"], rel=0.01)


@pytest.mark.parametrize("rate", [5.0, 20.0])
def test_a_wider_length_distribution_never_lowers_p99_ttft(rate):
    tails = [cm.serve("llama-3-8b", "h100-sxm", cm.Requests.lognormal(1024, 256, cv, cv),
                      cm.Load.rate(rate), efficiency=cm.IDEAL).percentiles["ttft_p99_s"] for cv in (0.0, 0.5, 1.0, 2.0)]
    assert all(a <= b for a, b in zip(tails, tails[1:])), tails


# ------------------------------------------------------------------ against the simulation

SIMULATED = [  # model, parallel, requests, chunk budget, utilisation
    ("llama-3-8b", cm.Parallel(tp=1), cm.Requests(1024, 256), 8192, 0.3),
    ("llama-3-70b", cm.Parallel(tp=8), cm.Requests(4096, 512), 2048, 0.5),
    ("llama-3-8b", cm.Parallel(tp=1), cm.Requests(2000, 300), 512, 0.5),
]


@pytest.mark.parametrize("model, par, req, chunk, u", SIMULATED, ids=["8b-one-chunk", "70b-two-chunks", "8b-4-chunks"])
def test_tails_against_the_simulation(model, par, req, chunk, u):
    """P90 within 10% and P99 within 15% of the discrete-event simulation (docs/serving.md §19.10 gives the
    grid and where the closed forms depart)."""
    r_max = cm.serve(model, "h100-sxm", req, cm.Load.rate(1e-3), parallel=par, chunk_tokens=chunk, efficiency=cm.IDEAL).max_rate_per_s
    s = cm.serve(model, "h100-sxm", req, cm.Load.rate(u * r_max), parallel=par, chunk_tokens=chunk, efficiency=cm.IDEAL)
    rep = replica_of(model, "h100-sxm", par, cm.Precision(), cm.IDEAL, None, Rules())
    S, A = req.input_tokens + req.output_tokens / 2, req.input_tokens / 2
    sim = simulate(rep.step_function(S, A), req, u * r_max, chunk_tokens=chunk, max_batch=s.details["max_batch"],
                   n_requests=8000, seed=1)
    for m in METRICS:
        for q, tol in ((90, 0.10), (99, 0.15)):
            k = f"{m}_p{q}_s"
            assert s.percentiles[k] == pytest.approx(sim.percentiles[k], rel=tol), k


# ------------------------------------------------------------------ the optimiser's percentile targets

def test_percentile_targets_hold_and_both_methods_agree():
    kw = dict(rate_per_s=20.0, ttft_s=0.2, tpot_s=0.03, max_chips=8, ttft_percentile=99, tpot_percentile=90)
    req = cm.Requests(1024, 256)
    g = cm.optimize_serving("llama-3-8b", "h100-sxm", req, **kw)
    e = cm.optimize_serving("llama-3-8b", "h100-sxm", req, method="exhaustive", **kw)
    assert g.feasible and e.feasible and g.chips == e.chips
    assert g.serving["ttft_p99_s"] <= 0.2 * (1 + 1e-9) and g.serving["tpot_p90_s"] <= 0.03 * (1 + 1e-9)
    mean = cm.optimize_serving("llama-3-8b", "h100-sxm", req, rate_per_s=20.0, ttft_s=0.2, tpot_s=0.03, max_chips=8, efficiency=cm.IDEAL)
    assert mean.chips <= g.chips  # a tail target is never cheaper than the same target on the mean
    assert "TTFT P99" in g.message


@pytest.mark.parametrize("q", [95, 0, True, "99"])
def test_bad_percentile_targets(q):
    with pytest.raises(cm.ConfigError, match="50, 90, 99"):
        cm.optimize_serving("llama-3-8b", "h100-sxm", rate_per_s=1.0, ttft_s=0.5, ttft_percentile=q, efficiency=cm.IDEAL)
