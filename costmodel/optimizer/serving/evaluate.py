r"""The serving model on arrays of candidate deployments: one jitted call per batch of candidates.

The same closed forms as :func:`costmodel.serve` (docs/serving.md §19), written over arrays
of candidates (split, precision, chunk budget, speculation option) instead of one
configuration, so thousands of deployments cost a few fused XLA calls:

* **aggregated** (§19.2-19.3): a replica finishing ``X`` requests per step runs ``B = X·D``
  decoding sequences and a mean step ``τ̄(X) = f·ℓ(B, c₁) + (1-f)·ℓ(B, 0)`` (chunk steps in a
  fraction ``f = X·P/c₁``); it serves ``λ = X/τ̄(X)`` requests/s (Little's law). TPOT is
  ``τ̄/E``; TTFT is the prompt's own ``k_p = ⌈P/C⌉`` chunk steps, the residual of the running
  step and Kingman's wait for the chunk budget (``queueing.kingman_wait_s``, service
  ``(P/C)·ℓ(B, c₁)``). Every one of them rises with ``X``, so the largest ``X`` meeting the
  targets, memory (``B <= B_max``) and the chunk budget (``X <= C/P``) is a bisection; the
  replica's goodput is ``g = X*/τ̄(X*)`` and the fewest replicas ``r = ⌈R/g⌉``.
  The mean step of a Poisson stream of whole prompts is longer than the fluid ``τ̄`` (the
  chain of ``queueing.bulk_prefill_queue``): the answer is re-evaluated with ``cm.serve``
  (:mod:`.exact`), which adds replicas where the chain says so.
* **disaggregated** (§19.4), as ``serving.disaggregated`` computes it: the decode pool's
  largest batch meeting TPOT and memory gives its goodput ``B*/(D·ℓ(B*))`` per replica; a
  prefill replica of ``b_p`` prompts per prefill of ``T_pf`` seconds meets
  ``TTFT = W + T_pf + t_kv <= target`` with Kingman's ``W = (1+c_s²)/2·ρ/(1-ρ)·T_pf/b_p`` while
  ``ρ <= q/(1+q)``, ``q = (target - T_pf - t_kv)/((1+c_s²)/2·T_pf/b_p)``: its goodput is
  ``ρ_max·b_p/T_pf``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...cache import CachedJit
from ...compile import compiled, compiled_serving
from ...config import Parallel, Workload
from ...errors import CostModelError
from ...inputs import scenario
from ...specs import load_model
from ...symbolic import Rules
from ...serving.queueing import Q_LIMIT
from ..exact import _bucket, _split_row
from .problem import ServingProblem, pool_usd_per_hour

__all__ = ["aggregated_table", "decode_table", "prefill_table", "pair_table", "BISECTION_STEPS"]

BISECTION_STEPS = 48
_INF = 1e30
#: candidates per jitted call: every call is padded to this size (larger sets are split by the callers),
#: so each function compiles once
BLOCK = 1024


def _pad(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    size = BLOCK if n <= BLOCK else _bucket(n)
    out = {}
    for k, v in arrays.items():
        v = np.asarray(v, dtype=float).reshape(-1)
        out[k] = np.concatenate([v, np.repeat(v[-1:], size - n)]) if n else np.ones(size)
    return out


def _inputs(problem: ServingProblem, base, splits: np.ndarray, prec: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs of each candidate: its split's scenario inputs, its precision's bytes and FLOP/s."""
    uniq, inv = np.unique(np.asarray(splits, dtype=np.int64).reshape(-1, 3), axis=0, return_inverse=True)
    rows = [_split_row(base, tuple(int(v) for v in u)) for u in uniq]
    x = {k: np.array([r[k] for r in rows], dtype=float)[inv.reshape(-1)] for k in rows[0]}
    for k, table in problem.precision_inputs().items():
        x[k] = table[np.asarray(prec, dtype=np.int64)]
    return x


@functools.lru_cache(maxsize=4096)
def _draft_row(problem: ServingProblem, draft_name, split: tuple[int, int, int], prec: int):
    """Inputs of a draft model on the target's split (``None`` when the split cannot hold it)."""
    sc = problem.decode_base
    try:
        dsc = scenario(load_model(draft_name), sc.hardware, Workload(), Parallel(tp=split[0], pp=split[1], ep=split[2]),
                       dataclasses.replace(problem.precision_of(prec), weights=None, math=None),
                       problem.efficiency, problem.usd_per_chip_hour)
    except CostModelError:
        return None
    return dsc.inputs()


