r"""The gradient path: a smooth relaxation solved by an augmented Lagrangian with optax.

Variables are logarithms, ``u = (log B, log tp, log pp, log ep)``, boxed by the
admissible ranges. The objective is ``log`` of USD per million tokens (or of
the step time when searching for the fastest configuration); constraints are
written ``g(u) = log(value/limit) <= 0``:

.. math::
    \mathcal{L}(u, λ, μ) = f(u) + \sum_i \frac{μ}{2}\max\left(0, g_i(u) + \frac{λ_i}{μ}\right)^2

Each outer round minimises :math:`\mathcal{L}` plus a growing penalty on the
log-distance of tp, pp and ep to their admissible values with Adam, then updates
:math:`λ_i \leftarrow \max(0, λ_i + μ g_i)`, doubles :math:`μ`, and sharpens
the relaxation (:mod:`costmodel.relax`). Eight starts for every allowed
precision run side by side as rows of one array; all of it is one jitted call.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..cache import CachedJit
from ..relax import SHARPNESS, relaxed
from .exact import split_inputs
from .problem import MAX_BATCH, OBJECTIVE_KEYS, Problem

__all__ = ["relaxed_solve", "RelaxedResult"]

SHARPNESS_SCHEDULE = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
#: weight of the lattice penalty per outer round: zero while the relaxation explores, then rising so
#: that tp, pp and ep settle on admissible values (a homotopy from continuous to discrete)
LATTICE_SCHEDULE = (0.0, 0.0, 0.0, 0.05, 0.2, 0.5, 1.0, 2.0)
LATTICE_SLOTS = 32
_COMPILE_OPTIONS = {"xla_backend_optimization_level": 1}
INNER_STEPS = 120
LEARNING_RATE = 0.08
N_CONSTRAINTS = 4  # tpot, ttft, memory, chips
_OUTPUTS = ("step_time_s", "usd_per_mtok", "joules_per_token", "memory_bytes_per_chip", "usable_bytes_per_chip",
            "chips_per_replica")


@dataclasses.dataclass(frozen=True)
class RelaxedResult:
    """Continuous solutions, one row per (precision, start).

    Attributes:
        u: log variables (rows, 4): log batch, log tp, log pp, log ep.
        prec: precision index of each row.
        objective: relaxed log objective at the solution.
        multipliers: final Lagrange multipliers (rows, 4) for tpot, ttft, memory, chips.
    """

    u: np.ndarray
    prec: np.ndarray
    objective: np.ndarray
    multipliers: np.ndarray


def _bounds(problem: Problem, max_chips: int) -> tuple[np.ndarray, np.ndarray]:
    deg = problem.degrees
    hi = [MAX_BATCH] + [min(max(deg[d]), max_chips) for d in ("tp", "pp", "ep")]
    return np.zeros(4), np.log(np.array(hi, dtype=float))


def _lattice(problem: Problem, max_chips: int) -> np.ndarray:
    """log of the admissible tp, pp, ep values, padded to a fixed width (3, LATTICE_SLOTS)."""
    rows = []
    for d in ("tp", "pp", "ep"):
        v = [x for x in problem.degrees[d] if x <= max_chips] or [1]
        rows.append(np.log(np.array((v * LATTICE_SLOTS)[:LATTICE_SLOTS] if len(v) < LATTICE_SLOTS else v[:LATTICE_SLOTS],
                                    dtype=float)))
    return np.stack(rows)


def _representative_inputs(problem: Problem, max_chips: int) -> dict[str, float]:
    """Inputs of a representative split, for the inputs the scenario derives from the split (such
    as the torus mesh): the widest tensor-parallel group inside one scale-up domain."""
    cap = min(max_chips, problem.hardware.scale_up_domain_chips)
    tp = max([t for t in problem.degrees["tp"] if t <= cap] or [1])
    return {k: float(v[0]) for k, v in split_inputs(problem, np.array([[tp, 1, 1]])).items()}


def _starts(lo: np.ndarray, hi: np.ndarray, max_chips: int) -> np.ndarray:
    """Eight spread starting points (not a search grid): the chip budget spent on no axis, on each of
    tp, pp and ep alone, on each pair, and on all three; the batch mid-range (log scale)."""
    budget = np.log(max_chips)
    shares = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                       [.5, .5, 0], [.5, 0, .5], [0, .5, .5], [1 / 3, 1 / 3, 1 / 3]])
    u = np.empty((len(shares), 4))
    u[:, 0] = 0.5 * (lo[0] + hi[0])
    u[:, 1:] = np.clip(shares * budget, lo[1:], hi[1:])
    return u


@functools.cache
def _solver(structure, rules, has_ttft: bool, objective: str) -> CachedJit:
    """The jitted solver, its traced program kept on disk (:class:`costmodel.cache.CachedJit`)."""
    # LLVM optimisation level 1: the loops run 3-5x faster than at level 0 for 1.3x the compile time
    # (once: the program is cached), and as fast as at the default level 2, which compiles longer
    return CachedJit(("solver", repr(structure), repr(rules), repr(has_ttft), objective),
                     functools.partial(_solve_function, structure, rules, has_ttft, objective),
                     compiler_options=_COMPILE_OPTIONS)


def _solve_function(structure, rules, has_ttft: bool, objective: str):
    """The solver. Rows (precision x start) are independent and solved side by side:
    every input is an array over rows and the model broadcasts elementwise, so the gradient of
    the summed Lagrangian is each row's own gradient (no vmap over the loops, which keeps
    tracing and compilation short)."""
    model = relaxed(structure, rules, _OUTPUTS)
    prefill = relaxed(structure, dataclasses.replace(rules, phase="prefill"), ("step_time_s",)) if has_ttft else None

    def terms(u, x, k, limits):
        tpot, ttft_max, max_chips, demand = limits
        z = x | {"batch": jnp.exp(u[:, 0]), "tp": jnp.exp(u[:, 1]), "pp": jnp.exp(u[:, 2]),
                 "ep": jnp.exp(u[:, 3]), SHARPNESS: k}
        d = model.raw(z)
        step = d["step_time_s"]
        ttft = step + (prefill.raw(z | {"batch": jnp.ones_like(step)})["step_time_s"] if prefill is not None else 0.0)
        # replicas = max(1, demand·step/B), smoothed; a safe demand keeps the unused branch's gradient finite
        safe_demand = jnp.where(demand > 0, demand, 1.0)
        log_reps = jnp.where(demand > 0, jax.nn.softplus(jnp.log(safe_demand * step / jnp.exp(u[:, 0])) * k) / k, 0.0)
        g = jnp.stack([
            jnp.log(step / tpot),
            jnp.where(ttft_max > 0, jnp.log(ttft / jnp.where(ttft_max > 0, ttft_max, 1.0)), -1.0),
            jnp.log(d["memory_bytes_per_chip"] / d["usable_bytes_per_chip"]),
            jnp.log(d["chips_per_replica"]) + log_reps - jnp.log(max_chips),
        ], axis=1)
        f = jnp.log(d[OBJECTIVE_KEYS.get(objective, "step_time_s")])
        return f, g

    def lattice_distance(u, lattice):
        """Squared log-distance of tp, pp, ep to their nearest admissible values (a smooth min)."""
        d2 = (u[:, 1:, None] - lattice[None]) ** 2  # rows, 3 dims, slots
        return jnp.sum(-jax.nn.logsumexp(-50.0 * d2, axis=2) / 50.0, axis=1)

    import optax  # only to build the solver: a cached program needs no optax

    def solve(u0, x, active, lo, hi, limits, lattice):
        opt = optax.adam(LEARNING_RATE)

        def outer(carry, schedule):
            u, lam, mu, _, _ = carry
            k, w_lattice = schedule

            def lagrangian(u):
                f, g = terms(u, x, k, limits)
                penalty = 0.5 * mu * jnp.sum(jnp.maximum(0.0, g + lam / mu) ** 2, axis=1)
                return jnp.sum(f + penalty + w_lattice * lattice_distance(u, lattice)), (f, g)

            def inner(state, _):
                u, s, _, _ = state
                (_, (f, g)), grad = jax.value_and_grad(lagrangian, has_aux=True)(u)
                upd, s = opt.update(grad * active, s)
                return (optax.projections.projection_box(optax.apply_updates(u, upd), lo, hi), s, f, g), None

            rows = u.shape[0]
            init = (u, opt.init(u), jnp.zeros(rows), jnp.zeros((rows, N_CONSTRAINTS)))
            (u, _, f, g), _ = jax.lax.scan(inner, init, None, length=INNER_STEPS)
            return (u, jnp.maximum(0.0, lam + mu * g), jnp.minimum(mu * 2.0, 1e4), f, g), None

        rows = u0.shape[0]
        init = (u0, jnp.zeros((rows, N_CONSTRAINTS)), 10.0, jnp.zeros(rows), jnp.zeros((rows, N_CONSTRAINTS)))
        schedule = (jnp.array(SHARPNESS_SCHEDULE), jnp.array(LATTICE_SCHEDULE))
        (u, lam, _, f, _), _ = jax.lax.scan(outer, init, schedule)
        return u, f, lam

    return solve


def relaxed_solve(problem: Problem, objective: str = "cost", *, max_chips: int | None = None) -> RelaxedResult:
    """Solve the relaxed problem from a few starts for every allowed precision.

    Args:
        problem: the problem.
        objective: ``"cost"`` (USD per Mtok), ``"energy"`` (joules per token) or ``"latency"`` (step time;
            the TPOT constraint is dropped).
        max_chips: override the chip budget (to ask what a larger budget would buy).
    """
    max_chips = max_chips or problem.max_chips
    lo, hi = _bounds(problem, max_chips)
    active = (hi > lo).astype(float)
    starts = _starts(lo, hi, max_chips)
    n_prec, n_starts = len(problem.precisions), len(starts)
    prec_idx = np.repeat(np.arange(n_prec), n_starts)
    # NumPy arrays go to the jitted solver as they are: no device programs to build them
    xs = {k: np.full(len(prec_idx), v, dtype=float) for k, v in _representative_inputs(problem, max_chips).items()}
    xs.update({k: np.asarray(v[prec_idx], dtype=float) for k, v in problem.precision_inputs().items()})
    tpot = 1e9 if objective == "latency" else problem.tpot_s
    limits = (tpot, problem.ttft_s or 0.0, float(max_chips), problem.demand_tokens_per_s or 0.0)
    solver = _solver(problem.model.structure, problem.rules, problem.ttft_s is not None, objective)
    u, f, lam = solver(np.tile(starts, (n_prec, 1)), xs, active, lo, hi, tuple(np.asarray(v, dtype=float) for v in limits),
                       _lattice(problem, max_chips))
    return RelaxedResult(u=np.asarray(u), prec=prec_idx, objective=np.asarray(f), multipliers=np.asarray(lam))
