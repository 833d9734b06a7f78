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

__all__ = ["kingman_wait_s", "md1_wait_s", "busy_probability", "goodput_rate"]


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
