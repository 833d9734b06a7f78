"""Validity of a parallel split against a model and a chip.

Each rule raises a :class:`~costmodel.errors.ConfigError` that names the valid
degrees, e.g. ``tp=6 must divide 64 heads; valid: 1, 2, 4, 8, 16, 32, 64``.
"""

from __future__ import annotations

from .config import Parallel
from .errors import ConfigError
from .specs import ModelSpec

__all__ = ["divisors", "check_parallel", "valid_degrees"]


def divisors(n: int) -> list[int]:
    """All positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def valid_degrees(model: ModelSpec) -> dict[str, list[int]]:
    """The admissible tp, pp and ep degrees of ``model``.

    tp divides the query heads (KV heads are replicated past ``n_kv_heads``),
    pp divides the layers, ep divides the routed experts (1 for dense models).
    """
    return {
        "tp": divisors(model.n_heads),
        "pp": divisors(model.n_layers),
        "ep": divisors(model.n_experts) if model.mlp == "moe" else [1],
    }


def check_parallel(model: ModelSpec, parallel: Parallel) -> None:
    """Raise a :class:`ConfigError` if ``parallel`` cannot split ``model``."""
    valid = valid_degrees(model)
    what = {"tp": f"{model.n_heads} heads", "pp": f"{model.n_layers} layers",
            "ep": f"{model.n_experts} experts" if model.mlp == "moe" else "a dense model (no experts)"}
    for name, allowed in valid.items():
        v = getattr(parallel, name)
        if v not in allowed:
            verb = "must divide" if model.mlp == "moe" or name != "ep" else "must be 1 for"
            raise ConfigError(
                f"{name}={v} {verb} {what[name]} of {model.name}; valid: {', '.join(map(str, allowed))}"
            )
