"""The exact model on arrays of candidate configurations.

Every candidate is (tp, pp, ep, batch, precision index); the compiled decode
and prefill functions broadcast over them elementwise, so thousands of
candidates cost one fused XLA call. Replicas follow from the demand: the
fewest replicas whose combined throughput meets it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..cache import CachedJit
from ..compile import compiled
from ..config import Parallel
from ..symbolic import fits_in_memory, usd_per_mtok, usd_per_mtok_energy
from .problem import MAX_BATCH, Problem

__all__ = ["candidate_inputs", "exact_metrics", "largest_feasible_batch", "Metrics"]

BISECTION_STEPS = int(np.ceil(np.log2(MAX_BATCH + 2)))
#: step-time terms carried with every candidate (seconds)
BREAKDOWN = ("compute_s", "weights_s", "kv_s", "communication_s", "overhead_s", "mfu")

Metrics = dict[str, np.ndarray]


def split_inputs(problem: Problem, splits: np.ndarray) -> dict[str, np.ndarray]:
    """Every model input of each (tp, pp, ep) split, as the scenario derives it (e.g. the torus mesh
    a tensor-parallel group forms), one row per split."""
    uniq, inverse = np.unique(np.asarray(splits, dtype=np.int64).reshape(-1, 3), axis=0, return_inverse=True)
    rows = [_split_row(problem.base, tuple(int(v) for v in u)) for u in uniq]
    return {k: np.array([r[k] for r in rows])[inverse.reshape(-1)] for k in rows[0]}


@functools.lru_cache(maxsize=4096)
def _split_row(base, split: tuple[int, int, int]) -> dict[str, float]:
    tp, pp, ep = split
    return dataclasses.replace(base, parallel=Parallel(tp=tp, pp=pp, ep=ep)).inputs()


def candidate_inputs(problem: Problem, tp, pp, ep, batch, prec) -> dict:
    """Model inputs for candidates given as broadcastable numpy arrays (``prec`` indexes ``problem.precisions``)."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in (tp, pp, ep, batch, prec)))
    splits = np.stack([np.broadcast_to(np.asarray(a), shape).reshape(-1) for a in (tp, pp, ep)], axis=1)
    x = {k: np.asarray(v.reshape(shape), dtype=float) for k, v in split_inputs(problem, splits).items()}
    x.update(batch=np.asarray(np.broadcast_to(batch, shape), dtype=float), replicas=np.ones(shape))
    prec = np.broadcast_to(np.asarray(prec, dtype=np.int64), shape)
    for k, table in problem.precision_inputs().items():
        x[k] = np.asarray(table[prec], dtype=float)
    return x


def _bucket(n: int) -> int:
    """Pad candidate counts to powers of two (at least 512) so shapes, and compilations, repeat:
    a local search's candidate sets all fit the smallest bucket."""
    return max(512, 1 << max(n - 1, 0).bit_length())


@functools.cache
def _fns(problem_key):
    """Jitted exact metrics and the jitted largest-feasible-batch search for one structure, their
    traced programs kept on disk (:class:`costmodel.cache.CachedJit`)."""
    structure, rules = problem_key
    key = (repr(structure), repr(rules))
    # the batch search runs on a few hundred candidates: compile fast rather than run fast
    return (CachedJit(("metrics",) + key, lambda: _functions(structure, rules)[0]),
            CachedJit(("largest_batch",) + key, lambda: _functions(structure, rules)[1],
                      compiler_options={"xla_backend_optimization_level": 0}))


