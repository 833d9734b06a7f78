"""Waiting for prefill capacity at a request rate: closed-form queueing approximations (docs/serving.md §19.3).

The prefill work of a replica is a single server: a prompt of ``P`` tokens
occupies ``P/C`` of the steps' chunk budget ``C``, so its service time is
``s = (P/C)·τ`` at step time ``τ`` (aggregated), or the prefill time of the
prefill pool (disaggregated). Arrivals are Poisson. The mean wait in queue is
Kingman's heavy-traffic formula (Kingman 1961),

    W = (c_a² + c_s²)/2 · ρ/(1 - ρ) · E[s],    ρ = λ·E[s] < 1,

which is exact for M/G/1 (Pollaczek-Khinchine) with Poisson arrivals
(``c_a² = 1``), and is the M/D/1 wait ``ρ·s/(2(1-ρ))`` for one request class
(``c_s² = 0``). Past saturation (``ρ >= 1``) the queue grows without bound: the
wait is infinite and the callers say so (``saturated``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["kingman_wait_s", "md1_wait_s", "busy_probability", "goodput_rate", "bulk_prefill_queue"]


def kingman_wait_s(rate_per_s: float, mean_service_s: float, service_cv2: float = 0.0,
                   arrival_cv2: float = 1.0) -> float:
    """Mean wait in queue ``(c_a² + c_s²)/2 · ρ/(1-ρ) · E[s]``; ``inf`` when ``ρ = λ·E[s] >= 1``."""
    rho = rate_per_s * mean_service_s
    if rho >= 1:
        return float("inf")
    return (arrival_cv2 + service_cv2) / 2 * rho / (1 - rho) * mean_service_s


def md1_wait_s(rate_per_s: float, service_s: float) -> float:
    """M/D/1 mean wait ``ρ·s/(2(1-ρ))`` (Kingman with ``c_a² = 1, c_s² = 0``)."""
    return kingman_wait_s(rate_per_s, service_s, 0.0, 1.0)


def busy_probability(requests_in_system: float) -> float:
    """Probability that an arrival finds the engine busy: ``1 - exp(-N̄)``.

    Requests in a continuous-batching engine are served in parallel, so the number in
    the system is close to an M/G/∞ population: Poisson with mean ``N̄ = λ·T_e2e``.
    """
    return float(1 - np.exp(-requests_in_system))


def goodput_rate(ttft_of_rate: Callable[[float], float], ttft_target_s: float, max_rate_per_s: float,
                 *, rtol: float = 1e-4) -> float:
    """The largest rate whose TTFT meets ``ttft_target_s`` (TTFT rises with the rate), by bisection.

    Returns 0 when even a vanishing rate misses the target.
    """
    lo, hi = 0.0, max_rate_per_s * (1 - 1e-9)
    if ttft_of_rate(hi) <= ttft_target_s:
        return hi
    if ttft_of_rate(hi * 1e-6) > ttft_target_s:
        return 0.0
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ttft_of_rate(mid) <= ttft_target_s else (lo, mid)
    return lo


def bulk_prefill_queue(step_s: np.ndarray, rate_per_s: float, units_per_prompt: int) -> dict[str, float]:
    """The prompt queue of a continuous-batching replica as an embedded Markov chain at step boundaries.

    Each step prefills up to ``n = len(step_s) - 1`` queued units (a unit is a prompt, or
    ``1/units_per_prompt`` of one when a prompt needs several chunks) and lasts
    ``step_s[s]`` when it prefills ``s`` units; the Poisson arrivals during a step join
    the queue at its end (a bulk-service queue, Bailey 1954). Long steps (many prompts)
    let more prompts arrive for the next one, which a mean step misses. From the
    stationary distribution ``π`` of the queue length ``Q`` (in units, truncated where
    its tail is negligible):

    * the mean step ``Σ π_Q τ_Q`` and its second moment;
    * the mean time from a prompt's arrival to the end of its last chunk, by Little's law
      on the prompts in the system: ``⌈Q/k⌉`` during a step, plus the ``λ·t`` arrived so
      far: ``TTFT = Σ π_Q (⌈Q/k⌉·τ_Q + λ·τ_Q²/2) / (λ·Σ π_Q τ_Q)``.

    Returns ``mean_step_s``, ``mean_step_sq_s2``, ``ttft_s`` and ``stable`` (False when the
    queue outgrows the truncation: the chunk budget cannot keep up).
    """
    step_s = np.asarray(step_s, dtype=float)
    n, k = len(step_s) - 1, int(units_per_prompt)
    mean_arrivals = rate_per_s * step_s.max()
    q_max = int(n + k * np.ceil(mean_arrivals + 10 * np.sqrt(mean_arrivals) + 20))
    while True:
        Q, tau, pi = _stationary(step_s, rate_per_s, n, k, q_max)
        tail = float(pi[-max(k, 1):].sum())
        if tail < 1e-9 or q_max >= _Q_LIMIT:
            break
        q_max = min(2 * q_max, _Q_LIMIT)
    mean = float(pi @ tau)
    prompts = np.ceil(Q / k)
    ttft = float(pi @ (prompts * tau + rate_per_s * tau**2 / 2)) / (rate_per_s * mean)
    return {"mean_step_s": mean, "mean_step_sq_s2": float(pi @ tau**2), "ttft_s": ttft,
            "stable": tail < 1e-6}


_Q_LIMIT = 4096  # queue lengths (units) the chain tracks; beyond, the chunk budget is saturated


def _stationary(step_s: np.ndarray, rate_per_s: float, n: int, k: int, q_max: int):
    """Queue lengths, their step times and the stationary distribution of the chain truncated at ``q_max``."""
    from scipy.stats import poisson

    Q = np.arange(q_max + 1)
    served = np.minimum(Q, n)
    tau = step_s[served]
    a = np.arange(q_max // k + 2)
    probs = poisson.pmf(a[None, :], rate_per_s * tau[:, None])
    probs[:, -1] += 1 - probs.sum(axis=1)  # the tail lands on the truncation
    target = np.minimum(Q[:, None] - served[:, None] + k * a[None, :], q_max)
    T = np.zeros((q_max + 1, q_max + 1))
    np.add.at(T, (np.repeat(Q, len(a)), target.ravel()), probs.ravel())
    # stationary distribution: π (T - I) = 0, Σ π = 1
    M = T.T - np.eye(q_max + 1)
    M[-1, :] = 1.0
    rhs = np.zeros(q_max + 1)
    rhs[-1] = 1.0
    pi = np.clip(np.linalg.solve(M, rhs), 0.0, None)
    return Q, tau, pi / pi.sum()
