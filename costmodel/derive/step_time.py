"""The step time of a model on a chip as a closed form in the batch and the context (docs/theory.md §20).

Every number of the model, the chip, the split, the precision and the efficiency profile is put in;
what stays a symbol is the workload: ``B`` and ``S`` in decode, ``B`` and ``T_in`` in prefill. The
expression is the sum of the operator rows of :mod:`costmodel.symbolic.operators` (or the single
roofline of §5 with ``step="roofline"``), so it is the number :func:`costmodel.predict` gives.
"""

from __future__ import annotations

import sympy as sp

from ..config import Parallel, Precision, Workload
from ..symbolic import sym
from ..symbolic.rules import Rules
from ._base import Derivation, Step, extra_symbol

__all__ = ["step_time"]


def _rounded(e: sp.Expr, digits: int) -> sp.Expr:
    return e.xreplace({f: sp.Float(f, digits) for f in e.atoms(sp.Float)})


def step_time(model, hardware, *, phase: str = "decode", parallel: Parallel = Parallel(),
              precision: Precision = Precision(), efficiency="kernels", step: str = "operators",
              digits: int = 4) -> Derivation:
    """The step time of ``model`` on ``hardware`` as a SymPy expression in the workload.

    Args:
        model: a catalog name or :class:`~costmodel.ModelSpec`.
        hardware: a catalog chip name or :class:`~costmodel.HardwareSpec`.
        phase: ``"decode"`` (symbols ``batch`` and ``context``) or ``"prefill"`` (``batch`` and ``prompt``).
        parallel, precision: the split and the formats.
        efficiency: a profile name or path, or an :class:`~costmodel.Efficiency` (default ``"kernels"``,
            the kernel-fitted profile of the operator step).
        step: ``"operators"`` (the sum of the kernels) or ``"roofline"``.
        digits: significant digits of the numbers shown in ``compact`` and ``latex`` (``expr`` keeps them all).

    Returns:
        A :class:`Derivation`: ``expr`` in seconds, ``compact`` as a sum of one named term per operator
        (``definitions`` gives each), ``latex``, and ``evaluate(batch=..., context=...)``.

    Example:
        >>> import costmodel as cm
        >>> from costmodel import derive
        >>> d = derive.step_time("llama-3-70b", "h100-sxm", parallel=cm.Parallel(tp=8))
        >>> d.free_names
        ('batch', 'context')
        >>> p = cm.predict("llama-3-70b", "h100-sxm", cm.Workload(batch=64, context=8192),
        ...                parallel=cm.Parallel(tp=8), efficiency="kernels", rules=cm.Rules(step="operators"))
        >>> abs(d.evaluate(batch=64, context=8192) / p.step_time_s - 1) < 1e-9
        True
    """
    from ..inputs import scenario
    from ..symbolic.step import step_terms

    if phase not in ("decode", "prefill"):
        from ..errors import ConfigError

        raise ConfigError(f"phase must be 'decode' or 'prefill', got {phase!r}")
    sc = scenario(model, hardware, Workload(phase=phase), parallel, precision, efficiency)
    rules = Rules(phase=phase, step=step)
    terms = step_terms(sc.model.structure, rules)
    keep = {"batch", "context"} if phase == "decode" else {"batch", "prompt"}
    numbers = {sym(k): sp.Float(v, 17) for k, v in sc.inputs().items()
               if k not in keep and k in _symbol_names()}
    total = terms["step_time_s"].xreplace(numbers)
    lhs = extra_symbol("step_time", r"\ell", "step time")
    defs: dict[sp.Symbol, sp.Expr] = {}
    if step == "operators":
        for key, e in terms.items():
            if key.startswith("op_") and key.endswith("_s") and not key.endswith(("_compute_s", "_memory_s")):
                value = e.xreplace(numbers)
                if value != 0:
                    name = key[3:-2]
                    defs[sp.Symbol(f"t_{name}", positive=True)] = value
        compact = sp.Add(*defs)
        shown = {s: _rounded(v, digits) for s, v in defs.items()}
    else:
        compact, shown = _rounded(total, digits), {}
    steps = (Step(f"The {phase} step of {sc.model.name} on {sc.hardware.name} "
                  f"(tp={parallel.tp} pp={parallel.pp} ep={parallel.ep}, {sc.efficiency.name} profile)",
                  sp.Eq(lhs, compact, evaluate=False)),)
    return Derivation(name="step_time", lhs=lhs, expr=total, steps=steps, compact=compact, definitions=shown,
                      assumptions=(f"{step} step (docs/theory.md §{20 if step == 'operators' else 5})",),
                      unit="s", source="§20" if step == "operators" else "§5")


def _symbol_names() -> set[str]:
    from ..symbolic.symbols import SYMBOLS

    return set(SYMBOLS)
