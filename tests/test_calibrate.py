"""Calibration: measurement mapping, the roofline bound, load model, fit, profiles and CV."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import costmodel as cm
from costmodel.serving import load_to_batch as loadmodel
from costmodel.calibrate import CaseSet, load_cases, load_profile, load_records, resolve
from costmodel.calibrate.fit import DEFAULT_PARAMS, FIXED, Param, calibrate_cases, fit, values_for
from costmodel.calibrate.records import METRICS
from costmodel.errors import UnknownNameError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements.json"
PACKAGED = Path(cm.__file__).parent / "calibrate" / "data" / "measurements.json"


@pytest.fixture(scope="module")
def cases():
    return CaseSet(load_cases())


@pytest.fixture(scope="module")
def ideal(cases):
    return np.asarray(jax.jit(cases.predict)(cases.ideal_values()))


@pytest.mark.skipif(not SHARED.is_file(), reason="no shared measurement file next to the checkout")
def test_packaged_measurements_equal_the_shared_copy():
    assert json.loads(PACKAGED.read_text()) == json.loads(SHARED.read_text())


def test_every_record_maps_to_a_configuration(cases):
    records = load_records()
    assert [c.id for c in cases.cases] == [r["id"] for r in records]
    for c, r in zip(cases.cases, records):
        assert c.metric in METRICS and c.measured == r["value"] > 0
        assert c.load in ("fixed", "max", "rate", "static") and (c.load not in ("fixed", "static") or c.batch)
        assert c.parallel.chips_per_replica * c.parallel.replicas == r["chips"]
        assert c.precision.weights == r["weights_dtype"].split()[0]
        assert c.precision.kv == (r["kv_dtype"].split()[0] if r["kv_dtype"] else None)
        assert c.prompt > 0 and c.output > 0 and c.context >= c.prompt
        assert c.assumptions, f"{c.id}: say what the mapping assumed"
    # MLPerf: 4 replicas of TP2 capped at batch 896 (submission config); Pope: 64 padded heads
    mlp = next(c for c in cases.cases if c.id == "MLP-01")
    assert (mlp.parallel.tp, mlp.parallel.replicas, mlp.batch, mlp.load) == (2, 4, 896, "max")
    assert all(c.model == "palm-540b-padded64" for c in cases.cases if c.source == "pope-2022")


def test_a_stated_mean_prompt_replaces_the_mlperf_assumption():
    """MLPerf does not state its mean prompt (an assumption, docs/calibration.md); a record that
    states one is taken at its word, and the case says which it is."""
    from costmodel.calibrate.records import MLPERF_PROMPT_TOKENS, case_from_record

    record = next(r for r in load_records() if r["id"] == "MLP-01")
    assumed, stated = case_from_record(record), case_from_record(record | {"prompt_tokens": 300})
    assert assumed.prompt == MLPERF_PROMPT_TOKENS and "not stated" in " ".join(assumed.assumptions)
    assert stated.prompt == 300 and "mean prompt 300 tokens (record)" in stated.assumptions
    assert stated.context == 300 + stated.output / 2


def test_ideal_roofline_is_a_bound_on_every_measurement(cases, ideal):
    """The ideal model never predicts a time above, or a rate below, a measurement (docs/theory.md §5.4)."""
    for c, p in zip(cases.cases, ideal):
        if c.is_time:
            assert p <= c.measured, f"{c.id}: ideal {p:.4g} s above measured {c.measured:.4g} s"
        else:
            assert p >= c.measured, f"{c.id}: ideal {p:.4g}/s below measured {c.measured:.4g}/s"


def _profile_params():
    prof = load_profile("calibrated")
    params = tuple(Param(p["field"], p["family"], p["phase"], p["lower"], p["upper"], p["typical"], p["meaning"])
                   for p in prof.parameters)
    return prof, params, np.array([p["value"] for p in prof.parameters])


def test_calibrated_profile_is_inside_bounds_and_better_than_ideal(cases, ideal):
    prof, params, x = _profile_params()
    assert len(prof.parameters) <= 14  # general physical parameters, far fewer than the 35 records
    for p in prof.parameters:
        assert p["lower"] <= p["value"] <= p["upper"], p
    pred = np.asarray(jax.jit(lambda v: cases.predict(v))(values_for(cases, params, x)))
    ape = np.abs(pred / cases.measured - 1)
    assert np.median(ape) < np.median(np.abs(ideal / cases.measured - 1))
    assert np.median(ape) == pytest.approx(prof.fit["in_sample"]["median_ape"], rel=1e-6)
    assert prof.fit["records"] == [c.id for c in cases.cases]
    # the public path (cm.predict with the profile) gives the same numbers as the fit's evaluator
    for cid in ("POPE-08", "GF-08"):
        i = [c.id for c in cases.cases].index(cid)
        c, b = cases.cases[i], cases.batches(values_for(cases, params, x))[i]
        p = cm.predict(c.model, c.hardware, cm.Workload(batch=float(b), context=c.context), parallel=c.parallel,
                       precision=c.precision, efficiency="calibrated", rules=cm.Rules("decode", **dict(c.rules)))
        step = p.step_time_s if c.metric == "step_s" else None
        if step is not None:
            assert step == pytest.approx(pred[i], rel=1e-5)


#: Records checked against cm.serve, one of each serving kind: static tokens/s, e2e latency, TTFT,
#: offline continuous batching (engine memory rule), per-chip static rate, prefill pool.
SERVE_CHECKS = ("GAUDI-02", "VLLMCI-01", "TRTV05-01", "TRT-01", "TRTV05-05", "SGL-02")


@pytest.mark.parametrize("rid", SERVE_CHECKS)
def test_evaluator_equals_the_serving_model(cases, rid):
    """The vectorised evaluator computes each whole-request record as cm.serve does, under the calibrated profile."""
    from costmodel.engines import with_engine

    _, params, x = _profile_params()
    pred = np.asarray(jax.jit(lambda v: cases.predict(v))(values_for(cases, params, x)))
    i = [c.id for c in cases.cases].index(rid)
    c = cases.cases[i]
    kw = dict(precision=c.precision, efficiency=with_engine("calibrated", c.engine), rules=cm.Rules(**dict(c.rules)))
    req = cm.Requests(c.prompt, c.output)
    if c.metric == "prefill_tokens_per_s":
        pool = cm.Pool(c.parallel, batch=c.batch)
        s = cm.serve(c.model, c.hardware, cm.Requests(c.prompt, 1), cm.Load.offline(),
                     disagg=cm.Disaggregated(pool, cm.Pool(c.parallel)), **kw)
        got = s.details["prefill_capacity_per_s"] * c.prompt * c.scale
    else:
        load = cm.Load.static(c.batch) if c.load == "static" else cm.Load.offline(max_batch=c.batch)
        s = cm.serve(c.model, c.hardware, req, load, parallel=c.parallel, **kw)
        got = {"ttft_s": s.ttft_s, "e2e_s": s.e2e_latency_s}.get(c.metric, s.output_tokens_per_s * c.scale)
    assert pred[i] == pytest.approx(got, rel=2e-3)


def test_max_batch_matches_theory_worked_example():
    """LLaMA-3 70B, 8xH100 bf16, 8k context: 203 sequences fit in 80 GiB per chip (docs/theory.md §15.5
    counts 80e9 bytes and gets 186). By hand: (85,899,345,920 B of 80 GiB - 17,638,426,624 B of weights)
    / (335,544,320 B KV + 96,896 B activations) per sequence = 203.37."""
    sc = cm.scenario("llama-3-70b", "h100-sxm", cm.Workload(context=8192), cm.Parallel(tp=8), efficiency=cm.IDEAL)
    from costmodel.compile import compiled

    decode = compiled(sc.model.structure, cm.Rules("decode")).raw
    b = float(loadmodel.max_batch(decode, sc.inputs()))
    assert b == pytest.approx(203.37, abs=0.01)


def test_little_law_fixed_point_is_the_closed_form():
    """With a step affine in the batch, B = λ(t_pf + T·(a + b·B)) solves to λ(t_pf + T·a)/(1 − λ·T·b)."""
    lam, t_pf, out, a, b = 2.0, 0.05, 256.0, 0.01, 1e-4
    got = loadmodel.little_batch(lambda B: a + b * B, lam, jnp.asarray(t_pf), out, iterations=60)
    assert float(got) == pytest.approx(lam * (t_pf + out * a) / (1 - lam * out * b), rel=1e-9)
    assert float(loadmodel.offline_rate(2.0, 0.01, 100.0, 100.0, 4)) == pytest.approx(4 * 100 * 100 / 3.0)


def test_resolve_profiles():
    hw = cm.load_hardware("h100-sxm")
    assert resolve("ideal", hw).efficiency == cm.IDEAL
    c = resolve("calibrated", hw, "decode")
    prof = load_profile("calibrated")
    assert c.efficiency.hbm_efficiency == prof.lookup("hbm_efficiency", "nvidia-gpu", "decode")
    assert c.efficiency.memory_fraction == FIXED["memory_fraction"] == 0.9  # vLLM's default rule
    assert c.hardware(hw).collective_latency_s == c.collective_latency_s
    tpu = resolve("calibrated", "tpu-v4", "prefill").efficiency
    assert tpu.flops_efficiency == prof.lookup("flops_efficiency", "tpu", "prefill")
    amd = resolve("calibrated", "mi300x").efficiency  # no AMD data: the GPU values
    assert amd.flops_efficiency == prof.lookup("flops_efficiency", "nvidia-gpu", "decode")
    with pytest.raises(UnknownNameError, match="did you mean 'calibrated'"):
        resolve("calibratd", hw)


def test_an_efficiency_taken_from_a_prediction_predicts_the_same():
    """The calibrated collective latency travels with the Efficiency, not only with the profile name."""
    w, par = cm.Workload(batch=1, context=8192), cm.Parallel(tp=8)
    p = cm.predict("llama-3-70b", "h100-sxm", w, parallel=par, efficiency="calibrated")
    again = cm.predict("llama-3-70b", "h100-sxm", w, parallel=par, efficiency=p.scenario.efficiency)
    fitted = resolve("calibrated", "h100-sxm", "decode").collective_latency_s
    assert fitted != cm.load_hardware("h100-sxm").collective_latency_s
    assert again.scenario.hardware.collective_latency_s == p.scenario.hardware.collective_latency_s == fitted
    assert again.values == p.values


def test_predict_takes_a_profile():
    w = cm.Workload(batch=16, context=4096)
    p_ideal = cm.predict("llama-3-8b", "h100-sxm", w, efficiency=cm.IDEAL)
    p_cal = cm.predict("llama-3-8b", "h100-sxm", w, efficiency="calibrated")
    assert p_cal.step_time_s > p_ideal.step_time_s
    assert p_cal.to_dict()["efficiency"] == "calibrated"
    assert cm.predict("llama-3-8b", "h100-sxm", w, efficiency="ideal").step_time_s == p_ideal.step_time_s


#: The parameters the synthetic test fits (by name), and their true values.
_SYNTH = {"hbm_efficiency[*,*]": 0.7, "flops_efficiency[nvidia-gpu,decode]": 0.45,
          "kernel_overhead_s[*,*]": 6e-6, "collective_latency_s[nvidia-gpu,*]": 12e-6}


@pytest.fixture(scope="module")
def synthetic():
    """GPU cases whose 'measurements' are the model's own predictions at known parameters."""
    cs = CaseSet([c for c in load_cases() if c.source in ("gpt-fast", "tensorrt-llm") and c.model != "mixtral-8x7b"])
    params = tuple(p for p in DEFAULT_PARAMS if p.name in _SYNTH)
    truth = np.array([_SYNTH[p.name] for p in params])
    cs.measured = np.asarray(jax.jit(cs.predict)(values_for(cs, params, truth)))
    return cs, params, truth


