"""Measured kernel latencies at a given shape: the tables themselves, interpolated, as a check on the model.

The operator step prices each kernel by a fitted closed form (docs/theory.md §20); this module
answers the same question from the measurements alone, to compose a step from the tables' own
latencies (``experiments/kernel_composition.py``). Each lookup keeps the discrete part of the shape
exact (the dtype, the local heads and head size, the MoE model shape, the GPUs of an all-reduce)
and interpolates the continuous part (tokens, batch, context, message size) linearly in
log-latency over log-size between the measured points that bracket it; outside the measured range
it raises rather than extrapolate, except that a decode batch larger than any measured at its
context runs as equal parts (:func:`_split_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ConfigError

__all__ = ["Lookup", "interpolate_log"]


def interpolate_log(x: np.ndarray, y: np.ndarray, at: float, what: str) -> float:
    """``y`` at ``at``, linear in ``log y`` over ``log x`` between the bracketing points of ``x``."""
    order = np.argsort(x)
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    x, keep = np.unique(x, return_index=True)
    y = y[keep]
    if not len(x) or at < x[0] * (1 - 1e-9) or at > x[-1] * (1 + 1e-9):
        span = f"[{x[0]:g}, {x[-1]:g}]" if len(x) else "none"
        raise ConfigError(f"{what}: {at:g} is outside the measured range {span}")
    return float(np.exp(np.interp(np.log(at), np.log(x), np.log(y))))


def _bilinear(t: Mapping[str, np.ndarray], mask: np.ndarray, a: str, b: str, va: float, vb: float, what: str) -> float:
    """Interpolate over two measured axes: along ``b`` at each measured ``a``, then along ``a``."""
    xs = np.unique(t[a][mask])
    lo, hi = xs[xs <= va * (1 + 1e-9)], xs[xs >= va * (1 - 1e-9)]
    if not len(lo) or not len(hi):
        raise ConfigError(f"{what}: {a} {va:g} is outside the measured range [{xs[0]:g}, {xs[-1]:g}]")
    pts = sorted({lo[-1], hi[0]})
    vals = [interpolate_log(t[b][mask & (t[a] == p)], t["latency_s"][mask & (t[a] == p)], vb, f"{what} at {a} {p:g}")
            for p in pts]
    return vals[0] if len(pts) == 1 else interpolate_log(np.array(pts), np.array(vals), va, what)


class Lookup:
    """Lookups in one chip's tables (``tables[op_class]`` as :func:`costmodel.kernels.read_table` gives)."""

    def __init__(self, tables: Mapping[str, Mapping[str, np.ndarray]]):
        self.tables = tables

    def _table(self, op_class: str) -> Mapping[str, np.ndarray]:
        if op_class not in self.tables:
            raise ConfigError(f"no {op_class} table loaded; load it with costmodel.kernels.read_table")
        return self.tables[op_class]

    def gemm(self, m: float, n: float, k: float, dtype: str = "bfloat16") -> float:
        """A GEMM of ``m`` tokens through an ``n×k`` weight: at a measured (n, k) site, interpolated in m;
        elsewhere in log n and log k between the four bracketing sites; an ``n`` wider than any measured
        as equal column blocks run one after another."""
        t = self._table("gemm")
        base = t["dtype"] == dtype
        what = f"gemm {dtype} m={m:g} n={n:g} k={k:g}"

        def at_site(nn: float, kk: float) -> float:
            mask = base & (t["n"] == nn) & (t["k"] == kk)
            return interpolate_log(t["m"][mask], t["latency_s"][mask], m, what)

        ns, ks = np.unique(t["n"][base]), np.unique(t["k"][base])
        if n > ns[-1]:  # wider than any measured weight (a vocabulary): equal column blocks, one after another
            parts = int(np.ceil(n / ns[-1]))
            return parts * self.gemm(m, n / parts, k, dtype)
        n_pts = _bracket(ns, n, what + " (n)")
        k_pts = _bracket(ks, k, what + " (k)")
        grid = np.array([[at_site(a, b) for b in k_pts] for a in n_pts])
        along_k = [interpolate_log(np.array(k_pts), row, k, what) if len(k_pts) > 1 else row[0] for row in grid]
        return interpolate_log(np.array(n_pts), np.array(along_k), n, what) if len(n_pts) > 1 else along_k[0]

    def decode_attention(self, batch: float, context: float, heads: float, kv_heads: float, head_dim: float,
                         kv_dtype: str = "bfloat16") -> float:
        """Generation attention at measured local heads and head size (no window), interpolated in batch and context."""
        t = self._table("attention_generation")
        mask = ((t["num_heads"] == heads) & (t["num_kv_heads"] == kv_heads) & (t["head_dim"] == head_dim)
                & (t["kv_dtype"] == kv_dtype) & (t["window"] == 0))
        what = f"generation attention {heads:g}/{kv_heads:g} heads of {head_dim:g}, {kv_dtype} cache"
        if not mask.any():
            raise ConfigError(f"{what}: no such head configuration is measured")
        return _split_batch(t, mask, batch, context, what)

    def mla_decode(self, batch: float, context: float, heads: float, kv_dtype: str = "bfloat16") -> float:
        """Generation MLA at measured local heads, interpolated in batch and context."""
        t = self._table("mla_generation")
        mask = (t["num_heads"] == heads) & (t["kv_dtype"] == kv_dtype)
        what = f"generation MLA {heads:g} heads, {kv_dtype} cache"
        if not mask.any():
            raise ConfigError(f"{what}: not measured")
        return _split_batch(t, mask, batch, context, what)

    def moe(self, tokens: float, hidden: float, inter: float, topk: float, experts: float, moe_tp: float,
            moe_ep: float, dtype: str = "bfloat16", distribution: str = "balanced") -> float:
        """The fused MoE of a measured model shape and split, interpolated in tokens."""
        t = self._table("moe")
        mask = ((t["hidden"] == hidden) & (t["inter"] == inter) & (t["topk"] == topk) & (t["num_experts"] == experts)
                & (t["moe_tp"] == moe_tp) & (t["moe_ep"] == moe_ep) & (t["dtype"] == dtype)
                & (t["distribution"] == distribution))
        what = f"moe {dtype} D={hidden:g} F={inter:g} top-{topk:g} of {experts:g}, tp {moe_tp:g} ep {moe_ep:g}"
        if not mask.any():
            raise ConfigError(f"{what}: not measured")
        kernels = sorted(set(t["kernel"][mask]))
        mask &= t["kernel"] == kernels[0]
        return interpolate_log(t["num_tokens"][mask], t["latency_s"][mask], tokens, what)

    def allreduce(self, message_bytes: float, gpus: float) -> float:
        """The engine's custom all-reduce on ``gpus`` GPUs, interpolated in the message size."""
        t = self._table("allreduce")
        mask = t["num_gpus"] == gpus
        what = f"all-reduce on {gpus:g} GPUs"
        if not mask.any():
            raise ConfigError(f"{what}: not measured")
        return interpolate_log(t["message_bytes"][mask], t["latency_s"][mask], message_bytes, what)


