"""Aggregated serving: prefill and decode share each replica (docs/serving.md §19.1-19.3).

Per replica, with ``P = I·(1-h)`` prompt tokens prefilled per request,
``D = (O-1)/E`` decode steps per request (the last prefill step emits the first
token; ``E`` tokens per step, 1 without speculation), mean decode context
``S̄ = I + O/2`` and mean attended length of a prefilled token ``Ā = I·(1+h)/2``:

* **static batch** ``B``: ``TTFT = T_prefill(B, P)``; ``T_e2e = TTFT + Σ_{t=1..D} ℓ(B, I + E·t)``
  in closed form (:func:`costmodel.symbolic.serving.static_decode_sum`).
* **continuous batching with chunked prefill** (Sarathi-Serve): if ``X`` requests finish
  per step, a step carries ``B = X·D`` decoding sequences and, on average, ``X·P`` prompt
  tokens, at most ``C`` (the chunk budget). Prompts arrive whole, so the prompt tokens come
  in chunks: a fraction ``f = X·P/c₁`` of the steps carries a chunk of
  ``c₁ = min(C, P·max(1, X))`` tokens and the rest none (one prompt per chunk step at low
  load, every step full past one request per step). The mean step is
  ``τ̄(X) = f·ℓ_mixed(B, c₁) + (1-f)·ℓ_mixed(B, 0)`` (a convex step time makes the mean of
  the steps larger than the step of the mean). A prompt needs ``k_p = ⌈P/C⌉`` chunk steps.
  The most requests per step are ``X_cap = min(C/P, B_cap/D)`` with ``B_cap`` the batch
  that fits in memory at ``S̄`` (or the ``max_batch`` cap).

  - *concurrency* ``N`` (closed loop): a request spends ``W + k_p·ℓ_mixed(B, c₁) + D·τ̄`` in
    the system (the wait for admission, its own chunk steps, its decode steps) and
    ``X/τ̄`` requests finish per second, so Little's law reads
    ``N = X·(W + k_p·ℓ_mixed(B, c₁) + D·τ̄)/τ̄``. Below the cap nothing waits (``W = 0``) and
    ``X`` solves ``X·(k_p·ℓ_mixed(B, c₁) + D·τ̄)/τ̄ = N`` (bisection: the left side increases
    with ``X``); when even ``X_cap`` leaves requests over, ``X = X_cap`` and the wait absorbs
    them, ``T_e2e = N·τ̄/X_cap``. ``TPOT = τ̄/E``, ``TTFT = T_e2e - D·τ̄ >= k_p·ℓ_mixed(B, c₁)``.
  - *rate* ``R`` (open loop): ``X`` solves ``X/τ̄(X) = R`` (Little's law, bisection:
    ``X/τ̄(X)`` increases); the largest sustainable rate is ``R_max = X_cap/τ̄(X_cap)``
    and the utilisation ``R/R_max``. ``TTFT = p_busy·E[τ²]/(2·τ̄) + W + k_p·ℓ_mixed(B, c₁)``:
    the rest of the running step when the engine is busy (mean residual of the steps,
    :func:`.queueing.busy_probability`), the wait for the chunk budget
    (:func:`.queueing.kingman_wait_s` with service ``(P/C)·ℓ_mixed(B, c₁)``) and the
    prompt's own chunk steps.
  - *offline*: ``X = X_cap``.

The chip-time of a step splits into decode work ``ℓ_mixed(B, 0)`` and prefill work
(the rest), which prices input and output tokens (§19.7).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..engines import UNBOUNDED, Scheduler
from ..errors import ConfigError
from .percentiles import alike, chain_ttft_atoms, percentile_keys, percentiles_of, shot_noise_tpot, wait_ttft_atoms
from .queueing import Q_LIMIT, STABLE_TAIL, bulk_prefill_queue
from .replica import Replica, bisect_increasing
from .workload import Load, Requests

__all__ = ["aggregated", "forget_rate_limits"]

#: Most chunks (queue units) per prompt the open-loop chain follows: its arrival rows are that many
#: units wide per prompt, so 10^6 chunks would take terabytes.
MAX_UNITS_PER_PROMPT = 256
#: Most units the longest prompt of a mix is counted in (unless it needs more chunks).
MIX_UNITS = 32


def aggregated(rep: Replica, req: Requests, load: Load, replicas: int, chunk_tokens: float,
               scheduler: Scheduler = UNBOUNDED) -> dict:
    """Serving figures of one replica (rates per replica) for ``load`` split over ``replicas``, under the
    engine's ``scheduler`` rules (§19.9)."""
    I, O, h = req.input_tokens, req.output_tokens, req.prefix_hit
    P, A = req.prefill_tokens, I * (1 + h) / 2
    E = rep.tokens_per_step
    D = max(O - 1.0, 0.0) / E
    S = I + O / 2
    q = 1.0 + rep.draft_length  # tokens a decoding sequence puts in a step
    T = scheduler.max_batched_tokens
    if not scheduler.chunked_prefill:  # whole prompts, as many as the step's token budget holds
        longest = req.longest_prefill_tokens
        if T is not None and longest > T:
            raise ConfigError(f"without chunked prefill ({scheduler.name}) a step prefills whole prompts within "
                              f"max_batched_tokens={T:g}, and a prompt of {longest:g} tokens exceeds it: raise "
                              f"max_batched_tokens to at least {math.ceil(longest)} or enable chunked prefill")
        chunk_tokens = T if T is not None else max(chunk_tokens, longest)
    elif T is not None:  # the step's token budget bounds its prompt tokens too
        chunk_tokens = min(chunk_tokens, T)
    k_p = math.ceil(P / chunk_tokens)
    S_kv = scheduler.kv_context(I, O)  # the KV cache a running sequence holds
    fits_cap = float(rep.max_batch(S_kv))
    caps = {"kv_capacity": fits_cap, "max_seqs": scheduler.max_seqs, "max_batch": load.max_batch}
    cap_rule, cap = min(((k, v) for k, v in caps.items() if v is not None), key=lambda kv: kv[1])
    cap = max(cap, 1.0)  # a misfit still gets figures (flagged by `fits`)

    if load.kind == "static":
        return _static(rep, req, load.value / replicas, D, S, A)

    def budget(B):
        """Prompt tokens a step at decode batch ``B`` may take: the chunk budget, less the decode tokens
        when the engine caps the tokens of a step (decodes are scheduled first)."""
        return chunk_tokens if T is None else np.clip(T - q * np.asarray(B, dtype=float), 1.0, chunk_tokens)

    def steps(X):
        """Mean step, chunk step, decode-only step and the fraction of chunk steps at ``X``."""
        X = np.asarray(X, dtype=float)
        B = X * D
        c1 = np.minimum(budget(B), P * np.maximum(1.0, X))
        f = X * P / c1
        t1, t0 = rep.step(B, c1, S, A), rep.step(B, 0.0, S, A)
        return f * t1 + (1 - f) * t0, t1, t0, f

    def tau(X):
        return steps(X)[0]

    limits = {"chunk_tokens": chunk_tokens / P, cap_rule: cap / D if D > 0 else math.inf}
    if T is not None:  # X·P prompt tokens and q·X·D decode tokens a step within T
        limits["max_batched_tokens"] = T / (P + q * D)
    bound_by, X_cap = min(limits.items(), key=lambda kv: kv[1])
    r_max = float(X_cap / tau(X_cap))
    out = {"max_rate_per_s": r_max, "utilisation": None, "saturated": False}
    if load.kind == "offline":
        X = X_cap
    elif load.kind == "concurrency":
        X = _closed_loop_rate(steps, load.value / replicas, k_p, D, X_cap)
    else:
        R = load.value / replicas
        r_max, B_edge = _rate_limit(rep, r_max, req, D, S, A, chunk_tokens, cap, budget)
        if D > 0 and B_edge < cap * (1 - 1e-6) and r_max < out["max_rate_per_s"] * (1 - 1e-6):
            bound_by = "queue_stability"  # the prompt queue, not a cap, stops a larger rate
        out["max_rate_per_s"] = r_max
        out["utilisation"] = R / r_max
        X = X_cap
    out["bound_by"] = bound_by
    chain = None
    if load.kind == "rate":
        out["saturated"] = R >= r_max
        at = min(R, r_max)  # saturated, the replica serves its largest sustainable rate
        chain = _rate_chain(rep, at, req, D, S, A, chunk_tokens, B_edge, budget)
        X = at * chain["mean_step_s"]  # Little's law: the replica finishes `at` requests/s
    t, t_chunk, t_dec, f = (float(v) for v in steps(X))
    if chain is not None:
        t = chain["mean_step_s"]
    B = X * D
    if load.kind == "concurrency":  # Little's law; below the cap e2e = k_p·t_chunk + D·t
        e2e = load.value / replicas / X * t
        ttft = e2e - D * t
    elif load.kind == "rate" and not out["saturated"]:
        ttft = chain["ttft_s"]
        e2e = ttft + D * t
    elif load.kind == "rate":
        ttft, e2e = math.inf, math.inf
    else:  # offline: from admission
        ttft = k_p * t_chunk
        e2e = ttft + D * t
    decode_only = t_dec if B > 0 else 0.0
    c1 = float(min(budget(B), P * max(1.0, X)))
    if load.kind == "rate" and not out["saturated"] and chain["states"] is not None:
        first = chain_ttft_atoms(chain["step_s"], at, chain["mix"], chain["states"],
                                 [u for _, u in prompt_units(req, chunk_tokens)[1]])
    else:  # offline and closed loop: the own chunk steps, after a wait all share alike (none offline)
        own = [math.ceil(i * (1 - h) / chunk_tokens) * t_chunk for _, i, _ in req.classes]
        wait = max(ttft - sum(w * o for (w, _, _), o in zip(req.classes, own)), 0.0) if math.isfinite(ttft) else 0.0
        first = wait_ttft_atoms([o + wait for o in own], 0.0, 0.0)
    slope = rep.batch_slope(B, S) if load.kind == "rate" else 0.0  # a closed population holds its batch
    per_token = (t_chunk - t_dec) / c1 if c1 > 0 else 0.0
    noise = shot_noise_tpot(t, t_dec, X / t, [(w, max(o - 1.0, 0.0) / E) for w, _, o in req.classes], slope,
                            [i * (1 - h) * per_token for _, i, _ in req.classes])
    tails = percentiles_of([w for w, _, _ in req.classes], first, noise, E)
    if not math.isfinite(ttft):  # saturated: the queue, and so TTFT and latency, grow without bound
        tails |= dict.fromkeys(percentile_keys("ttft") + percentile_keys("e2e"), math.inf)
    mem = rep.decode(max(B, 1.0), S_kv)
    out.update(
        ttft_s=ttft, tpot_s=t / E if O > 1 else 0.0, e2e_latency_s=e2e, requests_per_s=X / t, decode_batch=B,
        step=_mean_terms(rep, B, X, P, S, A, float(budget(B))), step_time_s=t, chunk_step_time_s=t_chunk,
        chunk_step_fraction=f, prefill_share=_prefill_share(1 - decode_only / t, O, P),
        memory_bytes_per_chip=float(mem["memory_bytes_per_chip"]),
        fits=bool(mem["memory_bytes_per_chip"] <= mem["usable_bytes_per_chip"]) and fits_cap >= min(B, cap),
        max_batch=fits_cap, kv_context_tokens=S_kv, percentiles=tails,
    )
    return out