@functools.cache
def _functions(structure, rules):
    """Exact metrics and the largest-feasible-batch search (plain functions, to jit)."""
    decode = compiled(structure, rules)
    prefill = compiled(structure, dataclasses.replace(rules, phase="prefill"))

    def decode_with_slopes(x):
        """Decode outputs and their derivatives in the batch (forward mode), for shadow prices."""
        return jax.jvp(lambda b: decode.raw(x | {"batch": b}), (x["batch"],), (jnp.ones_like(x["batch"]),))

    def metrics(x, tpot, ttft_target, max_chips, demand):
        d, slope = decode_with_slopes(x)
        step = d["step_time_s"]
        ttft = prefill.raw(x | {"batch": jnp.ones_like(x["batch"])})["step_time_s"] + step
        per_replica_tps = d["tokens_per_s"]  # replicas=1 in x
        replicas = jnp.maximum(jnp.where(demand > 0, jnp.ceil(demand / per_replica_tps - 1e-9), 1.0), 1.0)
        chips = d["chips_per_replica"] * replicas
        served = jnp.where(demand > 0, demand, per_replica_tps)
        watts = d["power_w_per_chip"] + x["host_power_w"]
        at_demand = (usd_per_mtok(chips, x["usd_per_chip_hour"], served)
                     + x["owned"] * usd_per_mtok_energy(chips, watts, x["pue"], x["usd_per_kwh"], served))
        cost = jnp.where(demand > 0, at_demand, d["usd_per_mtok"])
        joules = jnp.where(demand > 0, chips * watts / served, d["joules_per_token"])
        fits = fits_in_memory(d)
        ok_tpot, ok_ttft, ok_chips = step <= tpot, ttft <= ttft_target, chips <= max_chips
        shape = jnp.shape(x["batch"])
        out = {
            "step_time_s": step, "ttft_s": ttft, "usd_per_mtok": cost, "replicas": replicas,
            "joules_per_token": joules, "power_w_per_chip": d["power_w_per_chip"],
            "chips": chips, "tokens_per_s": per_replica_tps * replicas, "fits": fits,
            "ok_tpot": ok_tpot, "ok_ttft": ok_ttft, "ok_chips": ok_chips,
            "feasible": fits & ok_tpot & ok_ttft & ok_chips,
            "memory_bytes_per_chip": d["memory_bytes_per_chip"],
            "usable_bytes_per_chip": d["usable_bytes_per_chip"], "max_batch": d["max_batch"],
            "dcost_dbatch": slope["usd_per_mtok"], "dstep_dbatch": slope["step_time_s"],
        }
        out.update({k: d[k] for k in BREAKDOWN})
        return {k: jnp.broadcast_to(v, shape) for k, v in out.items()}

    def largest_batch(x, *limits):
        """Bisection on m (batch = pp·m) for the largest batch meeting TPOT, TTFT and memory."""
        pp = x["pp"]
        lo, hi = jnp.zeros_like(pp), jnp.floor(MAX_BATCH / pp) + 1

        def body(_, bounds):
            lo, hi = bounds
            mid = jnp.floor((lo + hi) / 2)
            m = metrics(x | {"batch": jnp.maximum(mid, 1.0) * pp}, *limits)
            ok = m["ok_tpot"] & m["ok_ttft"] & m["fits"] & (hi - lo > 1)
            return jnp.where(ok, mid, lo), jnp.where(ok | (hi - lo <= 1), hi, mid)

        lo, _ = jax.lax.fori_loop(0, BISECTION_STEPS, body, (lo, hi))
        batch = lo * pp
        out = metrics(x | {"batch": jnp.maximum(batch, pp)}, *limits)
        nxt = metrics(x | {"batch": batch + pp}, *limits)  # what stops a larger batch
        out.update({f"next_{k}": nxt[k] for k in ("ok_tpot", "ok_ttft", "fits")})
        return batch, out

    return metrics, largest_batch


def _limits(problem: Problem, tpot_s: float | None):
    tpot = problem.tpot_s if tpot_s is None else tpot_s
    ttft = problem.ttft_s if problem.ttft_s is not None else np.inf
    return tpot, ttft, float(problem.max_chips), problem.demand_tokens_per_s or 0.0


def _padded_inputs(problem: Problem, tp, pp, ep, batch, prec):
    shape = np.broadcast_shapes(*(np.shape(a) for a in (tp, pp, ep, batch, prec)))
    n = int(np.prod(shape))
    size = _bucket(n)
    cols = []
    for a in (tp, pp, ep, batch, prec):
        flat = np.broadcast_to(np.asarray(a), shape).reshape(-1)
        cols.append(np.concatenate([flat, np.repeat(flat[-1:], size - n)]) if n else np.ones(size))
    return candidate_inputs(problem, *cols), shape, n


def _key(problem: Problem):
    return problem.model.structure, problem.rules


def exact_metrics(problem: Problem, tp, pp, ep, batch, prec, *, tpot_s: float | None = None) -> Metrics:
    """Exact metrics and constraint flags of candidates; ``tpot_s`` overrides the problem's target."""
    x, shape, n = _padded_inputs(problem, tp, pp, ep, batch, prec)
    out = _fns(_key(problem))[0](x, *_limits(problem, tpot_s))
    return {k: np.asarray(v)[:n].reshape(shape) for k, v in out.items()}


def largest_feasible_batch(problem: Problem, splits: np.ndarray, prec: np.ndarray,
                           tpot_s: float | None = None) -> tuple[np.ndarray, Metrics]:
    """For each split and precision, the largest batch (a multiple of pp) meeting TPOT, TTFT and
    memory (0 if none does), and the exact metrics there. One jitted call."""
    tp, pp, ep = (splits[:, i] for i in range(3))
    x, shape, n = _padded_inputs(problem, tp, pp, ep, pp, prec)
    batch, m = _fns(_key(problem))[1](x, *_limits(problem, tpot_s))
    return np.asarray(batch)[:n], {k: np.asarray(v)[:n] for k, v in m.items()}
