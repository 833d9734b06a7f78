"""Every output of the model as one dict of SymPy expressions (docs/theory.md §5-9).

``outputs(structure, rules)`` is what the compile layer turns into one JAX
function. Keys are unit-bearing names; all are per replica unless they say
otherwise (``chips`` and ``tokens_per_s`` cover every replica).
"""

from __future__ import annotations

import functools

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .derived import usd_per_mtok
from .memory import memory_terms
from .power import power_terms
from .rules import Rules
from .step import step_terms, useful_flops
from .symbols import sym

__all__ = ["outputs"]


@functools.cache
def outputs(st: ModelStructure, rules: Rules = Rules()) -> dict[str, sp.Expr]:
    """All outputs for a model structure under ``rules``, as SymPy expressions.

    Example:
        >>> from costmodel.specs import ModelStructure
        >>> out = outputs(ModelStructure("gqa", "dense"))
        >>> sorted(out)[:3]
        ['activation_bytes_per_chip', 'chips', 'chips_per_replica']
    """
    B, T, tp, pp, ep, reps, C, price = sym("batch", "prompt", "tp", "pp", "ep", "replicas",
                                           "flops_per_s", "usd_per_chip_hour")
    t = step_terms(st, rules)
    step = t["step_time_s"]
    n = tp * pp * ep
    tokens = B if rules.phase == "decode" else B * T  # tokens per step of one replica
    flops = useful_flops(st, rules, B)
    p = arch.param_counts(st)
    out = dict(t)
    out.update(memory_terms(st, rules))
    energy = power_terms(t, n, tokens)
    out.update(energy)
    out.update(
        tokens_per_step=tokens,
        tokens_per_s=reps * tokens / step,
        tokens_per_s_per_user=(1 if rules.phase == "decode" else T) / step,
        usd_per_hour=reps * n * price,
        usd_per_mtok=usd_per_mtok(n, price, tokens / step) + sym("owned") * energy["usd_per_mtok_energy"],
        flops_per_step=flops,
        mfu=flops / (n * C * step),
        chips_per_replica=n,
        chips=reps * n,
        params_total=p.total,
        params_active=p.active,
        kv_bytes_per_token=arch.kv_bytes_per_token(st),
    )
    return out
