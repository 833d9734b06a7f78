"""Serving configuration: workload, parallel split, precision and efficiency.

Immutable and validated at construction: a bad value raises a
:class:`~costmodel.errors.ConfigError` that says what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .limits import check_in_range, check_number
from .specs.hardware import HardwareSpec
from .specs.precision import check_precision

__all__ = ["Workload", "Parallel", "Precision", "Efficiency", "IDEAL", "DEFAULT_EFFICIENCY", "Electricity",
           "PRICE_BASES", "DEFAULT_USD_PER_KWH", "DEFAULT_PUE"]

#: the smallest achievable fraction of peak an efficiency profile may set (tiny ones overflow the step time)
MIN_FRACTION = 1e-3


def _positive(obj: object, names: tuple[str, ...], *, integer: bool = False, allow_zero: bool = False) -> None:
    for name in names:
        v = getattr(obj, name)
        try:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v >= 0 if allow_zero else v > 0) and (not integer or float(v).is_integer())
        except OverflowError:  # an int beyond float range
            ok = False
        if not ok:
            kind = "an integer" if integer else "a number"
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{name} must be {kind} {bound}, got {v!r}")


@dataclass(frozen=True)
class Workload:
    """What is served.

    Attributes:
        batch: sequences per replica (decode: tokens per step; prefill: prompts per batch).
        context: cached tokens per sequence read at each decode step (the mean for ragged batches).
        prompt: prompt tokens per sequence processed in prefill (default ``None``: the context, as on the
            command line).
        phase: ``"decode"`` or ``"prefill"``.
    """

    batch: float = 1
    context: float = 2048
    prompt: float | None = None
    phase: str = "decode"

    def __post_init__(self) -> None:
        if self.prompt is None:
            object.__setattr__(self, "prompt", self.context)
        for name in ("batch", "context", "prompt"):
            check_number(name, getattr(self, name))
        if not isinstance(self.phase, str) or self.phase not in ("decode", "prefill"):
            raise ConfigError(f"phase must be 'decode' or 'prefill', got {self.phase!r}")


@dataclass(frozen=True)
class Parallel:
    """How one model replica is split over chips, and how many replicas serve.

    ``chips per replica = tp·pp·ep``; validity against a model is checked by
    :func:`costmodel.parallel.check_parallel`.

    Attributes:
        tp, pp, ep: tensor-parallel, pipeline and expert-parallel degrees.
        replicas: data-parallel copies of the replica.
        mesh: the tensor-parallel group as a mesh ``(X, Y, Z)`` with
            ``X·Y·Z = tp`` (1 to 3 axes; missing axes are 1). It sets the torus
            axes a collective crosses and the 2D / weight-gathered layouts
            (docs/theory.md §13). ``None``: a balanced mesh over the chip's torus
            axes (64 TPU v4 chips: 4x4x4), see :func:`costmodel.parallel.default_mesh`.
        redundant_experts: extra copies of routed experts placed over the expert groups (DeepSeek's
            EPLB): ``ep`` divides ``experts + redundant_experts``, each chip holds that many over ``ep``
            (docs/theory.md §3.2).
        expert_imbalance: routed tokens of the busiest expert group over the mean (1: balanced), which
            sets a step's routed work (docs/theory.md §3.2).
    """

    tp: int = 1
    pp: int = 1
    ep: int = 1
    replicas: int = 1
    mesh: tuple[int, ...] | None = None
    redundant_experts: int = 0
    expert_imbalance: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "ep", "replicas"):
            object.__setattr__(self, name, int(check_number(name, getattr(self, name), integer=True)))
        object.__setattr__(self, "redundant_experts",
                           int(check_number("redundant_experts", self.redundant_experts, integer=True)))
        object.__setattr__(self, "expert_imbalance", float(check_number("expert_imbalance", self.expert_imbalance)))
        if self.mesh is not None:
            mesh = tuple(self.mesh) if isinstance(self.mesh, (tuple, list)) else ()
            ok = 1 <= len(mesh) <= 3 and all(isinstance(a, int) and not isinstance(a, bool) and a >= 1
                                             for a in mesh)
            if not ok:
                raise ConfigError(f"mesh must be 1 to 3 whole numbers >= 1 (e.g. (4, 4, 4)), got {self.mesh!r}")
            if math.prod(mesh) != self.tp:
                raise ConfigError(f"mesh {'x'.join(map(str, mesh))} has {math.prod(mesh)} chips but tp={self.tp}; "
                                  f"its axes must multiply to tp")
            object.__setattr__(self, "mesh", mesh)

    @property
    def chips_per_replica(self) -> int:
        """Chips serving one replica."""
        return int(self.tp * self.pp * self.ep)


@dataclass(frozen=True)
class Precision:
    """Numeric formats of weights, KV cache, activations, the matrix math and the MoE dispatch.

    ``None`` means the default: weights in the model's native precision, KV in
    bf16, math in the weights' format for float formats and bf16 for integer
    (weight-only) formats, dispatch in the activations' format.

    ``dispatch`` is the format of the tokens the MoE dispatch all-to-all sends
    to the experts; the combine returns expert outputs in ``activations``.
    DeepSeek-V3 dispatches in fp8 and combines in bf16 (arXiv 2412.19437,
    section 3.3.3, low-precision communication), as do DeepEP's kernels
    (github.com/deepseek-ai/DeepEP).
    It is a format, a number of bytes per element, so it lives here and not in
    ``Rules`` (docs/theory.md §5.5).
    """

    weights: str | None = None
    kv: str | None = None
    math: str | None = None
    activations: str = "bf16"
    dispatch: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                check_precision(v, f"{f.name} precision")


#: the operator step's kernel parameters (docs/theory.md §20.2): (lowest, highest, unit)
OPERATOR_RANGES: dict[str, tuple[float, float, str]] = {
    "gemm_tile_m": (1, 1024, "tokens"),
    "gemm_tile_n": (1, 1024, "elements"),
    "gemm_split_k": (1, 65536, "elements"),
    "compute_units": (1, 4096, "work units"),
    "gemm_k_half": (0, 65536, "elements"),
    "attention_decode_work_half": (0, 1e12, "bytes"),
    "attention_prefill_rows_half": (0, 1e12, "query rows"),
    "mla_head_tile": (1, 1024, "heads"),
    "moe_imbalance": (1, 64, "busiest over mean"),
    "moe_token_passes": (0, 16, "trips through HBM"),
    "graph_floor_fraction": (0, 1, "fraction"),
    "oneshot_allreduce_latency_s": (0, 1.0, "seconds"),
    "attention_floor_s": (0, 1.0, "seconds"),
    "moe_floor_s": (0, 1.0, "seconds"),
    "mla_floor_s": (0, 1.0, "seconds"),
    "quantise_overhead_s": (0, 1.0, "seconds"),
    "decode_attention_block_s": (0, 1.0, "seconds"),
    "decode_attention_row_s": (0, 1.0, "seconds"),
    "attention_group_tile": (1, 1e6, "query heads per KV head"),
    "attention_group_limit": (1, 1e6, "query heads per KV head"),
    "prefill_attention_block_s": (0, 1.0, "seconds"),
    "prefill_attention_row_s": (0, 1.0, "seconds"),
    "attention_block_tokens": (1, 1024, "tokens"),
    "attention_softmax_width": (0, 4096, "elements"),
    "attention_window_block_tokens": (0, 65536, "tokens"),
}


def _check_operator_fields(eff: "Efficiency") -> None:
    for name, (lo, hi, unit) in OPERATOR_RANGES.items():
        _positive(eff, (name,), allow_zero=True)
        check_in_range(name, getattr(eff, name), lo, hi, unit)


@dataclass(frozen=True)
class Efficiency:
    """Achievable fractions of peak and fixed overheads (docs/theory.md §5.6).

    The default is the ideal roofline: every peak reached, no kernel overhead,
    all of HBM usable. ``memory_fraction``, ``kv_memory_fraction`` and
    ``activations_in_budget`` are a serving engine's memory rule (the KV cache gets
    ``kv_memory_fraction·(memory_fraction·M − weights − activations_in_budget·activations)``;
    :mod:`costmodel.engines` holds the presets of vLLM, TensorRT-LLM and SGLang). Calibrated profiles come from :mod:`costmodel.calibrate`.
    ``collective_latency_s`` replaces the chip's spec value when set (a calibrated
    profile fits it), so an efficiency taken from one prediction predicts the same
    numbers when passed to another.
    """

    flops_efficiency: float = 1.0
    hbm_efficiency: float = 1.0
    comm_efficiency: float = 1.0
    kernel_overhead_s: float = 0.0
    kernels_per_layer: float = 4.0
    memory_fraction: float = 1.0
    name: str = "ideal"
    collective_latency_s: float | None = None
    kv_memory_fraction: float = 1.0
    activations_in_budget: float = 1.0
    collective_step_latency_s: float | None = None
    launch_overhead_s: float = 0.0
    cuda_graphs: float = 1.0
    dequant_flops_8bit: float = 0.0
    dequant_flops_4bit: float = 0.0
    low_precision_flops_factor: float = 1.0
    # the operator-level step (docs/theory.md §20): ideal values make every shape factor 1
    gemm_tile_m: float = 1.0
    gemm_tile_n: float = 1.0
    gemm_split_k: float = 1.0
    compute_units: float = 1.0
    gemm_k_half: float = 0.0
    attention_decode_efficiency: float = 1.0
    attention_decode_work_half: float = 0.0
    attention_prefill_efficiency: float = 1.0
    attention_prefill_rows_half: float = 0.0
    mla_decode_efficiency: float = 1.0
    mla_head_tile: float = 1.0
    mla_hbm_efficiency: float = 1.0
    mla_floor_s: float = 0.0
    low_precision_hbm_factor: float = 1.0
    quantise_overhead_s: float = 0.0
    moe_gemm_efficiency: float = 1.0
    moe_imbalance: float = 1.0
    moe_token_passes: float = 0.0
    graph_floor_fraction: float = 1.0
    oneshot_allreduce_latency_s: float = 0.0
    attention_floor_s: float = 0.0
    moe_floor_s: float = 0.0
    decode_attention_block_s: float = 0.0
    decode_attention_row_s: float = 0.0
    attention_group_tile: float = 1e6
    attention_group_limit: float = 1e6
    attention_fallback_efficiency: float = 1.0
    prefill_attention_block_s: float = 0.0
    prefill_attention_row_s: float = 0.0
    attention_block_tokens: float = 1.0
    attention_softmax_width: float = 0.0
    attention_window_block_tokens: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, ("flops_efficiency", "hbm_efficiency", "comm_efficiency", "memory_fraction",
                         "kv_memory_fraction", "low_precision_flops_factor"))
        _positive(self, ("kernel_overhead_s", "kernels_per_layer", "activations_in_budget"), allow_zero=True)
        check_in_range("kernel_overhead_s", self.kernel_overhead_s, 0, 1.0, "seconds")
        check_in_range("kernels_per_layer", self.kernels_per_layer, 0, 10_000)
        for f in ("collective_latency_s", "collective_step_latency_s"):
            if getattr(self, f) is not None:
                _positive(self, (f,), allow_zero=True)
                check_in_range(f, getattr(self, f), 0, 1.0, "seconds")
        _positive(self, ("launch_overhead_s", "cuda_graphs", "dequant_flops_8bit", "dequant_flops_4bit"),
                  allow_zero=True)
        check_in_range("launch_overhead_s", self.launch_overhead_s, 0, 1.0, "seconds")
        check_in_range("dequant_flops_8bit", self.dequant_flops_8bit, 0, 1e4, "FLOP per weight element")
        check_in_range("dequant_flops_4bit", self.dequant_flops_4bit, 0, 1e4, "FLOP per weight element")
        if not 0 <= self.cuda_graphs <= 1:
            raise ConfigError(f"cuda_graphs is the fraction of steps replayed from a CUDA graph and must be "
                              f"in [0, 1], got {self.cuda_graphs}")
        if not 0 <= self.activations_in_budget <= 1:
            raise ConfigError(f"activations_in_budget is 1 when the engine's memory budget counts activations, "
                              f"0 when they live outside it, and must be in [0, 1], got {self.activations_in_budget}")
        _check_operator_fields(self)
        for f in ("flops_efficiency", "hbm_efficiency", "comm_efficiency", "memory_fraction", "kv_memory_fraction",
                  "low_precision_flops_factor", "attention_decode_efficiency", "attention_prefill_efficiency",
                  "mla_decode_efficiency", "moe_gemm_efficiency", "mla_hbm_efficiency",
                  "low_precision_hbm_factor", "attention_fallback_efficiency"):
            if not MIN_FRACTION <= getattr(self, f) <= 1:  # below 0.1% of peak no serving system runs
                raise ConfigError(f"{f} is a fraction of peak and must be in [{MIN_FRACTION:g}, 1], got {getattr(self, f)}")

    def inputs(self) -> dict[str, float]:
        """Numeric inputs of the symbolic model (symbol name -> value) this profile sets."""
        return {f.name: float(v) for f in fields(self) if f.name != "name" and (v := getattr(self, f.name)) is not None}

    def hardware(self, hw: HardwareSpec) -> HardwareSpec:
        """``hw`` with the chip numbers this profile replaces (the collective latencies, when set)."""
        over = {f: v for f in ("collective_latency_s", "collective_step_latency_s")
                if (v := getattr(self, f)) is not None}
        return hw.replace(**over) if over else hw


IDEAL = Efficiency()

#: The efficiency every command and function uses unless told otherwise: the profile fitted to published
#: measurements (docs/calibration.md), the number to act on. The ideal roofline, a lower bound on time, is
#: asked for by name (``IDEAL`` or ``"ideal"``).
DEFAULT_EFFICIENCY = "calibrated"


#: How the price of a chip-hour is meant: ``rental`` prices (the catalog's) already pay for the chip's power;
#: ``owned`` prices (an amortised purchase) do not, so the electricity is added to the cost.
PRICE_BASES = ("rental", "owned")

#: USD per kWh: the US average industrial price of 2023, 8.04 cents per kWh (US EIA, Electric Power Monthly,
#: Table 5.3, average price of electricity to ultimate customers), the rate a data centre's supply contract is
#: near; pass your own with ``--usd-per-kwh``.
DEFAULT_USD_PER_KWH = 0.0804

#: Facility energy over IT energy: 1.56, the average annual PUE operators reported for their largest data
#: centre in the Uptime Institute Global Data Center Survey 2024 (Uptime gives 1.58 for 2023, and 1.55-1.59
#: since 2020); a hyperscaler's fleet runs near 1.1.
DEFAULT_PUE = 1.56


@dataclass(frozen=True)
class Electricity:
    """The price of electricity, the facility's overhead on it, and what the chip price pays for
    (docs/theory.md §21).

    Attributes:
        usd_per_kwh: USD per kWh of facility energy (default :data:`DEFAULT_USD_PER_KWH`).
        pue: power usage effectiveness, facility energy over IT energy, in [1, 3] (default
            :data:`DEFAULT_PUE`).
        price_basis: ``"rental"`` (default: the chip price includes power, as the catalog's rental prices
            do; the electricity is reported but not added) or ``"owned"`` (the chip price excludes power; the
            electricity is added to the cost per token).

    Example:
        >>> Electricity(usd_per_kwh=0.1, price_basis="owned").inputs()["owned"]
        1.0
    """

    usd_per_kwh: float = DEFAULT_USD_PER_KWH
    pue: float = DEFAULT_PUE
    price_basis: str = "rental"

    def __post_init__(self) -> None:
        check_number("usd_per_kwh", self.usd_per_kwh)
        check_number("pue", self.pue)
        if self.price_basis not in PRICE_BASES:
            raise ConfigError(f"price_basis must be one of {', '.join(PRICE_BASES)}, got {self.price_basis!r:.40}")

    @property
    def owned(self) -> bool:
        return self.price_basis == "owned"

    def to_dict(self) -> dict[str, Any]:
        """As the answers' JSON carries it: ``usd_per_kwh``, ``pue``, ``price_basis`` and ``in_usd_per_mtok``
        (whether the electricity is part of the cost)."""
        return {"usd_per_kwh": self.usd_per_kwh, "pue": self.pue, "price_basis": self.price_basis,
                "in_usd_per_mtok": self.owned}

    def inputs(self) -> dict[str, float]:
        """Numeric inputs of the symbolic model (``usd_per_kwh``, ``pue``, ``owned``)."""
        return {"usd_per_kwh": float(self.usd_per_kwh), "pue": float(self.pue), "owned": float(self.owned)}