def test_fit_recovers_known_parameters_and_cross_validates(synthetic):
    cs, params, truth = synthetic
    groups = [c.id[:2] for c in cs.cases]  # GF / TR: leave-one-group-out on synthetic data
    cal = calibrate_cases(cs, params, iterations=1500, learning_rate=0.05, prior_weight=0.0, groups=groups)
    np.testing.assert_allclose(cal.fit.values[:2], truth[:2], rtol=0.02)
    np.testing.assert_allclose(cal.fit.values[2:], truth[2:], rtol=0.15)
    assert np.median(np.abs(cal.fit.predicted / cs.measured - 1)) < 0.01
    assert np.median(np.abs(cal.cv_predicted / cs.measured - 1)) < 0.05
    for p, x in zip(params, cal.fit.values):
        assert p.lo <= x <= p.hi
    # deterministic: the same fit again gives the same numbers
    again = calibrate_cases(cs, params, iterations=1500, learning_rate=0.05, prior_weight=0.0, groups=groups)
    np.testing.assert_array_equal(again.fit.values, cal.fit.values)
    np.testing.assert_array_equal(again.cv_predicted, cal.cv_predicted)


def test_parameters_stay_in_bounds_when_data_pull_outside(synthetic):
    """Data that want more than peak bandwidth get the bound, not an unphysical value."""
    cs, params, _ = synthetic
    fast = CaseSet(cs.cases)
    fast.measured = cs.measured * np.where([c.is_time for c in cs.cases], 0.3, 3.0)  # 3x faster than truth
    r = fit(fast, params, iterations=200, prior_weight=0.0)
    for p, x in zip(params, r.values):
        assert p.lo <= x <= p.hi
    assert r.values[0] > 0.99  # HBM efficiency pinned at its upper bound 1


def test_packaged_profile_is_the_fit_of_the_packaged_measurements(request):
    """The full refit (35 records, every leave-one-source-out fold) reproduces the packaged profile and its
    figures; about 1-2 minutes, so behind ``--fuzz-long``."""
    if not request.config.getoption("--fuzz-long"):
        pytest.skip("the full refit takes minutes: run with --fuzz-long")
    from costmodel.calibrate import calibrate
    from costmodel.calibrate.run import profile_dict

    cal, cs = calibrate()
    d, prof = profile_dict(cal, cs), load_profile("calibrated")
    np.testing.assert_allclose([p["value"] for p in d["parameters"]], [p["value"] for p in prof.parameters],
                               rtol=0.02)  # packaged: float32; the tests run in float64
    for k in ("in_sample", "leave_one_source_out"):
        assert d["fit"][k]["median_ape"] == pytest.approx(prof.fit[k]["median_ape"], rel=0.02)
    assert prof.fit["in_sample"]["median_ape"] <= 0.07 + 5e-4 and prof.fit["leave_one_source_out"]["median_ape"] <= 0.10