def _closed_loop_rate(steps, N: float, k_p: int, D: float, X_cap: float) -> float:
    """Requests finishing per step with ``N`` in flight: ``X·(k_p·t_chunk + D·τ̄)/τ̄ = N``, or ``X_cap``.

    The left side, the requests in the system at ``X`` with no wait, increases with ``X``
    (more requests per step are more requests in flight; ``tests/test_serving.py`` checks it on
    a grid), so bisection between 0 and ``X_cap`` finds the root; past ``X_cap`` the admission
    queue holds the rest.
    """
    def in_system(X):
        t, t_chunk, _, _ = steps(X)
        return X * (k_p * t_chunk + D * t) / t

    if float(in_system(X_cap)) <= N:
        return X_cap
    return float(bisect_increasing(in_system, N, 0.0, X_cap, iterations=80))


#: Relative precision of the largest sustainable rate.
RATE_LIMIT_RTOL = 1e-6


def _rate_limit(rep: Replica, fluid_max: float, req: Requests, D: float, S: float, A: float, chunk_tokens: float,
                cap: float, budget=None) -> tuple[float, float]:
    """The largest sustainable rate ``R_max = max_{0 < B <= B_cap} R(B)`` and the batch ``B`` it is
    reached at, where ``R(B)`` is the largest rate whose prompt queue is stable with the steps of decode
    batch ``B`` and whose Little's-law batch ``R·D·E[τ](B; R)`` stays within ``B`` (:func:`_edge_rate`).

    A rate is sustainable when the fixed point ``B = R·D·E[τ](B; R)`` has a root within the batch cap
    with a stable queue there; ``R <= R(B)`` for some ``B <= B_cap`` is exactly that (the room
    ``B - R·D·E[τ]`` is negative at 0 and non-negative at ``B``), so ``R_max`` is the maximum of
    ``R(B)``. It is a property of the deployment: it does not depend on the demanded rate, and more
    memory (a larger ``B_cap``) or faster steps never lower it (an engine can always run a smaller
    batch). ``R(B)`` rises with ``B`` while the batch room binds and falls once the queue's stability
    binds (the full chunk step slows as the batch grows), so the maximum sits at ``B_cap`` or where the
    two bind together, which Brent's method finds.
    """
    if D == 0:
        return fluid_max, 0.0

    def limit(B: float) -> tuple[float, float]:
        """``(R(B), stability margin - room margin just past R(B))``: positive while the batch room binds
        (past the edge the binding margin is the negative one; the stability margin may jump there)."""
        step_s, mix = _chain_steps(rep, req, S, A, chunk_tokens, B, budget)
        key = (np.asarray(step_s, dtype=float).tobytes(), tuple(mix), float(D), float(B), float(fluid_max))
        R = _edge_rate(*key)
        room, stability = _margins(*key[:4], R * (1 + 1e3 * RATE_LIMIT_RTOL))
        return R, stability - room

    r_cap, d_cap = limit(cap)
    if d_cap >= 0 or r_cap >= fluid_max:  # the batch room binds at the cap: R(B) rises up to it
        return r_cap, cap
    lo = cap
    while lo > 1e-9 * cap:  # a batch small enough for the room to bind
        lo /= 4
        r_lo, d_lo = limit(lo)
        if d_lo >= 0:
            break
    else:
        return max((r_cap, cap), (r_lo, lo))
    from scipy.optimize import brentq

    B = brentq(lambda b: limit(b)[1], lo, cap, xtol=1e-6 * cap, rtol=1e-5)  # R(B) is flat at its peak
    return max((limit(B)[0], B), (r_cap, cap), (r_lo, lo))