def _split_batch(t: Mapping[str, np.ndarray], mask: np.ndarray, batch: float, context: float, what: str) -> float:
    """Decode attention in batch and context; a batch larger than any measured at this context (the
    tables stop where the cache would not fit) runs as ``n`` equal parts: ``n·t(B/n)``, an upper bound
    that a memory-bound kernel meets."""
    deep = mask & (t["context"] >= context * (1 - 1e-9))
    if not deep.any():
        raise ConfigError(f"{what}: context {context:g} is beyond the longest measured")
    top = max(np.unique(t["batch"][deep]), key=lambda b: (np.unique(t["context"][mask & (t["batch"] == b)]).max()
                                                          >= context, b))
    parts = max(1, int(np.ceil(batch / top)))
    return parts * _bilinear(t, mask, "batch", "context", batch / parts, context, what)


def _bracket(xs: np.ndarray, v: float, what: str) -> list[float]:
    """The measured values at and around ``v``: one if measured, else the two that bracket it."""
    if np.any(np.isclose(xs, v, rtol=1e-9)):
        return [float(xs[np.isclose(xs, v, rtol=1e-9)][0])]
    lo, hi = xs[xs < v], xs[xs > v]
    if not len(lo) or not len(hi):
        raise ConfigError(f"{what}: {v:g} is outside the measured range [{xs[0]:g}, {xs[-1]:g}]")
    return [float(lo[-1]), float(hi[0])]
