"""Sensitivities of cost and latency to each hardware number, by JAX autodiff.

For an output ``y`` (``usd_per_mtok``, ``step_time_s``) and a hardware input ``x``
(``flops_per_s``, ``hbm_bytes_per_s``, ...) this gives the derivative ``∂y/∂x`` and
the elasticity ``∂log y/∂log x = (x/y)·∂y/∂x``: the percentage change of ``y`` per
percent of ``x``. Both come from one ``jax.jacrev`` of the compiled model.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..compile import compiled
from ..config import DEFAULT_EFFICIENCY, Efficiency, Parallel, Precision, Workload
from ..inputs import scenario
from ..symbolic import Rules

__all__ = ["Sensitivity", "sensitivities", "HARDWARE_INPUTS"]

#: Hardware numbers a sensitivity is taken with respect to (symbol names).
HARDWARE_INPUTS = ("flops_per_s", "hbm_bytes_per_s", "hbm_bytes", "scale_up_bytes_per_s",
                   "collective_latency_s", "usd_per_chip_hour")


@dataclass(frozen=True)
class Sensitivity:
    """Derivatives of one output with respect to hardware inputs.

    Attributes:
        output: the output's name.
        value: its value at the operating point.
        inputs: the inputs' values.
        gradient: ``∂output/∂input`` in output units per input unit.
        elasticity: ``∂log output/∂log input`` (dimensionless; 0 where the input is 0).
    """

    output: str
    value: float
    inputs: dict[str, float]
    gradient: dict[str, float]
    elasticity: dict[str, float]


def sensitivities(
    model, hardware, workload: Workload = Workload(), *, parallel: Parallel = Parallel(),
    precision: Precision = Precision(), efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    usd_per_chip_hour: float | None = None,
    rules: Rules | None = None, wrt: tuple[str, ...] = HARDWARE_INPUTS,
    outputs: tuple[str, ...] = ("usd_per_mtok", "step_time_s"),
) -> dict[str, Sensitivity]:
    """``d(output)/d(input)`` and elasticities at one configuration, by reverse-mode autodiff.

    Args:
        model, hardware, workload, parallel, precision, efficiency, usd_per_chip_hour:
            as in :func:`costmodel.predict`.
        rules: how terms combine (default: the workload's phase, otherwise defaults).
        wrt: input names to differentiate with respect to.
        outputs: output names to differentiate.

    Returns:
        Output name -> :class:`Sensitivity`.

    Raises:
        CostModelError: a bad configuration, as in :func:`costmodel.predict`.

    Example:
        >>> s = sensitivities("llama-3-70b", "h100-sxm", Workload(batch=64, context=8192),
        ...                   parallel=Parallel(tp=8))
        >>> round(s["usd_per_mtok"].elasticity["usd_per_chip_hour"], 6)
        1.0
    """
    rules = rules or Rules(phase=workload.phase)
    sc = scenario(model, hardware, workload, parallel, precision, efficiency, usd_per_chip_hour)
    fn = compiled(sc.model.structure, rules)
    base = {k: jnp.asarray(v, dtype=float) for k, v in sc.inputs().items()}
    x0 = {k: base[k] for k in wrt}

    def f(x):
        out = fn.raw(base | x)
        return {k: out[k] for k in outputs}

    y0 = f(x0)
    jac = jax.jacrev(f)(x0)
    result = {}
    for name in outputs:
        y = float(y0[name])
        grad = {k: float(jac[name][k]) for k in wrt}
        elas = {k: grad[k] * float(x0[k]) / y if y else 0.0 for k in wrt}
        result[name] = Sensitivity(name, y, {k: float(x0[k]) for k in wrt}, grad, elas)
    return result