@functools.lru_cache(maxsize=2048)
def _margins(step_bytes: bytes, mix: tuple, D: float, cap: float, R: float) -> tuple[float, float]:
    """The batch room ``1 - R·D·E[τ]/B`` and the stability margin ``log(STABLE_TAIL/tail)`` (scaled
    alike) of the chain at rate ``R``: both positive where ``R`` is sustainable with these steps. Kept: the
    search of :func:`_rate_limit` asks the same ones again for a replica confirmed at another rate."""
    if R <= 0:
        return 1.0, 1.0
    chain = bulk_prefill_queue(np.frombuffer(step_bytes), R, list(mix))
    stability = math.log(STABLE_TAIL / max(chain["tail"], 1e-300)) / -math.log(STABLE_TAIL)
    return 1 - R * D * chain["mean_step_s"] / cap, stability


def forget_rate_limits() -> None:
    """Drop the kept rate limits (:func:`_edge_rate`) and chain margins (:func:`_margins`)."""
    _edge_rate.cache_clear()
    _margins.cache_clear()


@functools.lru_cache(maxsize=256)
def _edge_rate(step_bytes: bytes, mix: tuple, D: float, cap: float, fluid_max: float) -> float:
    """``R(B)`` of :func:`_rate_limit` on the chain's step times at batch ``B = cap`` (as bytes: a key),
    kept: it does not depend on the demanded rate, so a replica confirmed at another rate reuses it."""
    def slack(R):
        """Positive where ``R`` is sustainable, continuous in ``R``: the least of :func:`_margins`."""
        return min(_margins(step_bytes, mix, D, cap, R))

    if slack(fluid_max) >= 0:
        return fluid_max
    from scipy.optimize import brentq  # Brent's method: a handful of chain solves where bisection needs 20

    R = brentq(slack, 0.0, fluid_max, xtol=1e-12 * fluid_max, rtol=RATE_LIMIT_RTOL)
    for _ in range(8):  # Brent's estimate may sit just past the edge: step back within its tolerance
        if slack(R) >= 0:
            break
        R *= 1 - 2 * RATE_LIMIT_RTOL
    return R


