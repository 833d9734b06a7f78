"""Collective cost formulas (docs/theory.md §5.5, §14) against hand computations, and their invariants."""

import math

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.symbolic import sym
from costmodel.symbolic.collectives import (all_gather_s, all_reduce_s, all_to_all_s, point_to_point_s,
                                            reduce_scatter_s, span)

ALPHA, STEP = 6.8e-6, 0.6e-6  # NCCL LL base and per-step latency (docs/theory.md §5.5, [Ep])
H100 = {"scale_up_bytes_per_s": 450e9, "scale_out_bytes_per_s": 50e9, "scale_up_domain_chips": 8,
        "comm_efficiency": 1.0, "collective_latency_s": ALPHA, "collective_step_latency_s": STEP, "is_torus": 0}
# TPU v4: 9e10 B/s bidirectional per axis, ~1 us per hop, no fixed term (docs/theory.md §2, §14, [S])
TPU = {"scale_up_bytes_per_s": 9e10, "scale_out_bytes_per_s": 6.25e9, "scale_up_domain_chips": 4096,
       "comm_efficiency": 1.0, "collective_latency_s": 0.0, "collective_step_latency_s": 1e-6, "is_torus": 1}


def value(expr, fabric):
    return float(sp.sympify(expr).subs({sym(k): v for k, v in fabric.items()}))


def switch(n):
    return span((sp.Integer(n),))


V = 1e6  # bytes


def test_switch_all_reduce_matches_nccl_latency_and_ring_bandwidth():
    # docs/theory.md §5.5: alpha_AR ≈ 2·(n-1)·0.6 µs + 6.8 µs ≈ 15 µs at n = 8; bandwidth 2·(n-1)/n·V/W (§14)
    t = value(all_reduce_s(V, switch(8)), H100)
    assert t == pytest.approx(6.8e-6 + 2 * 7 * 0.6e-6 + 2 * 7 / 8 * V / 450e9, rel=1e-12)
    assert value(all_reduce_s(0, switch(8)), H100) == pytest.approx(15.2e-6, rel=1e-12)


def test_switch_all_gather_reduce_scatter_all_to_all_point_to_point():
    # docs/theory.md §14: AG = RS = V·(N-1)/(N·W); AllToAll = V·(N-1)/(N²·W); one send = V/W
    ag = 6.8e-6 + 7 * 0.6e-6 + V * 7 / (8 * 450e9)
    assert value(all_gather_s(V, switch(8)), H100) == pytest.approx(ag, rel=1e-12)
    assert value(reduce_scatter_s(V, switch(8)), H100) == pytest.approx(ag, rel=1e-12)
    a2a = 6.8e-6 + 7 * 0.6e-6 + V * 7 / (64 * 450e9)
    assert value(all_to_all_s(V, switch(8)), H100) == pytest.approx(a2a, rel=1e-12)
    assert value(point_to_point_s(V, 450e9), H100) == pytest.approx(6.8e-6 + 0.6e-6 + V / 450e9, rel=1e-12)


def test_switch_beyond_the_node_pays_scale_out_bandwidth():
    # docs/theory.md §2, §14: across H100 nodes ~50 GB/s per GPU instead of 450 GB/s
    t = value(all_gather_s(V, switch(16)), H100)
    assert t == pytest.approx(6.8e-6 + 15 * 0.6e-6 + V * 15 / (16 * 50e9), rel=1e-12)


def test_torus_one_axis_hops_and_bandwidth():
    # docs/theory.md §14: AllGather over one axis = V/W_ici (here with the exact (X-1)/X);
    # latency α·X/2 with α ≈ 1 µs per hop: 8 hops on an axis of 16
    t = value(all_gather_s(V, span((sp.Integer(16),))), TPU)
    assert t == pytest.approx(8e-6 + 15 / 16 * V / 9e10, rel=1e-12)
    # a ring of 2 chips is one hop
    assert value(all_gather_s(0, span((sp.Integer(2),))), TPU) == pytest.approx(1e-6, rel=1e-12)


def test_torus_three_axes_use_three_links():
    # docs/theory.md §14: over n_axes axes V/(W_ici·n_axes); 3 x 9e10 = 270 GB/s, Pope et al.'s per-chip figure
    s = span((sp.Integer(4),) * 3)
    t = value(all_gather_s(V, s), TPU)
    assert t == pytest.approx(6 * 1e-6 + 63 / 64 * V / 2.7e11, rel=1e-12)
    t_ar = value(all_reduce_s(V, s), TPU)
    assert t_ar == pytest.approx(12e-6 + 2 * 63 / 64 * V / 2.7e11, rel=1e-12)


def test_torus_all_to_all_is_a_quarter_of_all_gather():
    # docs/theory.md §14 ([S]): AllToAll on a bidirectional ring = AllGather/4 (bandwidth terms)
    s = span((sp.Integer(8),))
    ag = value(all_gather_s(V, s), TPU) - 4e-6
    a2a = value(all_to_all_s(V, s), TPU) - 4e-6
    assert a2a == pytest.approx(ag / 4, rel=1e-12)


@pytest.mark.parametrize("fabric", [H100, TPU], ids=["switch", "torus"])
@pytest.mark.parametrize("fn", [all_gather_s, reduce_scatter_s, all_reduce_s, all_to_all_s])
def test_a_group_of_one_chip_costs_nothing(fabric, fn):
    assert value(fn(V, span((sp.Integer(1),))), fabric) == 0


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    fn=st.sampled_from([all_gather_s, reduce_scatter_s, all_reduce_s, all_to_all_s]),
    axes=st.lists(st.integers(1, 16), min_size=1, max_size=3),
    nbytes=st.floats(0, 1e10), scale=st.floats(1.0, 100.0), torus=st.sampled_from([0, 1]),
)
def test_never_negative_and_monotone_in_message_size(fn, axes, nbytes, scale, torus):
    fabric = TPU if torus else H100
    s = span(tuple(sp.Integer(a) for a in axes))
    small, large = value(fn(nbytes, s), fabric), value(fn(nbytes * scale, s), fabric)
    assert small >= 0 and math.isfinite(large)
    assert large >= small * (1 - 1e-12)
