"""Latency percentiles of a serving deployment from its queueing model (docs/serving.md §19.10).

Serving benchmarks (vLLM ``benchmark_serving``, SGLang ``bench_serving``, genai-perf) report the
median and tail of TTFT, TPOT and end-to-end latency, and teams set their targets on P90 or P99.
The closed forms of §19.3 give means; this module gives the distributions behind them:

* **TTFT, open loop, aggregated** (the prompt queue's Markov chain, :func:`.queueing.bulk_prefill_queue`):
  a prompt arrives at a time-stationary moment, during a step that began with ``Q`` queued units
  (probability ``∝ π_Q·τ_Q``) at a uniform fraction ``s`` of it; the units ahead of it when the
  step ends are ``max(Q - n, 0)`` plus the compound-Poisson arrivals of the elapsed ``s·τ_Q``, and
  those arriving in the rest of the step join behind it. With its own ``k`` units, it needs
  ``m = ⌈(ahead + k)/n⌉`` more steps: ``m - 1`` full ones and a last one carrying the rest, the
  units behind it and (their mean) those arriving over the full steps. Its TTFT is the rest of
  the running step plus those steps. The mean of this distribution is the chain's Little's-law
  TTFT of §19.3 (the same chain; ``tests/test_percentiles.py`` checks it).
* **TTFT, elsewhere** (the prefill pool of disaggregated serving, a closed loop): the wait ``W``
  beyond the request's own prefill is 0 with probability ``1 - ρ`` and otherwise exponential with
  mean ``E[W]/ρ`` (the heavy-traffic form of an M/G/1 wait, Kingman 1962), ``ρ`` the prefill
  server's utilisation and ``E[W]`` the model's mean wait.
* **TPOT** (a busy period): a request of ``D`` decode steps spends ``X = D·τ₀`` in steps without
  prompt tokens, more by ``b = dτ/dB`` for every other sequence decoding with it: other requests
  arrive as a Poisson process of rate ``λ``, and one arriving at offset ``x`` overlaps ``o(x)`` of its
  life, so the batch adds shot noise with cumulants ``λ·∫(b·o(x)/τ̄)^k dx`` (Campbell's theorem).
  Every prompt prefilled while it decodes adds its prefill work ``c`` to the steps, and a longer life
  lets more prompts in: the decode time is the busy period of an M/G/1 queue of prefill work started
  by ``X``. Its cumulants follow from ``X``'s by the chain rule on ``ψ(s) = s + λ(E[e^{cψ(s)}] - 1)``:
  ``ψ′ = 1/(1-ρ)``, ``ψ″ = λE[c²]/(1-ρ)³``, ``ψ‴ = λE[c³]/(1-ρ)⁴ + 3(λE[c²])²/(1-ρ)⁵``, with
  ``ρ = 1 - τ₀/τ̄`` the prefill share of the steps. TPOT's quantiles are the decode time's
  Cornish-Fisher quantiles (to the skewness) over ``D·E`` tokens, centred on the model's mean.
* **End to end**: TTFT plus ``D`` decode steps, the two taken as independent, per request class.

Request classes (a mix, or a length distribution discretised into classes) enter every form: a
class's own prefill units and decode steps, the others' arrivals weighted by their share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["PERCENTILES", "percentile_keys", "alike", "weighted_quantiles", "chain_ttft_atoms", "wait_ttft_atoms",
           "shot_noise_tpot", "percentiles_of"]

#: The percentiles reported (the serving benchmarks report P50, P90 and P99).
PERCENTILES = (50, 90, 99)

#: Gauss-Legendre nodes over the fraction of the running step elapsed at an arrival.
_NODES = 8
#: State mass below which the chain's queue lengths are left out of the enumeration; cells (state, units
#: ahead, units behind) built at a time.
_STATE_MASS, _CELLS = 1e-10, 2_000_000
#: Quantile atoms kept of a class's TTFT (at the midpoints of equal slices of probability), of its decode
#: time, and of its TTFT when the decode time is added (end to end).
_ATOMS, _DECODE_ATOMS, _E2E_ATOMS = 400, 20, 100
#: Atoms sorted as they are; more are first pooled into this many logarithmic bins.
_SORT_MAX, _LOG_BINS = 100_000, 20_000


def percentile_keys(metric: str) -> tuple[str, ...]:
    """``("ttft_p50_s", "ttft_p90_s", "ttft_p99_s")`` for ``metric="ttft"``."""
    return tuple(f"{metric}_p{q}_s" for q in PERCENTILES)


def alike(ttft_s: float, tpot_s: float, e2e_s: float) -> dict[str, float]:
    """The percentiles of requests that all see the same figures (a static batch): each is the figure."""
    return {k: v for m, v in (("ttft", ttft_s), ("tpot", tpot_s), ("e2e", e2e_s)) for k in percentile_keys(m)}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """The ``qs`` quantiles (fractions in [0, 1]) of atoms ``values`` with ``weights``: the smallest value whose
    cumulative weight reaches ``q`` (the inverse of the distribution function)."""
    values, weights = np.asarray(values, float).ravel(), np.asarray(weights, float).ravel()
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size > _SORT_MAX and values.min() > 0:  # many atoms: pooled into fine logarithmic bins first
        values, weights = _log_binned(values, weights)
    order = np.argsort(values, kind="stable")
    values, cum = values[order], np.cumsum(weights[order])
    cum /= cum[-1]
    idx = np.searchsorted(cum, np.asarray(qs, float) - 1e-12, side="left")
    return values[np.minimum(idx, len(values) - 1)]


def _log_binned(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive atoms pooled into :data:`_LOG_BINS` bins of equal width in ``log(value)`` (each at its members'
    weighted mean): quantiles within a relative ``log(max/min)/_LOG_BINS`` of the exact ones, in linear time."""
    logs = np.log(values)
    lo, hi = float(logs.min()), float(logs.max())
    if hi - lo < 1e-12:
        return values[:1], np.array([weights.sum()])
    idx = np.minimum(((logs - lo) / (hi - lo) * _LOG_BINS).astype(np.int64), _LOG_BINS - 1)
    mass = np.bincount(idx, weights, _LOG_BINS)
    moment = np.bincount(idx, weights * values, _LOG_BINS)
    full = mass > 0
    return moment[full] / mass[full], mass[full]