def _chain_at(rep: Replica, R: float, req: Requests, S: float, A: float, chunk_tokens: float, budget=None):
    """``B -> bulk_prefill_queue(...)`` at rate ``R`` (the prompt tokens counted in units), with the chain's
    states, step times and arriving mix (the percentiles of §19.10 enumerate them)."""
    def chain(B):
        step_s, mix = _chain_steps(rep, req, S, A, chunk_tokens, B, budget)
        return bulk_prefill_queue(step_s, R, mix, states=True) | {"step_s": step_s, "mix": mix}

    return chain


def _chain_steps(rep: Replica, req: Requests, S: float, A: float, chunk_tokens: float, B, budget=None) -> tuple:
    """The chain's step times at decode batch ``B`` (one per count of prefilled units, whatever the rate)
    and ``(weight, units)`` of each request class. ``budget(B)``: the prompt tokens a step at ``B`` may take
    (default the chunk budget); a step takes at least one unit (the engine prefills a piece of the
    remaining budget; the chain counts whole units)."""
    unit, mix = prompt_units(req, chunk_tokens)
    if max(u for _, u in mix) > MAX_UNITS_PER_PROMPT:  # the chain's states and arrival rows grow with it
        big = req.longest_prefill_tokens
        raise ConfigError(f"a prompt of {big:g} tokens needs {math.ceil(big / chunk_tokens)} chunk steps of "
                          f"chunk_tokens={chunk_tokens:g}; the open-loop queue follows at most "
                          f"{MAX_UNITS_PER_PROMPT} per prompt: raise chunk_tokens to at least "
                          f"{math.ceil(big / MAX_UNITS_PER_PROMPT)}")
    # the chain tracks at most Q_LIMIT queued units, so a step never serves more (a huge chunk budget
    # of tiny prompts would otherwise price millions of step sizes)
    room = chunk_tokens if budget is None else float(budget(B))
    tokens = np.arange(max(min(math.floor(room / unit + 1e-9), Q_LIMIT), 1) + 1) * unit
    merged: dict[int, float] = {}  # classes of the same units arrive as one
    for w, u in mix:
        merged[u] = merged.get(u, 0.0) + w
    return rep.step(B, tokens, S, A), [(w, u) for u, w in sorted(merged.items())]


