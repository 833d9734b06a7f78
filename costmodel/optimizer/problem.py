"""The serving problem: what to choose, what to minimise, which constraints hold.

Decision variables: batch per replica, tp, pp, ep, replicas (when a demand is
given), weight and KV precision from allowed sets. Objective: USD per million
output tokens. Constraints: time per output token (TPOT) <= target; optional
time to first token (TTFT) <= target; memory fits; chips <= budget.

TTFT is the prefill of one prompt on the replica plus its first decode step
(no queueing; docs/theory.md §6).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import numpy as np

from ..config import DEFAULT_EFFICIENCY, Efficiency, Electricity, Parallel, Precision, Workload
from ..errors import ConfigError
from ..inputs import Scenario, math_the_chip_runs, scenario, weight_only_flags
from ..limits import check_number, check_type
from ..parallel import valid_degrees
from ..specs import HardwareSpec, ModelSpec, bytes_per_element, default_math_precision, load_hardware, load_model
from ..symbolic import Rules

__all__ = ["Problem", "PrecisionChoice", "make_problem", "precision_input_table"]

#: Largest batch per replica considered (sequences). Beyond it no chip has the memory at useful contexts.
MAX_BATCH = 16384
#: Most (tp, pp, ep) splits one search visits (catalog models within 1,024 chips have a few hundred);
#: it bounds the work of models whose heads, layers and experts have many divisors.
MAX_SPLITS = 200_000


@dataclass(frozen=True)
class PrecisionChoice:
    """One admissible (weights, KV) format pair and the math precision it implies."""

    weights: str
    kv: str
    math: str


#: objective -> the metric it minimises
OBJECTIVE_KEYS = {"cost": "usd_per_mtok", "energy": "joules_per_token"}


@dataclass(frozen=True)
class Problem:
    """A validated optimisation problem (SI units).

    Attributes:
        base: the scenario whose numbers everything else overrides.
        tpot_s: target time per output token.
        ttft_s: target time to first token, or ``None``.
        max_chips: chip budget over all replicas.
        demand_tokens_per_s: output tokens/s to serve, or ``None`` (one replica).
        precisions: admissible (weights, KV) choices.
        degrees: admissible tp, pp, ep values (each ascending).
        rules: modelling rules of the decode step.
        objective: ``"cost"`` (USD per million tokens, electricity included for owned chips) or ``"energy"``
            (joules per token, docs/theory.md §21).
    """

    base: Scenario
    tpot_s: float
    ttft_s: float | None
    max_chips: int
    demand_tokens_per_s: float | None
    precisions: tuple[PrecisionChoice, ...]
    degrees: dict[str, tuple[int, ...]] = field(hash=False)
    rules: Rules = Rules()
    objective: str = "cost"

    @property
    def objective_key(self) -> str:
        """The metric the search minimises: ``usd_per_mtok`` or ``joules_per_token``."""
        return OBJECTIVE_KEYS[self.objective]

    @property
    def model(self) -> ModelSpec:
        return self.base.model

    @property
    def hardware(self) -> HardwareSpec:
        return self.base.hardware

    def splits(self) -> np.ndarray:
        """Every admissible (tp, pp, ep) with ``tp·pp·ep <= max_chips``, as an int array (n, 3)."""
        tp, pp, ep = (np.asarray(self.degrees[k], dtype=np.int64) for k in ("tp", "pp", "ep"))
        tp_pp = np.stack(np.meshgrid(tp, pp, indexing="ij"), axis=-1).reshape(-1, 2)
        tp_pp = tp_pp[tp_pp[:, 0] * tp_pp[:, 1] <= self.max_chips]
        ep = ep[ep <= self.max_chips]
        rows = np.column_stack([np.repeat(tp_pp, len(ep), axis=0), np.tile(ep, len(tp_pp))]).reshape(-1, 3)
        out = rows[rows.prod(axis=1) <= self.max_chips]  # in product order: tp, then pp, then ep
        if len(out) > MAX_SPLITS:
            raise ConfigError(f"{self.model.name} has {len(out):,} admissible (tp, pp, ep) splits within "
                              f"max_chips={self.max_chips}, more than the {MAX_SPLITS:,} one search may "
                              "visit; lower max_chips")
        return out.reshape(-1, 3)

    def precision_inputs(self) -> dict[str, np.ndarray]:
        """Per-choice model inputs that depend on the precision (:func:`precision_input_table`)."""
        return precision_input_table(self.hardware, self.precisions)


def _choices(name: str, option: str | tuple[str, ...] | list[str] | None, default: str) -> tuple[str, ...]:
    if option is None:
        return (default,)
    if isinstance(option, str):
        option = [o.strip() for o in option.split(",") if o.strip()]
    if not isinstance(option, (tuple, list)) or not all(isinstance(o, str) for o in option):
        raise ConfigError(f"{name} must be a precision name, a comma-separated string of them or a tuple of "
                          f"them (e.g. 'bf16' or ('bf16', 'fp8')), got {option!r}")
    if not option:
        raise ConfigError(f"{name}: a precision set must name at least one format, e.g. 'bf16' or 'bf16,fp8'")
    return tuple(dict.fromkeys(option))


def _precisions(hw: HardwareSpec, model: ModelSpec, weights, kv, math: str | None = None
                ) -> tuple[PrecisionChoice, ...]:
    out, refused = [], []
    for w, k in itertools.product(_choices("weights", weights, model.native_precision), _choices("kv", kv, "bf16")):
        Precision(weights=w, kv=k, math=math)  # validates the names
        math_p = math or default_math_precision(w)
        if weights is None and math is None:  # the model's own format: fall back to a math the chip runs
            math_p = math_the_chip_runs(hw, math_p)
        if math_p in hw.flops_per_s:
            out.append(PrecisionChoice(w, k, math_p))
        else:
            refused.append(w)
    if not out:
        what = f"{math} math" if math else ", ".join(sorted(set(refused)))
        raise ConfigError(
            f"{hw.name} cannot compute in {what}; it computes in "
            f"{', '.join(hw.flops_per_s)}: choose weights (or math) from those (int8/int4 weights run bf16 math)"
        )
    return tuple(out)


def precision_input_table(hw: HardwareSpec, precisions) -> dict[str, np.ndarray]:
    """Per-choice arrays of every input the precision sets, as :func:`costmodel.scenario` sets them:
    ``weight_bytes``, ``kv_bytes``, ``flops_per_s`` and the weight-only and low-precision-math flags
    (:func:`costmodel.inputs.weight_only_flags`, docs/theory.md §5.7)."""
    flags = [weight_only_flags(c.weights, c.math) for c in precisions]
    return {
        "weight_bytes": np.array([bytes_per_element(c.weights) for c in precisions]),
        "kv_bytes": np.array([bytes_per_element(c.kv) for c in precisions]),
        "flops_per_s": np.array([hw.flops_per_s[c.math] for c in precisions]),
        **{k: np.array([f[k] for f in flags]) for k in flags[0]},
    }


def make_problem(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    *,
    context: float = 8192,
    prompt: float | None = None,
    tpot_s: float = 0.05,
    ttft_s: float | None = None,
    max_chips: int = 64,
    demand_tokens_per_s: float | None = None,
    weights: str | tuple[str, ...] | None = None,
    kv: str | tuple[str, ...] | None = None,
    usd_per_chip_hour: float | None = None,
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    rules: Rules | None = None,
    math: str | None = None,
    objective: str = "cost",
    electricity: Electricity | None = None,
) -> Problem:
    """Validate the inputs of :func:`costmodel.optimize` and build a :class:`Problem`."""
    if not isinstance(objective, str) or objective not in OBJECTIVE_KEYS:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVE_KEYS)}, got {objective!r:.40}")
    m, h = load_model(model), load_hardware(hardware)
    for name, v in (("tpot_s", tpot_s), ("ttft_s", ttft_s), ("demand_tokens_per_s", demand_tokens_per_s)):
        if v is not None:
            check_number(name, v)
    check_number("max_chips", max_chips, integer=True)
    check_number("context", context)
    rules = Rules() if rules is None else check_type("rules", rules, Rules)
    prompt = context if prompt is None else prompt
    precisions = _precisions(h, m, weights, kv, math)
    first = precisions[0]
    base = scenario(m, h, Workload(batch=1, context=context, prompt=prompt), Parallel(),
                    Precision(first.weights, first.kv, first.math), efficiency, usd_per_chip_hour,
                    electricity=electricity)
    if objective == "energy":
        h.require_power("the energy objective")
    degrees = {k: tuple(v) for k, v in valid_degrees(m).items()}
    return Problem(base=base, tpot_s=float(tpot_s), ttft_s=ttft_s, max_chips=int(max_chips),
                   demand_tokens_per_s=demand_tokens_per_s, precisions=precisions, degrees=degrees,
                   rules=dataclasses.replace(rules, phase="decode"), objective=objective)