def chain_ttft_atoms(step_s: np.ndarray, rate_per_s: float, mix: list[tuple[float, int]], states,
                     own_units: Sequence[int]) -> list:
    """TTFT atoms of the prompt queue's chain (module docstring) for prompts of each of ``own_units``: a list
    of ``(values, weights)``, weights summing to 1 (the same arrays for the same units).

    ``mix``: ``(weight, units)`` of the arriving prompts; ``states``: ``(Q, τ_Q, π_Q)`` of
    :func:`.queueing.bulk_prefill_queue` (``states=True``)."""
    from .queueing import _arrival_units

    step_s = np.asarray(step_s, float)
    n = len(step_s) - 1
    Q, tau, pi = states
    wt = pi * tau  # an arrival lands in a step in proportion to its length
    wt = wt / wt.sum()
    keep = wt > _STATE_MASS
    Q, tau, wt = Q[keep], tau[keep], wt[keep]
    total = sum(w for w, _ in mix)
    shares = [(w / total, u) for w, u in mix]
    mean_units = sum(w * u for w, u in shares)
    nodes, node_w = np.polynomial.legendre.leggauss(_NODES)
    nodes, node_w = (nodes + 1) / 2, node_w / 2
    units_axis = np.arange(n + 1)
    own = sorted(set(own_units))
    vals: dict[int, list] = {k: [] for k in own}
    wts: dict[int, list] = {k: [] for k in own}
    for s, ws in zip(nodes, node_w):
        ahead_pmf = _trimmed(_arrival_units(rate_per_s * s * tau, shares))  # units that arrived before it
        behind_pmf = _trimmed(_arrival_units(rate_per_s * (1 - s) * tau, shares))  # and after it, this step
        block = max(1, _CELLS // (ahead_pmf.shape[1] * behind_pmf.shape[1]))  # states at a time: bounded memory
        for lo in range(0, len(Q), block):
            rows = slice(lo, lo + block)
            cell = wt[rows, None, None] * ahead_pmf[rows, :, None] * behind_pmf[rows, None, :] * ws
            live = cell > _STATE_MASS * 1e-3
            state, a, b = np.nonzero(live)
            state += lo
            weight = cell[live]
            ahead = np.maximum(Q[state] - n, 0) + a
            for k in own:
                rest = ahead + k
                m = np.ceil(rest / n)
                elapsed = (1 - s) * tau[state] + (m - 1) * step_s[n]
                # the last step: the rest and the prompts that joined behind it (more over the full steps)
                last = np.minimum(n, rest - (m - 1) * n + b + rate_per_s * mean_units * (m - 1) * step_s[n])
                vals[k].append(elapsed + np.interp(last, units_axis, step_s))
                wts[k].append(weight)
    atoms = {}
    for k in own:
        w = np.concatenate(wts[k])
        atoms[k] = (np.concatenate(vals[k]), w / w.sum())
    return [atoms[u] for u in own_units]


def _trimmed(pmf: np.ndarray) -> np.ndarray:
    """``pmf`` without the trailing columns that no row reaches (above 1e-14)."""
    return pmf[:, : np.flatnonzero(pmf.max(axis=0) > 1e-14)[-1] + 1]


def wait_ttft_atoms(own_s: Sequence[float], mean_wait_s: float, busy: float) -> list:
    """TTFT atoms per class: the class's own time ``own_s[c]`` plus a wait that is 0 with probability
    ``1 - busy`` and exponential with mean ``mean_wait_s/busy`` otherwise (module docstring)."""
    busy = min(max(float(busy), 0.0), 1.0)
    if mean_wait_s <= 0 or busy <= 0:
        return [(np.array([float(o)]), np.array([1.0])) for o in own_s]
    q = (np.arange(_ATOMS) + 0.5) / _ATOMS  # the exponential's quantiles at the midpoints of equal slices
    tail = -np.log1p(-q) * mean_wait_s / busy
    values = np.concatenate([[0.0], tail])
    weights = np.concatenate([[1 - busy], np.full(_ATOMS, busy / _ATOMS)])
    return [(float(o) + values, weights) for o in own_s]


def shot_noise_tpot(step_s: float, decode_step_s: float, rate_per_s: float, classes: Sequence[tuple],
                    slope_s: float, prefill_s: Sequence[float]) -> list[dict]:
    """Per class, the cumulants of a request's decode time (module docstring). ``classes``: ``(weight, decode
    steps)``; ``step_s``: the mean step ``τ̄``; ``decode_step_s``: a step without prompt tokens ``τ₀``;
    ``slope_s``: ``dτ/dB``; ``prefill_s[c]``: the prefill work a prompt of class ``c`` adds to the steps it
    shares, in proportion (scaled so that ``λ·E[c] = ρ``). Returns per class ``{"steps": D, "step_s": τ̄,
    "kappa": (κ1, κ2, κ3)}``."""
    w = np.array([c[0] for c in classes], float)
    w /= w.sum()
    D = np.array([c[1] for c in classes], float)
    c = np.asarray(prefill_s, float)
    # the prefill work a unit of decode time draws in: the busy period's ψ′, ψ″ and ψ‴
    rho = min(max(1.0 - decode_step_s / step_s, 0.0), 0.99) if step_s > 0 else 0.0
    mean_work = rate_per_s * float(w @ c)
    if mean_work > 0:  # prompts sharing a step cost more than one alone: scaled to the steps' prefill share
        c = c * rho / mean_work
    m2, m3 = rate_per_s * float(w @ c**2), rate_per_s * float(w @ c**3)
    d1, d2 = 1 / (1 - rho), m2 / (1 - rho) ** 3
    d3 = m3 / (1 - rho) ** 4 + 3 * m2**2 / (1 - rho) ** 5
    # the batch's shot noise: ∫o(x)^k dx of two lives T and T' overlapping (a trapezoid in the offset x):
    # short = min(T, T'), plateau |T - T'|: k=2: short²·plateau + 2·short³/3; k=3: short³·plateau + short⁴/2
    T = D * step_s
    short, plateau = np.minimum(T[:, None], T[None, :]), np.abs(T[:, None] - T[None, :])
    g = slope_s / step_s if step_s > 0 else 0.0
    x2 = rate_per_s * g**2 * ((short**2 * plateau + 2 * short**3 / 3) @ w)
    x3 = rate_per_s * g**3 * ((short**3 * plateau + short**4 / 2) @ w)
    x1 = D * decode_step_s
    k1, k2 = x1 * d1, x2 * d1**2 + x1 * d2
    k3 = x3 * d1**3 + 3 * x2 * d1 * d2 + x1 * d3
    return [{"steps": float(Di), "step_s": float(step_s), "kappa": (float(a), float(b), float(e))}
            for Di, a, b, e in zip(D, k1, k2, k3)]


def _decode_atoms(t: dict, n: int) -> np.ndarray:
    """``n`` equally likely decode times (seconds) of a class: ``D·τ̄ + Y - κ1``, ``Y`` at its Cornish-Fisher
    quantiles (to the skewness) at the midpoints of ``n`` equal slices of probability."""
    from scipy.special import ndtri

    k1, k2, k3 = t["kappa"]
    z = ndtri((np.arange(n) + 0.5) / n)
    sd = math.sqrt(max(k2, 0.0))
    skew = k3 / sd**3 if sd > 0 else 0.0
    y = sd * (z + (z * z - 1) * skew / 6)
    return np.maximum(t["steps"] * t["step_s"] + y, 0.0)  # centred on the model's mean decode time


def percentiles_of(class_weights: Sequence[float], ttft_atoms: list, tpot: list[dict], tokens_per_step: float
                   ) -> dict[str, float]:
    """``ttft_pXX_s``, ``tpot_pXX_s`` and ``e2e_pXX_s`` over the classes from each class's TTFT atoms
    (:func:`chain_ttft_atoms` or :func:`wait_ttft_atoms`) and decode-time cumulants (:func:`shot_noise_tpot`):
    TPOT is a class's decode time over its ``D·E`` tokens; end to end adds the decode time to TTFT, the two
    independent. TPOT is over the classes with more than one output token (0 if none has)."""
    w = np.asarray(class_weights, float) / float(np.sum(class_weights))
    qs = np.array(PERCENTILES) / 100
    reduced: dict[int, np.ndarray] = {}  # classes of the same prompt units share their atoms

    def quantile_atoms(a, b):
        if id(a) not in reduced:
            reduced[id(a)] = weighted_quantiles(a, b, (np.arange(_ATOMS) + 0.5) / _ATOMS)
        return reduced[id(a)]

    tv, tw, fv, ev, ew = [], [], [], [], []
    for (a, b), t, wc in zip(ttft_atoms, tpot, w):
        first = quantile_atoms(a, b)
        fv.append(first)
        if t["steps"] <= 0:  # one output token: no TPOT; its latency is its TTFT
            ev.append(first)
            ew.append(np.full(first.size, wc / first.size))
            continue
        decode = _decode_atoms(t, _DECODE_ATOMS)
        tv.append(decode / (t["steps"] * tokens_per_step))
        tw.append(np.full(decode.size, wc / decode.size))
        coarse = first[_ATOMS // _E2E_ATOMS // 2::_ATOMS // _E2E_ATOMS]
        ev.append((coarse[:, None] + decode[None, :]).ravel())
        ew.append(np.full(ev[-1].size, wc / ev[-1].size))
    fw = np.concatenate([np.full(f.size, wc / f.size) for f, wc in zip(fv, w)])
    out = dict(zip(percentile_keys("ttft"), map(float, weighted_quantiles(np.concatenate(fv), fw, qs))))
    tpot_q = weighted_quantiles(np.concatenate(tv), np.concatenate(tw), qs) if tv else np.zeros(len(qs))
    out |= dict(zip(percentile_keys("tpot"), map(float, tpot_q)))
    out |= dict(zip(percentile_keys("e2e"), map(float, weighted_quantiles(np.concatenate(ev), np.concatenate(ew), qs))))
    return out
