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

import math
from collections.abc import Callable, Sequence

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


def bulk_prefill_queue(step_s: np.ndarray, rate_per_s: float,
                       units_per_prompt: int | Sequence[tuple[float, int]], states: bool = False) -> dict[str, float]:
    """The prompt queue of a continuous-batching replica as an embedded Markov chain at step boundaries.

    Prompt tokens are counted in units (a prompt, or a piece of one); each step prefills up to
    ``n = len(step_s) - 1`` queued units and lasts ``step_s[s]`` when it prefills ``s`` units; the
    Poisson arrivals during a step join the queue at its end (a bulk-service queue, Bailey 1954),
    each bringing ``units_per_prompt`` units (or a mix ``[(weight, units), ...]``: compound
    Poisson). Long steps (many prompts) let more prompts arrive for the next one, which a mean
    step misses. From the stationary distribution ``π`` of the queue length ``Q`` (in units,
    truncated where its tail is negligible), with ``ū`` the mean units of a prompt:

    * the mean step ``Σ π_Q τ_Q`` and its second moment;
    * the mean time from a prompt's arrival to the end of its last chunk, by Little's law
      on the prompts in the system, ``⌈Q/ū⌉`` during a step plus the ``λ·t`` arrived so far:
      ``TTFT = Σ π_Q (⌈Q/ū⌉·τ_Q + λ·τ_Q²/2) / (λ·Σ π_Q τ_Q)``; for a mix, on the units
      (a prompt's units mostly finish in the same step): ``Σ π_Q (Q·τ_Q + λ·ū·τ_Q²/2) / (λ·ū·Σ π_Q τ_Q)``,
      which weighs prompts by their units, less ``δ·Var(k)/ū`` (``δ`` the step time a unit adds).

    Returns ``mean_step_s``, ``mean_step_sq_s2``, ``ttft_s``, ``tail`` (the probability mass at the
    longest queues the chain tracks) and ``stable`` (``tail < STABLE_TAIL``; False when the queue
    grows without bound: the chunk budget cannot keep up); with ``states``, also ``states``: the queue
    lengths ``Q``, their step times and stationary probabilities (``None`` when unstable).
    """
    step_s = np.asarray(step_s, dtype=float)
    n = len(step_s) - 1
    mix = [(1.0, int(units_per_prompt))] if np.isscalar(units_per_prompt) else list(units_per_prompt)
    total = sum(w for w, _ in mix)
    mix = [(w / total, int(u)) for w, u in mix]
    mean_units = sum(w * u for w, u in mix)
    # units arriving during a full step over units it serves: at 1 or more the queue grows without bound
    load = rate_per_s * step_s[n] * mean_units / n
    if load >= 1:
        return {"mean_step_s": float(step_s[n]), "mean_step_sq_s2": float(step_s[n] ** 2), "ttft_s": math.inf,
                "stable": False, "tail": 1.0} | ({"states": None} if states else {})
    arrivals = _arrival_units(rate_per_s * step_s, mix)
    q_max = int(min(n + arrivals.shape[1] + np.ceil(20 * mean_units / (1 - load)), Q_LIMIT))
    while True:
        Q, tau, pi = _stationary(step_s, arrivals, n, q_max)
        tail = float(pi[-max(m for _, m in mix):].sum())
        if tail < 1e-9 or q_max >= Q_LIMIT:
            break
        q_max = min(2 * q_max, Q_LIMIT)
    mean = float(pi @ tau)
    if len(mix) == 1:  # prompts in the system: the head is the one partly prefilled
        ttft = float(pi @ (np.ceil(Q / mean_units - 1e-9) * tau + rate_per_s * tau**2 / 2)) / (rate_per_s * mean)
    else:  # a mix: Little's law on units (a prompt's units mostly finish in one step) weighs prompts
        # by their units; a prompt's own step grows by δ per unit, so the mean over prompts is
        # δ·Var(k)/ū lower
        ttft = float(pi @ (Q * tau + rate_per_s * mean_units * tau**2 / 2)) / (rate_per_s * mean_units * mean)
        k_hi = min(max(u for _, u in mix), n)
        delta = (step_s[k_hi] - step_s[1]) / (k_hi - 1) if k_hi > 1 else step_s[1] - step_s[0]
        var_units = sum(w * u**2 for w, u in mix) - mean_units**2
        ttft -= delta * var_units / mean_units
    out = {"mean_step_s": mean, "mean_step_sq_s2": float(pi @ tau**2), "ttft_s": ttft,
           "stable": tail < STABLE_TAIL, "tail": tail}
    if states:
        out["states"] = (Q, tau, pi)
    return out


#: Largest tail mass of a queue that counts as stable (the chain is truncated at ``Q_LIMIT``).
STABLE_TAIL = 1e-6