def _draft_inputs(problem: ServingProblem, spec, splits: np.ndarray, prec: np.ndarray):
    """Per-candidate draft-model inputs and a mask of candidates whose split can hold the draft."""
    if spec is None or (isinstance(spec.draft, str) and spec.draft == "mtp"):
        return None, np.ones(len(splits), dtype=bool)
    name = spec.draft if isinstance(spec.draft, str) else spec.draft
    rows = [_draft_row(problem, name, tuple(int(v) for v in s), int(p)) for s, p in zip(splits, prec)]
    ok = np.array([r is not None for r in rows])
    good = next((r for r in rows if r is not None), None)
    if good is None:
        return None, ok
    rows = [r if r is not None else good for r in rows]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in good}, ok


def _draft_kind(spec):
    if spec is None:
        return None
    if isinstance(spec.draft, str) and spec.draft == "mtp":
        return "mtp"
    return load_model(spec.draft).structure


def _step_fn(structure, rules: Rules, draft, n_layers: int):
    """``step(x, xd, B, c, S, A) -> seconds`` of a mixed step plus the draft steps (as ``Replica.step``)."""
    serving = compiled_serving(structure, rules)
    draft_model = compiled(draft, rules) if draft not in (None, "mtp") else None

    def step(x, xd, B, c, S, A):
        g = x["draft_length"]
        base = x | {"batch": jnp.maximum(B, 1e-12), "prefill_tokens": c, "context": S, "prefill_position": A,
                    "steps": 1.0}
        t = serving.raw(base)["step_time_s"]
        if draft == "mtp":
            t = t + g * serving.raw(base | {"prefill_tokens": 0.0, "draft_length": 0.0})["step_time_s"] / n_layers
        elif draft_model is not None:
            t = t + g * draft_model.raw(xd | {"batch": B, "context": S})["step_time_s"]
        return t

    return step, serving


def _busy(serving, x, B, c, S, A, f=0.0):
    """What keeps the chips busy in the mean step of ``f`` chunk steps of ``c`` prompt tokens and ``1 - f``
    decode-only steps at batch ``B``: ``compute_s``, ``memory_s`` (weights and KV) and ``busy_step_s`` (the
    mean step without the draft model's steps, as ``cm.serve`` weighs it for power; docs/theory.md §21)."""
    base = x | {"batch": jnp.maximum(B, 1e-12), "prefill_tokens": c, "context": S, "prefill_position": A,
                "steps": 1.0}
    m1, m0 = serving.raw(base), serving.raw(base | {"prefill_tokens": 0.0})

    def mean(k):
        return f * m1[k] + (1 - f) * m0[k]

    return {"compute_s": mean("compute_s"), "memory_s": mean("weights_s") + mean("kv_s"),
            "busy_step_s": mean("step_time_s")}


def _bisect_last(ok, lo, hi, steps=BISECTION_STEPS):
    """Largest ``x`` in ``[lo, hi]`` with ``ok(x)`` for an ``ok`` that holds below a threshold."""
    def body(_, b):
        lo, hi = b
        mid = (lo + hi) / 2
        good = ok(mid)
        return jnp.where(good, mid, lo), jnp.where(good, hi, mid)
    lo, hi = jnp.broadcast_arrays(lo, hi)
    lo, _ = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return lo


def _bisect_root(f, target, lo, hi, steps=BISECTION_STEPS):
    """``x`` with ``f(x) = target`` for an increasing ``f``."""
    def body(_, b):
        lo, hi = b
        mid = (lo + hi) / 2
        below = f(mid) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)
    lo, hi = jnp.broadcast_arrays(lo, hi)
    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return (lo + hi) / 2


@functools.cache
def _aggregated_fn(structure, rules: Rules, draft, n_layers: int) -> CachedJit:
    """The jitted aggregated table, its traced program kept on disk (:class:`costmodel.cache.CachedJit`)."""
    return CachedJit(("serving_aggregated", repr(structure), repr(rules), repr(draft), str(n_layers)),
                     functools.partial(_aggregated_run, structure, rules, draft, n_layers))


