"""Turn specs and a configuration into the numeric inputs of the compiled model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import DEFAULT_EFFICIENCY, Efficiency, Electricity, Parallel, Precision, Workload
from .efficiency import resolve_efficiency
from .errors import ConfigError
from .limits import check_number, check_type
from .parallel import check_parallel, mesh_of
from .specs import HardwareSpec, ModelSpec, bytes_per_element, default_math_precision
from .specs.catalog import load_hardware, load_model

__all__ = ["Scenario", "scenario", "math_the_chip_runs", "mesh_shares", "weight_only_flags"]

#: Math precisions to fall back on, in order, when a model's native format has no math on a chip.
_FALLBACK_MATH = ("bf16", "fp16", "fp32")


def math_the_chip_runs(hardware: HardwareSpec, math: str) -> str:
    """``math`` if ``hardware`` computes in it, else the first of bf16, fp16, fp32 it computes in.

    Used only for the default precision: a model stored in fp8 served on a chip without fp8 math
    (TPU v5e) is dequantised to bf16, as for weight-only quantisation (docs/theory.md §5.1).
    """
    if math in hardware.flops_per_s:
        return math
    return next((p for p in _FALLBACK_MATH if p in hardware.flops_per_s), math)


def weight_only_flags(weights: str, math: str) -> dict[str, float]:
    """``weight_only_8bit`` and ``weight_only_4bit``: 1 when weights of that width are stored narrower
    than the math format and dequantised before every multiply (weight-only quantisation), else 0;
    ``low_precision_math``: 1 when the math runs in an 8-bit or narrower format."""
    bw, bm = bytes_per_element(weights), bytes_per_element(math)
    narrow = bw < bm
    return {"weight_only_8bit": float(narrow and bw == 1.0), "weight_only_4bit": float(narrow and bw < 1.0),
            "low_precision_math": float(bm <= 1.0)}


def mesh_shares(parallel: Parallel, hardware: HardwareSpec) -> dict[str, float]:
    """``mesh_x_share``, ``mesh_y_share``: ``log X / log tp`` and ``log Y / log tp`` of the tensor-parallel
    mesh (:func:`costmodel.parallel.mesh_of`); 0 at ``tp = 1``."""
    x, y, _ = mesh_of(parallel, hardware)
    tp = parallel.tp
    return {"mesh_x_share": math.log(x) / math.log(tp) if tp > 1 else 0.0,
            "mesh_y_share": math.log(y) / math.log(tp) if tp > 1 else 0.0}


@dataclass(frozen=True)
class Scenario:
    """A fully resolved, validated configuration: everything one prediction needs.

    Attributes:
        model, hardware: the resolved specs.
        workload, parallel, efficiency: the configuration.
        weights, kv, math, activations: resolved precision names.
        usd_per_chip_hour: the price used (the chip's default unless overridden).
        dispatch: the MoE dispatch format (``None``: the activations').
        electricity: the price of electricity, the PUE and the price basis (:class:`Electricity`).
    """

    model: ModelSpec
    hardware: HardwareSpec
    workload: Workload
    parallel: Parallel
    efficiency: Efficiency
    weights: str
    kv: str
    math: str
    activations: str
    usd_per_chip_hour: float
    dispatch: str | None = None
    electricity: Electricity = Electricity()

    @property
    def mesh(self) -> tuple[int, int, int]:
        """The tensor-parallel mesh ``(X, Y, Z)``, ``X·Y·Z = tp`` (:func:`costmodel.parallel.mesh_of`)."""
        return mesh_of(self.parallel, self.hardware)

    def inputs(self) -> dict[str, float]:
        """Symbol name -> value for every input of the compiled model."""
        vals = self.model.inputs()
        vals.update(self.hardware.inputs(self.math))
        vals.update(self.efficiency.inputs())
        vals.update(self.electricity.inputs())
        vals.update(
            usd_per_chip_hour=float(self.usd_per_chip_hour),
            weight_bytes=bytes_per_element(self.weights),
            **weight_only_flags(self.weights, self.math),
            kv_bytes=bytes_per_element(self.kv),
            activation_bytes=bytes_per_element(self.activations),
            dispatch_bytes=bytes_per_element(self.dispatch or self.activations),
            batch=float(self.workload.batch),
            context=float(self.workload.context),
            prompt=float(self.workload.prompt),
            tp=float(self.parallel.tp),
            pp=float(self.parallel.pp),
            ep=float(self.parallel.ep),
            replicas=float(self.parallel.replicas),
            redundant_experts=float(self.parallel.redundant_experts),
            expert_imbalance=float(self.parallel.expert_imbalance),
        )
        vals.update(mesh_shares(self.parallel, self.hardware))
        return vals


def scenario(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    workload: Workload = Workload(),
    parallel: Parallel = Parallel(),
    precision: Precision = Precision(),
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    usd_per_chip_hour: float | None = None,
    layout: str = "1d-ws",
    electricity: Electricity | None = None,
) -> Scenario:
    """Resolve names and defaults and validate everything; raise a clear error on bad input.

    ``efficiency`` is an :class:`Efficiency`, or a profile: ``"ideal"``, ``"calibrated"`` or the
    path of a profile JSON (:func:`costmodel.efficiency.resolve`). Either may set the chip's
    collective latency (``Efficiency.collective_latency_s``). ``layout`` (``Rules.layout``) decides
    which tensor-parallel degrees split the heads (:func:`costmodel.parallel.check_parallel`).
    ``electricity`` (default :class:`Electricity`'s): with an ``"owned"`` price basis the chip needs a
    board power (:meth:`HardwareSpec.require_power`).
    """
    check_type("workload", workload, Workload)
    check_type("parallel", parallel, Parallel)
    check_type("precision", precision, Precision)
    m, h = load_model(model), load_hardware(hardware)
    efficiency, h = resolve_efficiency(efficiency, h, workload.phase)
    check_parallel(m, parallel, layout, mesh_of(parallel, h))
    weights = precision.weights or m.native_precision
    math = precision.math or default_math_precision(weights)
    if precision.weights is None and precision.math is None:
        math = math_the_chip_runs(h, math)
    h.flops_for(math)  # raises PrecisionError naming what the chip computes in
    price = h.usd_per_chip_hour if usd_per_chip_hour is None else usd_per_chip_hour
    check_number("usd_per_chip_hour", price)
    electricity = Electricity() if electricity is None else electricity
    check_type("electricity", electricity, Electricity)
    if electricity.owned:
        h.require_power("an owned price basis")
    return Scenario(model=m, hardware=h, workload=workload, parallel=parallel, efficiency=efficiency,
                    weights=weights, kv=precision.kv or "bf16", math=math, activations=precision.activations,
                    usd_per_chip_hour=float(price), dispatch=precision.dispatch, electricity=electricity)