#: Queue lengths (units) the chain tracks; beyond, the chunk budget is saturated.
Q_LIMIT = 4096


def _arrival_units(means: np.ndarray, mix: list[tuple[float, int]]) -> np.ndarray:
    """Row ``s``: the pmf of the units arriving during a step with ``means[s]`` expected prompts.

    Compound Poisson: independent Poisson counts per class, ``units`` each, convolved; cut where
    each class's tail is below 1e-15 for the largest mean, the rest lumped on the last entry.
    """
    means = np.asarray(means, dtype=float)
    pmf = np.ones((len(means), 1))
    for w, u in mix:  # one SciPy call per class over every row (a row per step size: thousands)
        lam = means * w
        a = np.arange(int(poisson_isf(1e-15, lam.max())) + 2)
        p = poisson_pmf(a[None, :], lam[:, None])
        p[:, -1] += 1 - p.sum(axis=1)
        spread = np.zeros((len(means), u * (len(a) - 1) + 1))
        spread[:, ::u] = p
        pmf = spread if pmf.shape[1] == 1 else np.array([np.convolve(x, y) for x, y in zip(pmf, spread)])
    return pmf


def poisson_pmf(k: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``scipy.stats.poisson.pmf(k, mu)`` for integers ``k >= 0`` and ``mu >= 0``: the same expression
    SciPy evaluates, ``exp(xlogy(k, mu) - gammaln(k + 1) - mu)``, without importing ``scipy.stats``
    (seconds at start-up)."""
    from scipy import special

    return np.exp(special.xlogy(k, mu) - special.gammaln(k + 1) - mu)


def poisson_isf(q: float, mu: float) -> float:
    """``scipy.stats.poisson.isf(q, mu)`` for ``0 < q < 1`` and ``mu >= 0``: the smallest ``k`` with
    ``P(K > k) <= q``, by SciPy's own steps (``pdtrik``, then one step down where ``pdtr`` allows)."""
    from scipy import special

    p = 1.0 - q
    vals = np.ceil(special.pdtrik(p, mu))
    vals1 = np.maximum(vals - 1, 0)
    return float(np.where(special.pdtr(vals1, mu) >= p, vals1, vals))


def _stationary(step_s: np.ndarray, arrivals: np.ndarray, n: int, q_max: int):
    """Queue lengths, their step times and the stationary distribution of the chain truncated at ``q_max``.

    ``π (T - I) = 0`` is solved with ``π_0 = 1``, then normalised. A step serves at most ``n`` units
    and brings at most ``w - 1`` (``w`` the arrival rows' width), so ``T - I`` is a band matrix
    ``n`` below and ``w - 1`` above the diagonal: LAPACK's band LU (``gbtrf``, partial pivoting,
    ``O(q·n·(n+w))``) of ``T - I`` with its first column replaced by ``e_0``, solved transposed
    (``gbtrs``), up to ``BANDED_MAX_UNITS`` units a step; SuperLU on the sparse matrix beyond (a wide
    band is mostly empty: the first ``n`` states all lead to the first ``w``). A step of one unit
    (``n = 1``, the chain skip-free to the left) needs no factorisation: :func:`_stationary_skip_free`.
    """
    Q = np.arange(q_max + 1)
    tau = step_s[np.minimum(Q, n)]
    pi = _stationary_skip_free(arrivals, q_max) if n == 1 else None
    if pi is None and n <= BANDED_MAX_UNITS:
        pi = _stationary_banded(arrivals, n, q_max)
    if pi is None:
        pi = _stationary_sparse(arrivals, n, q_max)
    pi = np.clip(pi, 0.0, None)
    return Q, tau, pi / pi.sum()


#: Most units per step for which the band solver is used: its time and memory grow with the square of
#: it (``prompt_queue_solve_ms`` in experiments/bench.py times both solvers).
BANDED_MAX_UNITS = 512


def _stationary_skip_free(arrivals: np.ndarray, q_max: int) -> np.ndarray | None:
    """``π`` (unnormalised, ``π_0 = 1``) of a chain whose steps serve one unit, by the balance of each cut.

    A step of one unit moves the queue down by at most one, so the only way from ``{j, j+1, ...}`` to
    ``{..., j-1}`` is from ``j`` with no arrival, and the flows across the cut balance (the arrivals past
    ``q_max``, lumped there, cross every cut below it as they would):

        ``π_j·a_1(0) = π_0·P(A_0 >= j) + Σ_{1 <= i < j} π_i·P(A_1 >= j - i + 1)``

    (``A_s`` the arrivals during a step serving ``s`` units, ``a_s`` their pmf). That is a lower-triangular
    band system in ``π_1 .. π_q`` with ``w - 2`` subdiagonals, solved by LAPACK's ``tbtrs``: forward
    substitution, every term non-negative, ``O(q·w)``. The same truncated chain as
    :func:`_stationary_banded` solves, without the factorisation. ``None`` if LAPACK reports a zero
    diagonal (no step free of arrivals) or the result is not finite."""
    from scipy.linalg import lapack

    w = arrivals.shape[1]
    if arrivals.shape[0] < 2 or arrivals[1, 0] <= 0:
        return None
    tails = np.cumsum(arrivals[:, ::-1], axis=1)[:, ::-1]  # tails[s, k] = P(A_s >= k)
    kd = min(max(w - 2, 0), q_max - 1)
    column = -tails[1, 1:kd + 2]  # L[j, j - k] = -P(A_1 >= k + 1); band storage ab[k, j] = L[j + k, j]
    column[0] = arrivals[1, 0]
    ab = np.asfortranarray(np.broadcast_to(column[:, None], (kd + 1, q_max)))  # past the matrix: not read
    rhs = np.zeros((q_max, 1))
    m = min(w - 1, q_max)
    rhs[:m, 0] = tails[0, 1:m + 1]
    pi, info = lapack.dtbtrs(ab, rhs, uplo="L")
    if info != 0 or not np.all(np.isfinite(pi)):
        return None
    return np.concatenate([[1.0], pi[:, 0]])


def _stationary_banded(arrivals: np.ndarray, n: int, q_max: int) -> np.ndarray | None:
    """``π`` (unnormalised) by band LU; ``None`` if LAPACK reports the matrix singular."""
    from scipy.linalg import lapack

    w, size = arrivals.shape[1], q_max + 1
    kl, ku = n, w - 1
    d = kl + ku  # LAPACK band storage: A[i, j] is ab[d + i - j, j] (kl more rows for the pivoting fill)
    ab = np.zeros((2 * kl + ku + 1, size), order="F")  # LAPACK's layout: no copy on the way in
    # A = T - I: from state i, serving s = min(i, n), a arrivals lead to j = i - s + a (j >= q_max lumped)
    a = np.arange(min(w, q_max))
    for i in range(min(n, size)):  # the first n states serve all they hold: j = a
        ab[d + i - a, a] = arrivals[i, a]
    for a in range(w):  # the rest serve n: j = i - n + a, a diagonal of the band per a
        last = min(q_max - n + a, q_max - 1)  # targets of i = n .. q_max below q_max: a .. last
        if last >= a:
            ab[d + n - a, a:last + 1] = arrivals[n, a]
    # lumped at q_max: from i, every a with i - s + a >= q_max
    tails = np.cumsum(arrivals[:, ::-1], axis=1)[:, ::-1]  # tails[s, k] = P(a >= k) after serving s
    i = np.arange(size)
    i = i[i - np.minimum(i, n) + w - 1 >= q_max]
    ab[d + i - q_max, q_max] = tails[np.minimum(i, n), q_max - i + np.minimum(i, n)]
    ab[d] -= 1.0
    ab[:, 0] = 0.0  # the first equation becomes π_0 = 1
    ab[d, 0] = 1.0
    lu, piv, info = lapack.dgbtrf(ab, kl, ku, overwrite_ab=1)
    if info != 0:
        return None
    rhs = np.zeros(size)
    rhs[0] = 1.0
    pi, info = lapack.dgbtrs(lu, kl, ku, rhs, piv, trans=1)
    return pi if info == 0 and np.all(np.isfinite(pi)) else None


def _stationary_sparse(arrivals: np.ndarray, n: int, q_max: int) -> np.ndarray:
    """``π`` (unnormalised) by SuperLU on the sparse ``(T - I)ᵀ`` with its first equation ``π_0 = 1``."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    Q = np.arange(q_max + 1)
    served = np.minimum(Q, n)
    probs = arrivals[served]
    a = np.arange(arrivals.shape[1])
    target = np.minimum(Q[:, None] - served[:, None] + a[None, :], q_max)  # past q_max: lumped there
    rows, cols, vals = target.ravel(), np.repeat(Q, len(a)), probs.ravel()
    keep = (rows != 0) & (vals > 0)
    rows = np.concatenate([rows[keep], Q[1:], [0]])
    cols = np.concatenate([cols[keep], Q[1:], [0]])
    vals = np.concatenate([vals[keep], -np.ones(q_max), [1.0]])
    M = sparse.coo_matrix((vals, (rows, cols)), shape=(q_max + 1, q_max + 1))
    rhs = np.zeros(q_max + 1)
    rhs[0] = 1.0
    return spsolve(M.tocsc(), rhs)