def _aggregated_run(structure, rules: Rules, draft, n_layers: int):
    step, serving = _step_fn(structure, rules, draft, n_layers)
    decode = compiled(structure, rules)

    def run(x, xd, w):
        """``w``: workload scalars and targets; ``x["rate"]``: requests/s the deployment must serve."""
        rate = x["rate"]
        P, I, O, S, A, cv2, tpot_t, ttft_t = (w[k] for k in ("P", "I", "O", "S", "A", "cv2", "tpot", "ttft"))
        T = w["max_batched_tokens"]
        # a step's prompt tokens within its token budget too; without chunked prefill, whole prompts up to it
        C = jnp.where(w["chunked"] > 0, jnp.minimum(x["chunk"], T),
                      jnp.where(T < _INF, T, jnp.maximum(x["chunk"], w["longest"])))
        q = 1.0 + x["draft_length"]  # tokens a decoding sequence puts in a step
        E = serving.raw(x | {"batch": 1.0, "prefill_tokens": 0.0, "context": S, "prefill_position": 0.0,
                             "steps": 1.0})["tokens_per_step"]
        E = E * jnp.ones_like(C)
        D = jnp.maximum(O - 1.0, 0.0) / E
        mem = decode.raw(x | {"batch": 1.0, "context": w["S_kv"]})
        fits0 = ((mem["memory_bytes_per_chip"] <= mem["usable_bytes_per_chip"]) & (mem["max_batch"] >= 1.0)
                 & ((w["chunked"] > 0) | (w["longest"] <= T)))
        cap = jnp.minimum(mem["max_batch"], w["max_seqs"])  # the KV cache that fits, or the engine's cap
        k_p = jnp.ceil(P / C - 1e-9)
        x_cap = jnp.minimum(jnp.minimum(C / P, T / (P + q * D)),
                            jnp.where(D > 0, jnp.maximum(cap, 1.0) / jnp.where(D > 0, D, 1.0), _INF))
        # cm.serve's largest sustainable rate: the prompt queue stays stable with every step at the
        # running batch prefilling the whole units (a prompt, or 1/k_p of one) within C
        unit = P / k_p

        def room(B):
            """Prompt tokens a step at batch ``B`` may take: decodes first within the token budget."""
            return jnp.clip(T - q * B, 1.0, C)

        def lam_cap(B):
            # at least one unit a step, as cm.serve's chain
            c_full = jnp.maximum(jnp.minimum(jnp.floor(room(B) / unit + 1e-9), Q_LIMIT), 1.0) * unit
            return c_full / (P * step(x, xd, jnp.maximum(B, 1.0), c_full, S, A))

        def at(X):
            B = X * D
            c1 = jnp.minimum(room(B), P * jnp.maximum(1.0, X))
            f = X * P / c1
            t1, t0 = step(x, xd, B, c1, S, A), step(x, xd, B, 0.0, S, A)
            tau = f * t1 + (1 - f) * t0
            lam = X / tau
            sq = f * t1**2 + (1 - f) * t0**2
            busy = 1 - jnp.exp(-lam * (k_p * t1 + D * tau))
            svc = P / C * t1
            rho = lam * svc
            wait = jnp.where(rho < 1, (1 + cv2) / 2 * rho / jnp.maximum(1 - rho, 1e-30) * svc, _INF)
            ttft = busy * sq / (2 * tau) + wait + k_p * t1
            return {"tau": tau, "tpot": tau / E, "ttft": ttft, "lam": lam, "batch": B, "chunk_fraction": f,
                    "lam_cap": lam_cap(B)}

        def ok(X):
            m = at(X)
            return (m["tpot"] <= tpot_t) & (m["ttft"] <= ttft_t) & (X <= x_cap) & (m["lam"] < m["lam_cap"])

        lo = x_cap * 1e-9
        idle = at(lo)
        excess = (jnp.maximum(jnp.log(mem["memory_bytes_per_chip"] / mem["usable_bytes_per_chip"]), 0.0)
                  + jnp.maximum(jnp.log(idle["tpot"] / tpot_t), 0.0) + jnp.maximum(jnp.log(idle["ttft"] / ttft_t), 0.0))
        best = _bisect_last(ok, lo, x_cap * (1 + 1e-12))
        best = jnp.minimum(best, x_cap)
        feasible = fits0 & ok(lo)
        top = at(best)
        goodput = top["lam"]
        reps = jnp.maximum(jnp.ceil(rate / goodput * (1 + 1e-9)), 1.0)
        X = _bisect_root(lambda X: at(X)["lam"], rate / reps, 0.0, best)
        op = at(X)
        c_op = jnp.minimum(room(op["batch"]), P * jnp.maximum(1.0, X))
        # what stops a larger X (the binding constraint of the replica): checked just past it
        nxt_x = best * (1 + 1e-3)
        nxt = at(nxt_x)
        return {"feasible": feasible, "violation": excess, "goodput_per_s": goodput, "replicas": reps,
                "ttft_s": op["ttft"],
                "tpot_s": op["tpot"], "batch": op["batch"], "max_batch": cap, "x_cap": x_cap, "x_best": best,
                "stop_tpot": nxt["tpot"] > tpot_t, "stop_ttft": nxt["ttft"] > ttft_t,
                "stop_memory": (best >= x_cap * (1 - 1e-6)) & (D * x_cap >= cap * (1 - 1e-6)),
                "stop_demand": (nxt["lam"] >= nxt["lam_cap"]) | (nxt_x > x_cap),
                "tokens_per_step": E,
                "memory_bytes_per_chip": decode.raw(x | {"batch": jnp.maximum(op["batch"], 1.0),
                                                         "context": w["S_kv"]})["memory_bytes_per_chip"],
                **_busy(serving, x, op["batch"], c_op, S, A, op["chunk_fraction"])}

    return run


