"""Serving closed forms of costmodel.derive against the compiled JAX model: the static-batch latency
equals the brute-force sum of compiled step times, the aggregated step equals the compiled decode and
prefill terms combined, and the speculative break-even batch is where the compiled costs per token cross."""

import functools

import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel import derive
from costmodel.compile import compiled
from costmodel.derive._base import to_latex
from costmodel.derive.serving import _same_at_a_point
from costmodel.errors import ConfigError
from costmodel.symbolic import Rules

LLAMA, H100 = "llama-3-70b", "h100-sxm"
REL = 1e-9  # same expressions, float64 round-off only
ALL = dict(expert_fetch="all")  # the speculative break-even fetches every routed expert


@functools.cache
def d(name, model=LLAMA):
    return getattr(derive, name)(model)


def run(model, hw, tp, rules, efficiency=cm.IDEAL, **x):
    """Every output of the compiled model (arrays broadcast) at inputs overridden by ``x``."""
    sc = cm.scenario(model, hw, cm.Workload(batch=1, context=1, prompt=1), cm.Parallel(tp=tp), efficiency=efficiency)
    inp = sc.inputs() | {k: np.asarray(v, dtype=float) for k, v in x.items()}
    return {k: np.asarray(v, dtype=float) for k, v in compiled(sc.model.structure, rules)(inp).items()}


def brute_force_static(model, hw, tp, batch, prompt, out_tokens, **over):
    pre = run(model, hw, tp, Rules(phase="prefill"), batch=batch, prompt=prompt, **over)["step_time_s"]
    ctx = prompt + np.arange(1, out_tokens)  # decode step t reads I + t tokens, t = 1 .. O-1
    dec = run(model, hw, tp, Rules(), batch=np.full(ctx.shape, float(batch)), context=ctx, **over)
    return float(pre) + float(np.sum(dec["step_time_s"]))


@pytest.mark.parametrize("model, tp, batch, prompt, out_tokens, over", [
    (LLAMA, 8, 64, 1024, 1024, {}),                       # memory-bound throughout
    (LLAMA, 8, 2000, 32, 3000, {}),                       # compute-bound early, memory-bound later (beta < 0)
    (LLAMA, 8, 2000, 32, 300, {"hbm_bytes_per_s": 3.35e14}),  # compute slope wins (beta > 0)
    (LLAMA, 8, 8, 32, 1, {}),                             # prefill only
    ("mixtral-8x7b", 2, 8, 32, 128, {}),                  # the VLLMCI-03 shape
])
def test_static_batch_latency_is_sum_of_compiled_steps(model, tp, batch, prompt, out_tokens, over):
    want = brute_force_static(model, H100, tp, batch, prompt, out_tokens, **over)
    got = d("static_batch_latency", model).value(model, H100, tp=tp, batch=batch, prompt=prompt,
                                                 output_tokens=out_tokens, **over)
    assert got == pytest.approx(want, rel=REL)


def test_static_batch_latency_hand_arithmetic():
    # memory-bound, no overhead: (O-1) (b_w P_w + B kappa (I + O/2)) / (n W) plus the prefill
    x = cm.scenario(LLAMA, H100, cm.Workload(), cm.Parallel(tp=8)).inputs()
    kappa = 2 * 80 * 8 * 128 * 2                               # bytes per token: 2 L N_kv H b_kv
    pw = d("static_batch_latency").evaluate_definition(sp.Symbol("params_fetched", positive=True), x)
    dec = 1023 * (2 * pw + 64 * kappa * (1024 + 512)) / (8 * 3.35e12)
    pre = run(LLAMA, H100, 8, Rules(phase="prefill"), batch=64, prompt=1024)["step_time_s"]
    got = d("static_batch_latency").value(LLAMA, H100, tp=8, batch=64, prompt=1024, output_tokens=1024)
    comm = run(LLAMA, H100, 8, Rules(), batch=64, context=1024)["communication_s"]
    assert got == pytest.approx(float(pre) + dec + 1023 * float(comm), rel=1e-9)


def test_static_batch_latency_rejects_zero_outputs():
    with pytest.raises(ConfigError, match="output_tokens"):
        d("static_batch_latency").value(LLAMA, H100, tp=8, batch=8, prompt=32, output_tokens=0)


def mixed_step(batch, context, prompt, out_tokens, chunk_cap, *, model=LLAMA, tp=8):
    """The compiled decode and prefill terms combined as one mixed step (numbers, not symbols)."""
    c = min(batch * prompt / out_tokens, chunk_cap)
    dec = run(model, H100, tp, Rules(), batch=batch, context=context)
    pre = run(model, H100, tp, Rules(phase="prefill"), batch=c / prompt, prompt=prompt)
    comm = run(model, H100, tp, Rules(), batch=batch + c, context=context)["communication_s"]
    roof = max(dec["compute_s"] + pre["compute_s"], dec["weights_s"] + dec["kv_s"] + pre["kv_s"])
    return float(roof + comm + dec["overhead_s"]), float(dec["step_time_s"])


