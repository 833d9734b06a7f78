"""Accelerator specifications: peak FLOP/s per precision, HBM, interconnect, price."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import PrecisionError, SpecError
from .precision import BYTES_PER_ELEMENT

__all__ = ["HardwareSpec", "MEMORY_POWER_SHARE"]

#: The share of a board's power above idle that streaming HBM at the achievable bandwidth draws with the
#: tensor cores idle (docs/theory.md §21): one figure for every chip, fitted on the measured board power of
#: Llama 3.1 70B on four H100s (ML.ENERGY Leaderboard v3.0, Chung et al., arXiv 2505.06371; data in
#: experiments/data/ml_energy_llama31_chat.json) by ``python experiments/energy.py --fit`` (0.811), the
#: leaderboard's other series held out. The power model of SplitwiseSim (Patel et al., Splitwise, ISCA 2024,
#: arXiv 2311.18677) puts its token phase lower, 0.49 of an H100's range and 0.55 of an A100's.
MEMORY_POWER_SHARE = 0.81


def _check_power(h: "HardwareSpec", where: str) -> None:
    for f in ("max_power_w", "idle_power_w", "host_power_w"):
        v = getattr(h, f)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  and 0 <= v <= 1e5):
            raise SpecError(f"{where}: {f} must be a number of watts in [0, 100000] or absent, got {v!r}")
    if (h.max_power_w is None) != (h.idle_power_w is None):
        raise SpecError(f"{where}: give both max_power_w and idle_power_w, or neither")
    if h.max_power_w is not None and not h.idle_power_w < h.max_power_w:
        raise SpecError(f"{where}: idle_power_w ({h.idle_power_w:g} W) must be below max_power_w "
                        f"({h.max_power_w:g} W)")
    v = h.memory_power_share
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
        raise SpecError(f"{where}: memory_power_share must be a fraction in [0, 1], got {v!r}")

_POSITIVE = (
    "hbm_bytes_per_s", "hbm_bytes", "scale_up_bytes_per_s", "scale_up_domain_chips",
    "scale_out_bytes_per_s", "usd_per_chip_hour",
)


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator chip, in SI units, validated at construction.

    Attributes:
        flops_per_s: peak *dense* FLOP/s per math precision (multiply-add = 2 FLOPs).
        hbm_bytes_per_s: peak HBM bandwidth per chip.
        hbm_bytes: HBM capacity per chip.
        scale_up_bytes_per_s: per-chip bandwidth a collective sees inside the
            scale-up domain (GPU: one-way NVLink egress; TPU: bidirectional ICI per axis).
        scale_up_domain_chips: chips reachable at that bandwidth (node or pod).
        scale_out_bytes_per_s: per-chip share of the bandwidth leaving the domain.
        collective_latency_s: fixed latency of one collective.
        collective_step_latency_s: latency of one step of a collective: one of
            the ``n-1`` ring steps of a pass on a switch (NCCL LL), one hop on a torus.
        usd_per_chip_hour: default price; ``price_date`` says when it was quoted.

    Example:
        >>> from costmodel import load_hardware
        >>> h = load_hardware("h100-sxm")
        >>> round(h.flops_per_s["bf16"] * 2 / (2 * h.hbm_bytes_per_s))  # critical batch R
        295
    """

    name: str
    flops_per_s: dict[str, float] = field(hash=False)
    hbm_bytes_per_s: float
    hbm_bytes: float
    scale_up_bytes_per_s: float
    scale_up_domain_chips: int
    scale_out_bytes_per_s: float
    collective_latency_s: float
    usd_per_chip_hour: float
    collective_step_latency_s: float = 0.0
    topology: Literal["switch", "torus"] = "switch"
    torus_dims: int = 0
    price_date: str = ""
    display_name: str = ""
    vendor: str = ""
    max_power_w: float | None = None
    idle_power_w: float | None = None
    host_power_w: float | None = None
    memory_power_share: float = MEMORY_POWER_SHARE
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"hardware {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"a chip's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.flops_per_s, dict):
            raise SpecError(f"{where}: flops_per_s must map precisions to FLOP/s, got {self.flops_per_s!r:.80}")
        for f in _POSITIVE:
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise SpecError(f"{where}: {f} must be a positive number, got {v!r}")
        for f in ("collective_latency_s", "collective_step_latency_s"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SpecError(f"{where}: {f} must be >= 0, got {v!r}")
        if not self.flops_per_s:
            raise SpecError(f"{where}: flops_per_s needs at least one precision")
        for p, v in self.flops_per_s.items():
            if p not in BYTES_PER_ELEMENT or not (isinstance(v, (int, float)) and v > 0):
                raise SpecError(f"{where}: flops_per_s[{p!r}] must be a positive number for a known precision")
        _check_power(self, where)
        if self.topology not in ("switch", "torus"):
            raise SpecError(f"{where}: topology must be 'switch' or 'torus', got {self.topology!r}")

    def flops_for(self, math_precision: str) -> float:
        """Peak dense FLOP/s for ``math_precision``, or a :class:`PrecisionError` naming the options."""
        if math_precision not in self.flops_per_s:
            raise PrecisionError(
                f"{self.name} has no {math_precision} math; it computes in "
                f"{', '.join(self.flops_per_s)}. Store weights in a format it computes in, "
                "or set the math precision (math='bf16' for weight-only quantisation)"
            )
        return self.flops_per_s[math_precision]

    @property
    def attention_flops_per_s(self) -> float:
        """Peak dense FLOP/s of the 16-bit math attention kernels run in (bf16, else fp16): FlashAttention,
        Flash-Decoding and FlashMLA multiply in 16 bits whatever the weights' format."""
        for p in ("bf16", "fp16"):
            if p in self.flops_per_s:
                return self.flops_per_s[p]
        return max(self.flops_per_s.values())

    def inputs(self, math_precision: str) -> dict[str, float]:
        """Numeric inputs of the symbolic model that this chip provides (symbol name -> value)."""
        return {
            "flops_per_s": float(self.flops_for(math_precision)),
            "attention_flops_per_s": float(self.attention_flops_per_s),
            "hbm_bytes_per_s": float(self.hbm_bytes_per_s),
            "hbm_bytes": float(self.hbm_bytes),
            "scale_up_bytes_per_s": float(self.scale_up_bytes_per_s),
            "scale_up_domain_chips": float(self.scale_up_domain_chips),
            "scale_out_bytes_per_s": float(self.scale_out_bytes_per_s),
            "collective_latency_s": float(self.collective_latency_s),
            "collective_step_latency_s": float(self.collective_step_latency_s),
            "is_torus": 1.0 if self.topology == "torus" else 0.0,
            "usd_per_chip_hour": float(self.usd_per_chip_hour),
            # a chip without a published board power computes none (0 W); Prediction reports its energy as None
            "max_power_w": float(self.max_power_w or 0.0),
            "idle_power_w": float(self.idle_power_w or 0.0),
            "host_power_w": float(self.host_power_w or 0.0) if self.max_power_w else 0.0,
            "memory_power_share": float(self.memory_power_share),
        }

    @property
    def has_power(self) -> bool:
        """Whether the chip has a board power to compute energy from (``max_power_w`` and ``idle_power_w``)."""
        return self.max_power_w is not None and self.idle_power_w is not None

    def require_power(self, why: str) -> None:
        """Raise a :class:`SpecError` saying how to give the chip a board power, unless it has one."""
        if not self.has_power:
            raise SpecError(f"{why} needs the board power of {self.name}, which has no published figure in the "
                            "catalog; give it one, e.g. load_hardware(name).replace(max_power_w=..., "
                            "idle_power_w=..., host_power_w=...), or on the command line --max-power-w and "
                            "--idle-power-w")

    def replace(self, **changes: Any) -> "HardwareSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