def _workload(problem: ServingProblem, ttft_s, tpot_s) -> dict[str, float]:
    r = problem.requests
    sch = problem.scheduler
    return {"P": r.prefill_tokens, "I": r.input_tokens, "O": r.output_tokens, "S": r.input_tokens + r.output_tokens / 2,
            "A": r.input_tokens * (1 + r.prefix_hit) / 2, "cv2": r.prefill_tokens_cv2,
            "tpot": _INF if tpot_s is None else tpot_s, "ttft": _INF if ttft_s is None else ttft_s,
            # the engine's rules (§19.9): the context a sequence's KV cache holds, the caps
            "S_kv": sch.kv_context(r.input_tokens, r.output_tokens),
            "max_seqs": _INF if sch.max_seqs is None else float(sch.max_seqs),
            "max_batched_tokens": _INF if sch.max_batched_tokens is None else float(sch.max_batched_tokens),
            "chunked": 1.0 if sch.chunked_prefill else 0.0,
            "longest": r.longest_prefill_tokens}


def _rate(problem: ServingProblem, rate_per_s, splits: np.ndarray):
    """The rate each candidate serves: the problem's, a given one, or with ``rate_per_s=("spread", budget)``
    the problem's rate spread over as many replicas as ``budget`` chips hold (the lightest load)."""
    if rate_per_s is None:
        return problem.rate_per_s
    if isinstance(rate_per_s, tuple) and rate_per_s[0] == "spread":
        return problem.rate_per_s / np.maximum(rate_per_s[1] // splits.prod(axis=1), 1)
    return rate_per_s


def _unpad(out: dict, n: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[:n] for k, v in out.items()}


def aggregated_table(problem: ServingProblem, splits: np.ndarray, prec: np.ndarray, chunk: np.ndarray,
                     attention: str, spec_index: int, *, ttft_s=..., tpot_s=..., rate_per_s=None
                     ) -> dict[str, np.ndarray]:
    """Aggregated candidates of one attention sharding and speculation option: the fewest replicas that
    meet the targets at the rate, and the figures there (arrays, one entry per candidate)."""
    ttft_s = problem.ttft_s if ttft_s is ... else ttft_s
    tpot_s = problem.tpot_s if tpot_s is ... else tpot_s
    splits = np.asarray(splits, dtype=np.int64).reshape(-1, 3)
    rate = _rate(problem, rate_per_s, splits)
    n = len(splits)
    if n == 0:
        return {}
    spec = problem.specs[spec_index]
    x = _inputs(problem, problem.decode_base, splits, prec)
    x.update(rate=np.broadcast_to(np.asarray(rate, dtype=float), (n,)), chunk=np.asarray(chunk, dtype=float),
             draft_length=np.full(n, float(spec.length) if spec else 0.0),
             acceptance=np.full(n, spec.acceptance if spec else 0.0))
    xd, draft_ok = _draft_inputs(problem, spec, splits, prec)
    fn = _aggregated_fn(problem.model.structure, problem.rules(attention), _draft_kind(spec), problem.model.n_layers)
    out = _unpad(fn(_pad(x, n), _pad(xd, n) if xd else {}, _workload(problem, ttft_s, tpot_s)), n)
    out["feasible"] = out["feasible"] & draft_ok & np.isfinite(out["goodput_per_s"]) & (out["goodput_per_s"] > 0)
    per = splits.prod(axis=1)
    out["chips_per_replica"] = per
    out["chips"] = per * out["replicas"]
    out["meets"] = out["feasible"].copy()
    out["feasible"] &= out["chips"] <= problem.max_chips
    _priced(problem, out, out["chips"], problem.board_watts(out["compute_s"], out["memory_s"], out["busy_step_s"]))
    return out


def _priced(problem: ServingProblem, out: dict, chips, board_w) -> None:
    """Add a pool's ``usd_per_hour`` (its chips at the chip's price), ``watts`` (boards at ``board_w`` per chip
    and hosts; NaN unless the objective counts power) and ``objective`` (:meth:`ServingProblem.objective_value`)
    to ``out``."""
    out["usd_per_hour"] = chips * problem.usd_per_chip_hour
    out["watts"] = chips * (board_w + problem.host_watts)
    out["objective"] = problem.objective_value(out["usd_per_hour"], out["watts"])


@functools.cache
def _decode_fn(structure, rules: Rules, draft, n_layers: int) -> CachedJit:
    """The jitted decode-pool table, its traced program kept on disk (:class:`costmodel.cache.CachedJit`)."""
    return CachedJit(("serving_decode", repr(structure), repr(rules), repr(draft), str(n_layers)),
                     functools.partial(_decode_run, structure, rules, draft, n_layers))


def _decode_run(structure, rules: Rules, draft, n_layers: int):
    step, serving = _step_fn(structure, rules, draft, n_layers)
    decode = compiled(structure, rules)

    def run(x, xd, w):
        rate = x["rate"]
        O, S, tpot_t = w["O"], w["S"], w["tpot"]
        E = serving.raw(x | {"batch": 1.0, "prefill_tokens": 0.0, "context": S, "prefill_position": 0.0,
                             "steps": 1.0})["tokens_per_step"] * jnp.ones_like(x["tp"])
        D = jnp.maximum(O - 1.0, 0.0) / E
        mem = decode.raw(x | {"batch": 1.0, "context": w["S_kv"]})
        fits0 = (mem["memory_bytes_per_chip"] <= mem["usable_bytes_per_chip"]) & (mem["max_batch"] >= 1.0)
        # the KV cache that fits, the engine's sequence cap, a step's tokens within its budget
        cap = jnp.minimum(jnp.minimum(mem["max_batch"], w["max_seqs"]),
                          w["max_batched_tokens"] / (1.0 + x["draft_length"]))

        def tau(B):
            return step(x, xd, B, 0.0, S, 0.0)

        best = _bisect_last(lambda B: tau(B) / E <= tpot_t, jnp.zeros_like(cap), cap)
        t_idle = tau(jnp.minimum(1.0, jnp.maximum(cap, 1e-9))) / E
        feasible = fits0 & (t_idle <= tpot_t)
        excess = (jnp.maximum(jnp.log(mem["memory_bytes_per_chip"] / mem["usable_bytes_per_chip"]), 0.0)
                  + jnp.maximum(jnp.log(t_idle / tpot_t), 0.0))
        best = jnp.where(D > 0, jnp.maximum(best, 1e-9), best)
        goodput = jnp.where(D > 0, best / (jnp.where(D > 0, D, 1.0) * tau(best)), _INF)
        reps = jnp.where(D > 0, jnp.maximum(jnp.ceil(rate / goodput * (1 + 1e-9)), 1.0), 1.0)
        B = jnp.where(D > 0, _bisect_root(lambda b: b / (D * tau(b)), rate / reps, 0.0, best), 0.0)
        t = tau(jnp.maximum(B, 1e-12))
        kv = decode.raw(x | {"batch": 1.0, "context": S})["kv_bytes_per_token"]
        busy = _busy(serving, x, B, 0.0, S, 0.0)
        return {**busy, "feasible": feasible, "violation": excess, "goodput_per_s": goodput, "replicas": reps,
                "batch": B,
                "tpot_s": jnp.where(D > 0, t / E, 0.0), "max_batch": cap, "best_batch": best,
                "stop_memory": best >= cap * (1 - 1e-6), "kv_bytes_per_token": kv * jnp.ones_like(cap),
                "memory_bytes_per_chip": decode.raw(x | {"batch": jnp.maximum(B, 1.0), "context": w["S_kv"]})[
                    "memory_bytes_per_chip"]}

    return run


def decode_table(problem: ServingProblem, splits: np.ndarray, prec: np.ndarray, spec_index: int, *,
                 tpot_s=..., rate_per_s=None) -> dict[str, np.ndarray]:
    """Decode-pool candidates: goodput per replica within TPOT and memory, the fewest replicas, the figures."""
    tpot_s = problem.tpot_s if tpot_s is ... else tpot_s
    splits = np.asarray(splits, dtype=np.int64).reshape(-1, 3)
    rate = _rate(problem, rate_per_s, splits)
    n = len(splits)
    if n == 0:
        return {}
    spec = problem.specs[spec_index]
    x = _inputs(problem, problem.decode_base, splits, prec)
    x.update(rate=np.broadcast_to(np.asarray(rate, dtype=float), (n,)),
             draft_length=np.full(n, float(spec.length) if spec else 0.0),
             acceptance=np.full(n, spec.acceptance if spec else 0.0))
    xd, draft_ok = _draft_inputs(problem, spec, splits, prec)
    fn = _decode_fn(problem.model.structure, problem.rules(), _draft_kind(spec), problem.model.n_layers)
    out = _unpad(fn(_pad(x, n), _pad(xd, n) if xd else {}, _workload(problem, None, tpot_s)), n)
    out["feasible"] = out["feasible"] & draft_ok
    out["chips_per_replica"] = splits.prod(axis=1)
    _priced(problem, out, out["replicas"] * out["chips_per_replica"],
            problem.board_watts(out["compute_s"], out["memory_s"], out["busy_step_s"]))
    return out


@functools.cache
def _prefill_fn(structure, rules: Rules) -> CachedJit:
    """The jitted prefill-pool table, its traced program kept on disk (:class:`costmodel.cache.CachedJit`)."""
    return CachedJit(("serving_prefill", repr(structure), repr(rules)), functools.partial(_prefill_run, structure, rules))


def _prefill_run(structure, rules: Rules):
    prefill = compiled(structure, dataclasses.replace(rules, phase="prefill"))

    def run(x, P):
        out = prefill.raw(x | {"batch": x["prefill_batch"], "prompt": P})
        return {"prefill_time_s": out["step_time_s"], "compute_s": out["compute_s"],
                "memory_s": out["weights_s"] + out["kv_s"],
                "fits": out["memory_bytes_per_chip"] <= out["usable_bytes_per_chip"],
                "memory_excess": jnp.maximum(jnp.log(out["memory_bytes_per_chip"] / out["usable_bytes_per_chip"]), 0.0)}

    return run


def prefill_table(problem: ServingProblem, splits: np.ndarray, prec: np.ndarray, prefill_batch: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Prefill-pool candidates: the time of one prefill of ``b_p`` prompts and whether it fits."""
    splits = np.asarray(splits, dtype=np.int64).reshape(-1, 3)
    n = len(splits)
    if n == 0:
        return {}
    x = _inputs(problem, problem.prefill_base, splits, prec)
    x["prefill_batch"] = np.asarray(prefill_batch, dtype=float)
    out = _unpad(_prefill_fn(problem.model.structure, problem.rules())(_pad(x, n), problem.prefill_tokens), n)
    out["chips_per_replica"] = splits.prod(axis=1)
    return out


def link_bytes_per_s(problem: ServingProblem, n_p, n_d, prefill: ServingProblem | None = None):
    """Bytes/s of one KV hand-over (``serving.disaggregated.link_bytes_per_s`` on arrays); ``prefill``: the
    problem on the prefill pool's chip when it is another chip than ``problem``'s (the decode pool's): the
    two share no scale-up domain, and the KV crosses the slower of their scale-out links."""
    hw = problem.hardware
    if prefill is not None and prefill.hardware.name != hw.name:
        return min(hw.scale_out_bytes_per_s, prefill.hardware.scale_out_bytes_per_s) * np.minimum(n_p, n_d)
    per_chip = np.where(np.asarray(n_p) + np.asarray(n_d) <= hw.scale_up_domain_chips, hw.scale_up_bytes_per_s,
                        hw.scale_out_bytes_per_s)
    return per_chip * np.minimum(n_p, n_d)


def pair_table(problem: ServingProblem, pre: dict, dec: dict, b_p, *, ttft_s=..., rate_per_s=None,
               prefill: ServingProblem | None = None) -> dict[str, np.ndarray]:
    """Prefill x decode candidates (arrays broadcast against each other): the fewest prefill replicas
    meeting TTFT at the rate, the chips of both pools and the deployment's TTFT.

    ``problem`` is the decode pool's; ``prefill``, the problem on the prefill pool's chip for a pair of
    chips (:mod:`.pairs`): the link is the pair's, and ``cost`` (USD per hour, each pool at its chip's
    price) is added."""
    ttft_s = problem.ttft_s if ttft_s is ... else ttft_s
    rate = problem.rate_per_s if rate_per_s is None else rate_per_s
    I, cv2 = problem.requests.input_tokens, problem.requests.prefill_tokens_cv2
    n_p, n_d = pre["chips_per_replica"], dec["chips_per_replica"]
    t_pf = pre["prefill_time_s"]
    t_kv = I * dec["kv_bytes_per_token"] / link_bytes_per_s(problem, n_p, n_d, prefill)
    base = t_pf + t_kv
    svc = t_pf / b_p
    k = (1 + cv2) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        if ttft_s is None:
            rho = np.full(np.broadcast(base, svc).shape, 1 - 1e-9)
        else:
            q = (ttft_s - base) / (k * svc) if k > 0 else np.where(ttft_s >= base, np.inf, -1.0)
            rho = np.where(q > 0, np.where(np.isinf(q), 1 - 1e-9, q / (1 + q)), 0.0)
            rho = np.minimum(rho, 1 - 1e-9)
        goodput = rho / svc
        r_p = np.maximum(np.ceil(rate / goodput * (1 + 1e-9)), 1.0)
        rho_op = rate / r_p * svc
        wait = np.where(rho_op < 1, k * rho_op / (1 - rho_op) * svc, np.inf)
    ttft = wait + base
    feasible = (pre["fits"] & dec["feasible"] & (rho > 0) & np.isfinite(r_p)) & (rho_op < 1)
    if ttft_s is not None:
        feasible &= ttft <= ttft_s * (1 + 1e-9)
    r_p = np.where(np.isfinite(r_p), r_p, 1e18)
    chips = r_p * n_p + dec["replicas"] * n_d
    meets = feasible.copy()
    feasible &= chips <= problem.max_chips
    with np.errstate(divide="ignore", invalid="ignore"):
        late = np.maximum(np.log(base / ttft_s), 0.0) if ttft_s is not None else 0.0
    violation = dec["violation"] + pre["memory_excess"] + late
    out = {"feasible": feasible, "meets": meets, "violation": violation + 0.0 * chips, "prefill_replicas": r_p,
           "chips": chips, "ttft_s": ttft, "kv_transfer_s": t_kv,
           "prefill_goodput_per_s": goodput, "stop_ttft": np.broadcast_to(ttft_s is not None, np.shape(chips))}
    # each pool at its chip's price; the prefill pool busy a fraction rho_op of the time (docs/theory.md §21)
    on_pre = problem if prefill is None else prefill
    out["usd_per_hour"] = pool_usd_per_hour(r_p * n_p, on_pre.usd_per_chip_hour, dec["replicas"] * n_d,
                                            problem.usd_per_chip_hour)
    busy = np.where(np.isfinite(rho_op), rho_op, 1.0)
    board = on_pre.board_watts(pre["compute_s"], pre["memory_s"], pre["prefill_time_s"], busy)
    out["watts"] = r_p * n_p * (board + on_pre.host_watts) + dec["watts"]
    out["objective"] = problem.objective_value(out["usd_per_hour"], out["watts"])
    return out