@pytest.mark.parametrize("batch, context, chunk_cap", [(442, 1536, 8192), (16, 1536, 8192), (442, 1536, 128)])
def test_aggregated_step_is_compiled_mixed_step(batch, context, chunk_cap):
    want, decode_only = mixed_step(batch, context, 1024, 1024, chunk_cap)
    kw = dict(tp=8, batch=batch, context=context, prompt=1024, output_tokens=1024, chunk_tokens=chunk_cap)
    got = d("aggregated_step").value(LLAMA, H100, **kw)
    assert got == pytest.approx(want, rel=REL)
    assert got > decode_only                                   # prefill work is never free
    share = d("prefill_share").value(LLAMA, H100, **kw)
    assert share == pytest.approx(1 - decode_only / want, rel=REL)
    assert 0 < share < 1


def test_aggregated_step_adds_the_prefill_share_at_442():
    # the ISL = OSL = 1024 scenario: decode alone is memory-bound at 1,536 tokens (past the context wall);
    # the 442 prompt tokens per step add 442 x 2 P_mm FLOPs and make the mixed step compute-bound
    kw = dict(tp=8, batch=442, context=1536, prompt=1024, output_tokens=1024, chunk_tokens=8192)
    agg = d("aggregated_step").value(LLAMA, H100, **kw)
    dec = run(LLAMA, H100, 8, Rules(), batch=442, context=1536)
    assert dec["compute_s"] < dec["weights_s"] + dec["kv_s"]  # decode-only is memory-bound
    # hand arithmetic of the compute side: (B + c) 2 P_mm + A_att (B S + c I/2) over n C
    pmm = d("aggregated_step").evaluate_definition(sp.Symbol("params_matmul", positive=True),
                                                  cm.scenario(LLAMA, H100, cm.Workload(), cm.Parallel(tp=8)).inputs())
    a_att = 4 * 64 * 128 * 80
    comp = ((442 + 442) * 2 * pmm + a_att * (442 * 1536 + 442 * 512)) / (8 * 989.4e12)  # H100 SXM dense bf16 989.4 TFLOP/s (h100-sxm.toml)
    mem = dec["weights_s"] + dec["kv_s"] + 442 * 327680 / (8 * 3.35e12)  # + the chunk's KV writes
    assert comp > mem
    assert agg == pytest.approx(max(comp, mem)
                                + float(run(LLAMA, H100, 8, Rules(), batch=884, context=1536)["communication_s"]),
                                rel=1e-9)


def spec_costs(batch, gamma, acc, t_draft, context=1024, efficiency=cm.IDEAL):
    """Replica seconds per token, plain and speculative, from the compiled decode terms."""
    out = run(LLAMA, H100, 8, Rules(**ALL), efficiency, batch=batch, context=context)
    wide = run(LLAMA, H100, 8, Rules(**ALL), efficiency, batch=batch * (gamma + 1), context=context)
    mem = out["weights_s"] + out["kv_s"]
    tokens = sum(acc**i for i in range(gamma + 1))
    plain = max(out["compute_s"], mem) + out["communication_s"] + out["overhead_s"]
    spec = max(wide["compute_s"], mem) + wide["communication_s"] + out["overhead_s"] + gamma * t_draft
    return float(plain / batch), float(spec / (batch * tokens))


def bisect(f, lo, hi, iters=200):
    flo = f(lo)
    assert flo * f(hi) < 0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if (f(mid) < 0) == (flo < 0) else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("gamma, acc, t_draft, eff", [(4, 0.7, 5e-4, "ideal"), (2, 0.8, 0.0, "ideal"),
                                                      (6, 0.9, 1e-3, "ideal"), (4, 0.7, 5e-4, "calibrated")])
def test_speculative_break_even_is_where_compiled_costs_cross(gamma, acc, t_draft, eff):
    costs = lambda b: spec_costs(b, gamma, acc, t_draft, efficiency=eff)  # noqa: E731
    root = bisect(lambda b: costs(b)[1] - costs(b)[0], 1.0, 1e4)
    got = d("speculative_break_even").value(LLAMA, H100, tp=8, context=1024, draft_tokens=gamma,
                                            acceptance=acc, draft_step_s=t_draft, efficiency=eff)
    assert got == pytest.approx(root, rel=1e-9)
    plain, spec = costs(1.0)
    assert spec < plain                                          # speculation wins at batch 1
    plain, spec = costs(2 * got)
    assert spec > plain                                          # and costs more past the break-even


def test_speculative_break_even_undefined_without_acceptance():
    # acceptance 0: one token per step, never cheaper than plain decoding, so no break-even exists
    for b in (1.0, 64.0, 1024.0):
        plain, spec = spec_costs(b, 4, 0.0, 5e-4)
        assert spec > plain
    with pytest.raises(ConfigError, match="speculative_break_even is defined only where"):
        d("speculative_break_even").value(LLAMA, H100, tp=8, context=1024, draft_tokens=4, acceptance=0.0,
                                          draft_step_s=5e-4)
    with pytest.raises(ConfigError):
        d("speculative_break_even").value(LLAMA, H100, tp=8, context=1024, draft_tokens=4, acceptance=1.0,
                                          draft_step_s=5e-4)


@pytest.mark.parametrize("name", ["static_batch_latency", "aggregated_step", "prefill_share",
                                  "speculative_break_even"])
def test_latex_and_compact_form(name):
    dv = d(name)
    assert dv.latex.split(" = ")[0] == to_latex(dv.lhs) and len(dv.latex) > 30
    assert all(s.latex for s in dv.steps)
    # the displayed form, its named quantities expanded, is the expression evaluated (at a generic point)
    assert _same_at_a_point(dv.compact.xreplace(dv.definitions).xreplace(dv.definitions), dv.expr)