def prompt_units(req: Requests, chunk_tokens: float) -> tuple[float, list[tuple[float, int]]]:
    """The unit of prompt tokens the queue counts in, and ``(weight, units)`` of each request class.

    One class: the prompt, or ``1/k_p`` of it when it needs ``k_p = ⌈P/C⌉`` chunks. A mix: the
    smallest such piece divided by the first ``j <= 8`` that puts every class within 2% of a whole
    number of units; but no finer than the longest prompt over :data:`MIX_UNITS` (or its chunk), so
    that a wide length distribution keeps the chain small (a short prompt then counts as one unit).
    """
    sizes = [(w, i * (1 - req.prefix_hit)) for w, i, _ in req.classes]
    base = min(p / math.ceil(p / chunk_tokens) for _, p in sizes)
    for j in range(1, 9):
        unit = base / j
        if all(abs(p / unit - round(p / unit)) <= 0.02 * (p / unit) for _, p in sizes):
            break
    longest = max(p for _, p in sizes)
    unit = max(unit, longest / max(MIX_UNITS, math.ceil(longest / chunk_tokens)))
    return unit, [(w, max(int(round(p / unit)), 1)) for w, p in sizes]


def _rate_chain(rep: Replica, R: float, req: Requests, D: float, S: float, A: float, chunk_tokens: float,
                edge: float, budget=None) -> dict:
    """Open loop: the decode batch of Little's law, ``B = R·D·E[τ](B)``, with the mean step of the
    prompt queue's Markov chain (:func:`.queueing.bulk_prefill_queue`), for ``R`` at most the rate
    limit reached at batch ``edge`` (:func:`_rate_limit`): there the room ``B - R·D·E[τ]`` is not
    negative and the queue stable, at 0 it is negative, so Brent's method finds the batch between."""
    chain = _chain_at(rep, R, req, S, A, chunk_tokens, budget)
    if D == 0:
        return chain(0.0) | {"batch": 0.0}
    from scipy.optimize import brentq

    def room(b):
        c = chain(b)
        return b - R * D * c["mean_step_s"] if c["stable"] else -b

    if room(edge) <= 0:  # at the edge itself, within the rate limit's tolerance
        return chain(edge) | {"batch": edge}
    B = brentq(room, 0.0, edge, xtol=1e-12 * edge)
    return chain(B) | {"batch": B}


