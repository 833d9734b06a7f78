"""Validity of a parallel split against a model and a chip.

Each rule raises a :class:`~costmodel.errors.ConfigError` that names the valid
degrees, e.g. ``tp=6 must divide 64 heads; valid: 1, 2, 4, 8, 16, 32, 64``.
"""

from __future__ import annotations

import functools
import math

from .config import Parallel
from .errors import ConfigError
from .specs import HardwareSpec, ModelSpec

__all__ = ["divisors", "check_parallel", "valid_degrees", "default_mesh", "mesh_of"]


def divisors(n: int) -> list[int]:
    """All positive divisors of ``n``, ascending: the pairs ``(d, n/d)`` with ``d <= √n`` for a model's
    sizes, :func:`sympy.divisors` (which factorises) past ``TRIAL_DIVISION_LIMIT``."""
    return list(_divisors(int(n)))


#: Largest ``n`` whose divisors are found by trying each ``d <= √n`` (10^4 tries); SymPy factorises larger ones.
TRIAL_DIVISION_LIMIT = 10**8


@functools.lru_cache(maxsize=1024)
def _divisors(n: int) -> tuple[int, ...]:
    if 1 <= n <= TRIAL_DIVISION_LIMIT:
        low = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
        return tuple(sorted(set(low) | {n // d for d in low}))
    import sympy  # huge (or non-positive) numbers: SymPy's factorisation

    return tuple(int(d) for d in sympy.divisors(n))


def valid_degrees(model: ModelSpec, redundant_experts: int = 0) -> dict[str, list[int]]:
    """The admissible tp, pp and ep degrees of ``model``.

    tp divides the query heads (KV heads are replicated past ``n_kv_heads``),
    pp divides the layers, ep divides the routed experts and their redundant copies (1 for dense models).
    """
    return {
        "tp": divisors(model.n_heads),
        "pp": divisors(model.n_layers),
        "ep": divisors(model.n_experts + redundant_experts) if model.mlp == "moe" else [1],
    }


def check_parallel(model: ModelSpec, parallel: Parallel, layout: str = "1d-ws",
                   mesh: tuple[int, int, int] | None = None) -> None:
    """Raise a :class:`ConfigError` if ``parallel`` cannot split ``model`` under ``layout``.

    1D weight-stationary shards the heads over all ``tp`` chips, so ``tp`` divides them. The 2D
    and weight-gathered layouts shard the heads over the ``Y·Z`` part of the ``X×Y×Z`` mesh only
    (weights ``E_x F_yz``, Pope et al. 2022 section 3.2; docs/theory.md §13.2): PaLM 540B's 48 heads
    on 64 chips as 4×4×4 are 3 per ``yz`` group.
    """
    if parallel.redundant_experts and model.mlp != "moe":
        raise ConfigError(f"redundant_experts={parallel.redundant_experts} needs routed experts; {model.name} is dense")
    if parallel.expert_imbalance != 1 and model.mlp != "moe":
        raise ConfigError(f"expert_imbalance={parallel.expert_imbalance:g} needs routed experts; {model.name} is dense")
    valid = valid_degrees(model, parallel.redundant_experts)
    if layout != "1d-ws" and mesh is not None and parallel.tp > 1:
        yz = mesh[1] * mesh[2]
        if model.n_heads % yz:
            raise ConfigError(f"tp={parallel.tp} on mesh {'x'.join(map(str, mesh))} with layout {layout} shards "
                              f"{model.n_heads} heads of {model.name} over Y*Z = {yz} chips; Y*Z must divide "
                              f"the heads (divisors: {', '.join(map(str, divisors(model.n_heads)))})")
        valid = {**valid, "tp": [parallel.tp]}
    what = {"tp": f"{model.n_heads} heads", "pp": f"{model.n_layers} layers",
            "ep": (f"{model.n_experts} experts" + (f" + {parallel.redundant_experts} redundant"
                                                     if parallel.redundant_experts else ""))
            if model.mlp == "moe" else "a dense model (no experts)"}
    for name, allowed in valid.items():
        v = getattr(parallel, name)
        if v not in allowed:
            verb = "must divide" if model.mlp == "moe" or name != "ep" else "must be 1 for"
            raise ConfigError(
                f"{name}={v} {verb} {what[name]} of {model.name}; valid: {', '.join(map(str, allowed))}"
            )


def default_mesh(tp: int, dims: int) -> tuple[int, int, int]:
    """The most balanced ``(X, Y, Z)`` with ``X·Y·Z = tp`` over ``dims`` axes, smallest first.

    Balanced means the longest axis is as short as possible (fewest hops, most
    axes busy); unused axes are 1. ``default_mesh(64, 3) == (4, 4, 4)`` (TPU v4,
    [E]), ``default_mesh(16, 2) == (4, 4, 1)``, ``default_mesh(8, 2) == (2, 4, 1)``.
    """
    dims = max(1, min(3, dims))
    meshes = {tuple(sorted((x, y, tp // (x * y)))) for x in divisors(tp) for y in divisors(tp // x)}
    fitting = [m for m in meshes if sum(a > 1 for a in m) <= dims]
    best = min(fitting, key=lambda m: (max(m), -min(m), m))
    ones = tuple(a for a in best if a == 1)
    x, y, z = tuple(a for a in best if a > 1) + ones
    return x, y, z


def mesh_of(parallel: Parallel, hardware: HardwareSpec) -> tuple[int, int, int]:
    """The ``(X, Y, Z)`` tensor-parallel mesh of ``parallel`` on ``hardware``.

    The explicit ``parallel.mesh`` padded with 1s, or :func:`default_mesh` over
    the chip's torus axes (switched fabrics: 2 logical axes, enough for the 2D layout).
    """
    if parallel.mesh is not None:
        m = tuple(parallel.mesh) + (1,) * (3 - len(parallel.mesh))
        return m[0], m[1], m[2]
    dims = hardware.torus_dims if hardware.topology == "torus" and hardware.torus_dims else 2
    return default_mesh(parallel.tp, dims)
