"""Physical ranges of every user input, and the checks that enforce them.

Each bound is generous by orders of magnitude around today's systems, so no real
question is refused; what lies outside is a typo or a unit mistake, and would make
the arithmetic overflow, underflow or run for hours. Every check raises a
:class:`~costmodel.errors.ConfigError` (or the error type passed in) whose message
names the field, the value given and the range allowed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import ConfigError, CostModelError

__all__ = ["RANGES", "MODEL_RANGES", "check_number", "check_in_range", "check_type", "fmt_bound", "shown_value"]

#: input name -> (lowest, highest allowed value, unit). Inclusive on both ends.
RANGES: dict[str, tuple[float, float, str]] = {
    # chips: the largest clusters today hold ~10^5 accelerators
    "tp": (1, 2**20, "chips"),
    "pp": (1, 2**20, "stages"),
    "ep": (1, 2**20, "chips"),
    "replicas": (1, 2**20, "replicas"),
    "max_chips": (1, 2**20, "chips"),
    # workload: a batch of at least one sequence; contexts up to 10^9 tokens (today's longest: 10^7)
    "batch": (1, 1e8, "sequences"),
    "context": (1, 1e9, "tokens"),
    "prompt": (1, 1e9, "tokens"),
    # requests (the serving model): lengths as the context; loads from one request in flight to 10^8
    "input_tokens": (1, 1e9, "tokens"),
    "output_tokens": (1, 1e9, "tokens"),
    "concurrency": (1, 1e8, "requests"),
    "rate_per_s": (1e-9, 1e9, "requests/s"),
    "chunk_tokens": (1, 1e9, "tokens"),
    "max_batch": (1, 1e8, "sequences"),
    # a length distribution's coefficient of variation (std over mean; serving traces: 0.5-3)
    "length_cv": (0, 10, "(standard deviation over mean)"),
    # expert placement (docs/theory.md §3.2): extra expert copies, the busiest group over the mean
    "redundant_experts": (0, 1e5, "experts"),
    "expert_imbalance": (1, 64, "busiest expert group over the mean"),
    # an engine's scheduler caps (docs/serving.md §19.9)
    "max_seqs": (1, 1e7, "sequences"),
    "max_batched_tokens": (1, 1e7, "tokens per step"),
    # a request class's relative weight in a mix (normalised; the ratio of two stays within 10^18)
    "mix_weight": (1e-9, 1e9, "(relative)"),
    # the KV hand-over link of disaggregated serving: 1 MB/s to 1 EB/s (an NVLink port: ~10^11)
    "link_bytes_per_s": (1e6, 1e18, "bytes/s"),
    # speculative decoding: draft tokens per step (engines use 1-16) and the mean tokens per step
    "spec_length": (1, 1024, "draft tokens"),
    "accepted_length": (1, 1025, "tokens per step"),
    # money: a chip-hour costs cents to thousands of dollars
    "usd_per_chip_hour": (1e-6, 1e6, "USD per chip-hour"),
    # electricity (docs/theory.md §21): a tenth of a cent to ten dollars per kWh; a board's power
    "usd_per_kwh": (1e-3, 10.0, "USD per kWh"),
    "pue": (1.0, 3.0, "(facility energy over IT energy)"),
    "power_w": (0.0, 1e5, "W"),
    "power_cap_kw": (1e-3, 1e9, "kW"),
    # targets: a microsecond to a day per token
    "tpot_s": (1e-7, 86400.0, "seconds"),
    "ttft_s": (1e-7, 86400.0, "seconds"),
    "demand_tokens_per_s": (1e-6, 1e15, "tokens/s"),
    # hardware numbers (sweep axes)
    "hbm_bytes_per_s": (1e6, 1e18, "bytes/s"),
    "flops_per_s": (1e6, 1e21, "FLOP/s"),
    "hbm_bytes": (1e6, 1e16, "bytes"),
    "weight_bytes": (1 / 16, 16.0, "bytes per element"),
    "kv_bytes": (1 / 16, 16.0, "bytes per element"),
}

#: Largest value of each integer field of a model spec (elements, layers, heads, experts).
#: A 10^4-layer model of width 10^6 holds ~10^16 parameters, 10^4 times today's largest.
MODEL_RANGES: dict[str, int] = {
    "n_layers": 100_000, "d_model": 10_000_000, "n_heads": 1_000_000, "n_kv_heads": 1_000_000,
    "d_head": 1_000_000, "vocab_size": 1_000_000_000, "d_ff": 100_000_000, "n_experts": 1_000_000,
    "experts_per_token": 1_000_000, "n_shared_experts": 1_000_000, "d_ff_expert": 100_000_000,
    "n_moe_layers": 100_000, "q_lora_rank": 10_000_000, "kv_lora_rank": 10_000_000,
    "qk_rope_head_dim": 1_000_000, "qk_nope_head_dim": 1_000_000, "v_head_dim": 1_000_000,
    "mlp_matrices": 3, "n_window_layers": 100_000, "attention_window": 1_000_000_000,
    "n_expert_groups": 1_000_000, "expert_groups_per_token": 1_000_000,
}


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_in_range(name: str, v: Any, lo: float, hi: float, unit: str = "", *, integer: bool = False,
                   error: type[CostModelError] = ConfigError, label: str | None = None) -> Any:
    """Return ``v`` if it is a number (an integer when ``integer``) in ``[lo, hi]``, else raise ``error``.

    Integers are compared exactly (``10**400`` is refused, not overflowed); ``label`` is how the
    message names the field (default ``name``).
    """
    label = label or name
    kind = "a whole number" if integer else "a number"
    allowed = f"{kind} in [{fmt_bound(lo)}, {fmt_bound(hi)}]" + (f" {unit}" if unit else "")
    ok = (isinstance(v, numbers.Integral) if integer else _is_number(v)) and not isinstance(v, bool)
    try:  # integers compare exactly; math.isfinite would overflow on 10**400
        ok = ok and (isinstance(v, numbers.Integral) or math.isfinite(v)) and lo <= v <= hi
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise error(f"{label} must be {allowed}, got {shown_value(v)}")
    return v


def shown_value(v: Any) -> str:
    """``repr(v)``, except that a huge integer is described by its size (Python refuses to print 10**5000)."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(v) >= 10**30:
        return f"an integer of about {int(int(v).bit_length() * math.log10(2)) + 1} digits"
    return f"{v!r}"


def fmt_bound(v: float) -> str:
    """A range end as a person writes it: ``1048576``, ``1e+09``, ``0.0625``."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e7 else f"{v:g}"


def check_number(name: str, v: Any, *, integer: bool = False, error: type[CostModelError] = ConfigError,
                 label: str | None = None) -> Any:
    """Check ``v`` against :data:`RANGES[name] <RANGES>`; return it unchanged."""
    lo, hi, unit = RANGES[name]
    return check_in_range(name, v, lo, hi, unit, integer=integer, error=error, label=label)


def check_type(name: str, v: Any, cls: type | tuple[type, ...], hint: str = "") -> Any:
    """Raise a :class:`ConfigError` unless ``v`` is an instance of ``cls``."""
    if not isinstance(v, cls):
        names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise ConfigError(f"{name} must be a {names}{hint}, got {type(v).__name__} {v!r:.80}")
    return v