def _mean_terms(rep: Replica, B: float, X: float, P: float, S: float, A: float, chunk_tokens: float) -> dict:
    """The mean step's breakdown: chunk steps and decode-only steps weighted by their fractions."""
    c1 = min(chunk_tokens, P * max(1.0, X))
    f = X * P / c1
    with_chunk, without = rep.mixed(B, c1, S, A), rep.mixed(B, 0.0, S, A)
    return {k: f * with_chunk[k] + (1 - f) * without[k] for k in with_chunk}


def _prefill_share(share: float, O: float, P: float) -> float:
    """The prefill's share of the chip-time, in [0, 1]; with one output token, which the prefill's last
    position computes, that position's ``1/P`` of it goes to the output (§19.7)."""
    share = min(max(share, 0.0), 1.0)
    return share * (1 - 1 / P) if O <= 1 else share


def _static(rep: Replica, req: Requests, B: float, D: float, S: float, A: float) -> dict:
    I, O, P = req.input_tokens, req.output_tokens, req.prefill_tokens
    t_pf = float(rep.prefill(B, P)["step_time_s"])
    t_dec = float(rep.static_decode_s(B, I, D)) if D > 0 else 0.0
    e2e = t_pf + t_dec
    step = rep.mixed(B, 0.0, S, 0.0)
    mean_step = float(rep.step(B, 0.0, S))
    mem = rep.decode(B, I + O)
    return {
        "ttft_s": t_pf, "tpot_s": t_dec / (O - 1) if O > 1 else 0.0, "e2e_latency_s": e2e,
        "requests_per_s": B / e2e, "decode_batch": B, "step": step, "step_time_s": mean_step,
        "prefill_share": _prefill_share(t_pf / e2e, O, P), "utilisation": None, "saturated": False,
        "max_rate_per_s": None,
        "memory_bytes_per_chip": float(mem["memory_bytes_per_chip"]),
        "fits": bool(mem["memory_bytes_per_chip"] <= mem["usable_bytes_per_chip"]),
        "max_batch": float(rep.max_batch(I + O)),
        # every request of a static batch starts and ends together (at the mean lengths)
        "percentiles": alike(t_pf, t_dec / (O - 1) if O > 1 else 0.0, e2e),
    }

