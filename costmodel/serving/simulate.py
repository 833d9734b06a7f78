"""A small discrete-event simulation of one continuous-batching replica, to check the closed forms (§19.3).

Event-driven over requests, not tokens: Poisson arrivals (seeded), or a closed
loop of ``N`` requests in flight (a finished request is replaced at once), a FIFO of
prompt tokens served at most ``C`` per step (Sarathi-Serve's chunked prefill:
the chunk budget is filled from the queue, across prompt boundaries), a
decode batch that advances one token per step, and an optional cap on
sequences in flight. Between two events the step is constant, so the
simulation jumps over whole runs of identical steps: the next event is the
first decode completion, the first prompt whose last chunk is done, the next
arrival (admitted at the next step boundary) or the prompt queue falling
under one chunk. Each step lasts ``step_time(B, c)``: the same function the
closed forms use (:meth:`Replica.step` at the mean context).

A request's first token comes at the end of the step that finishes its
prompt; it then decodes ``O - 1`` tokens, one per step.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .percentiles import PERCENTILES
from .workload import Requests

__all__ = ["SimulationResult", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    """Means and percentiles over the measured requests (the first and last ``trim`` fraction of
    arrivals left out).

    Attributes:
        ttft_s, tpot_s, e2e_latency_s: mean time to first token, per output token after the
            first, and end to end.
        percentiles: ``{"ttft_p50_s": ..., "ttft_p90_s": ..., "ttft_p99_s": ..., "tpot_p50_s": ...,
            "e2e_p99_s": ...}``: the 50th, 90th and 99th percentiles of the three over the measured
            requests (TPOT over those with more than one output token; NumPy's linear interpolation).
        requests_per_s: completed requests per second over the simulated time.
        decode_batch: time-averaged decoding sequences.
        requests: requests measured.
        steps: steps simulated.
    """

    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    requests_per_s: float
    decode_batch: float
    requests: int
    steps: int
    percentiles: dict = field(default_factory=dict)


def simulate(step_time: Callable[[float, float], float], requests: Requests, rate_per_s: float | None = None, *,
             concurrency: int | None = None, stagger_s: float = 0.0, chunk_tokens: float = 8192,
             max_batch: float = math.inf, n_requests: int = 2000, trim: float = 0.1, seed: int = 0) -> SimulationResult:
    """Simulate one replica at ``rate_per_s`` Poisson arrivals of ``requests``, or ``concurrency`` in flight.

    Args:
        step_time: seconds of a step with ``B`` decoding sequences and ``c`` prompt tokens.
        requests: the request classes (prompt tokens ``I·(1-h)`` are prefilled).
        rate_per_s: arrivals per second at this replica (open loop).
        concurrency: requests in flight (closed loop, instead of ``rate_per_s``): ``N`` arrive at
            the start and each completion brings the next request at once.
        stagger_s: closed loop: the first ``N`` requests arrive at uniform random times in
            ``[0, stagger_s]``. With equal requests and 0 (all at once) they stay in lockstep, a
            static batch; staggered over about one request's latency they reach the steady state
            of continuous batching.
        chunk_tokens: prompt tokens a step may prefill (``C``).
        max_batch: sequences in flight (prefilling or decoding) admitted at once.
        n_requests: requests simulated (at most 10^6).
        trim: fraction of the first and of the last arrivals left out of the means.
        seed: seed of the arrival and class draws.
    """
    if not (0 < n_requests <= 10**6):
        raise ConfigError(f"n_requests must be in 1..1e6, got {n_requests!r}")
    closed = concurrency is not None
    if closed == (rate_per_s is not None):
        raise ConfigError("give one of rate_per_s (open loop) or concurrency (closed loop)")
    if closed and not (isinstance(concurrency, int) and 1 <= concurrency <= n_requests):
        raise ConfigError(f"concurrency must be a whole number in [1, n_requests], got {concurrency!r}")
    if not closed and not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ConfigError(f"rate_per_s must be a finite number > 0, got {rate_per_s!r}")
    rng = np.random.default_rng(seed)
    if closed:  # arrival times grow as requests finish
        arrivals: list[float] = sorted(rng.uniform(0.0, stagger_s, concurrency))
    else:
        arrivals = list(np.cumsum(rng.exponential(1.0 / rate_per_s, n_requests)))
    weights = np.array([w for w, _, _ in requests.classes])
    cls = rng.choice(len(weights), size=n_requests, p=weights / weights.sum())
    prompt = np.array([i * (1 - requests.prefix_hit) for _, i, _ in requests.classes])[cls]
    decode_steps = np.array([max(int(round(o)) - 1, 0) for _, _, o in requests.classes])[cls]
    C = float(chunk_tokens)

    cache: dict[tuple[int, float], float] = {}

    def tau(B: int, c: float) -> float:
        key = (B, round(c, 6))
        if key not in cache:
            cache[key] = float(step_time(float(B), float(c)))
        return cache[key]

    first = np.full(n_requests, np.nan)
    done = np.full(n_requests, np.nan)
    waiting: deque[int] = deque()
    fifo: deque[list] = deque()  # [request, prompt tokens left]
    queued = 0.0                 # prompt tokens in the FIFO
    decoding: list[tuple[int, int]] = []  # (step at which it finishes, request)
    now, k, nxt, completed, batch_time = 0.0, 0, 0, 0, 0.0
    def finish(r: int) -> None:
        nonlocal completed
        done[r] = now
        completed += 1
        if closed and len(arrivals) < n_requests:  # after the admitted ones, in time order with the staggered
            bisect.insort(arrivals, now, lo=nxt)

    while completed < n_requests:
        while nxt < len(arrivals) and arrivals[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        while waiting and len(decoding) + len(fifo) < max_batch:
            r = waiting.popleft()
            fifo.append([r, prompt[r]])
            queued += prompt[r]
        B = len(decoding)
        if B == 0 and not fifo:
            now = arrivals[nxt]  # idle until the next arrival
            continue
        c = min(queued, C)
        t = tau(B, c)
        m = math.inf
        if decoding:
            m = decoding[0][0] - k
        if fifo:
            m = min(m, 1 if queued <= C else min(math.ceil(fifo[0][1] / C - 1e-12), math.floor(queued / C)))
        if nxt < len(arrivals):
            m = min(m, max(1, math.ceil((arrivals[nxt] - now) / t)))
        m = int(m)
        now += m * t
        k += m
        batch_time += B * m * t
        if fifo:
            work = m * c
            queued = max(queued - work, 0.0)
            while fifo and fifo[0][1] <= work + 1e-9:
                r, left = fifo.popleft()
                work -= left
                first[r] = now
                if decode_steps[r] == 0:
                    finish(r)
                else:
                    heapq.heappush(decoding, (k + int(decode_steps[r]), r))
            if fifo:
                fifo[0][1] -= work
            else:
                queued = 0.0
        while decoding and decoding[0][0] <= k:
            _, r = heapq.heappop(decoding)
            finish(r)
    lo, hi = int(trim * n_requests), int((1 - trim) * n_requests)
    sel = slice(lo, max(hi, lo + 1))
    arrivals = np.asarray(arrivals)
    ttft = first[sel] - arrivals[sel]
    steps = decode_steps[sel]
    many = steps > 0
    tpot = (done[sel][many] - first[sel][many]) / steps[many]
    e2e = done[sel] - arrivals[sel]
    percentiles = {f"{name}_p{q}_s": float(np.percentile(x, q)) if len(x) else 0.0
                   for name, x in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)) for q in PERCENTILES}
    return SimulationResult(
        ttft_s=float(np.mean(ttft)),
        tpot_s=float(np.mean(tpot)) if many.any() else 0.0,
        e2e_latency_s=float(np.mean(e2e)),
        requests_per_s=n_requests / now,
        decode_batch=batch_time / now,
        requests=int(len(ttft)),
        steps=k,
        percentiles=percentiles,
    )
