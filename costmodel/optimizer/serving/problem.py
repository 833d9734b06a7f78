"""The serving deployment problem: what to choose, what to minimise, which constraints hold.

A demand (a request rate ``R``, or output tokens/s over the output length) of requests of
``I`` prompt and ``O`` output tokens must be served within a TTFT target (queueing at the
rate included) and a TPOT target, on at most ``max_chips`` chips. The decision variables
(docs/optimizer.md, "The serving problem"):

* **aggregated** (docs/serving.md §19.2-19.3): the split of a replica (tp, pp, ep), the
  attention sharding (heads or batch, §19.6), the precision, the chunked-prefill budget ``C``,
  the speculation option (§19.5) and the replicas; the decode batch (the concurrency) is set by
  the rate through Little's law, ``B = X·D`` with ``X/τ̄(X) = R/r``;
* **disaggregated** (§19.4): the prefill pool's split, prompts per prefill ``b_p`` and replicas,
  the decode pool's split and replicas (its batch again set by the rate), the precision and the
  speculation option; with ``prefill_hardware``/``decode_hardware``, each pool's chip too (a pair
  of chips from the two lists, :mod:`.pairs`).

The objective is the deployment's USD per million output tokens at the demand (``"output"``)
or per million tokens in and out (``"total"``): at a fixed demand both are the deployment's USD
per hour over a constant, so they pick the same deployment. That is the chips' price, plus the
electricity for chips the user owns (``Electricity(price_basis="owned")``, docs/theory.md §21).
``"energy"`` minimises the joules of a request (its prompt's and its output's): at a fixed demand,
the deployment's watts (boards and hosts, :func:`ServingProblem.objective_value`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ...config import DEFAULT_EFFICIENCY, Efficiency, Electricity, Parallel, Precision, Workload
from ...engines import UNBOUNDED, Scheduler, scheduler_of
from ...errors import ConfigError
from ...inputs import Scenario, scenario
from ...limits import check_number, shown_value
from ...parallel import valid_degrees
from ...serving.percentiles import PERCENTILES
from ...serving.workload import Requests, Speculative
from ...specs import HardwareSpec, ModelSpec, load_hardware, load_model
from ...symbolic import Rules, board_power_w, usd_per_joule
from ..problem import MAX_SPLITS, PrecisionChoice, _precisions, precision_input_table

__all__ = ["ServingProblem", "make_serving_problem", "MODES", "OBJECTIVES", "CHUNK_OPTIONS", "PREFILL_BATCHES",
           "ATTENTION_OPTIONS", "on_chip", "pool_usd_per_hour"]

MODES = ("agg", "disagg", "auto")
OBJECTIVES = ("output", "total", "energy")
#: chunked-prefill budgets considered (tokens per step); Sarathi-Serve runs 512-2048, vLLM defaults to 8192
#: (docs/serving.md §19.2). A budget below P/256 is left out: the open-loop queue follows at most 256
#: chunks per prompt.
CHUNK_OPTIONS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
#: prompts per prefill of the prefill pool (docs/serving.md §19.4; DistServe batches a few prompts)
PREFILL_BATCHES = (1, 2, 4, 8, 16)
#: attention sharding of an aggregated replica (docs/serving.md §19.6)
ATTENTION_OPTIONS = ("heads", "batch")
MODE_NAMES = {"agg": "aggregated", "disagg": "disaggregated"}


@dataclass(frozen=True)
class ServingProblem:
    """A validated serving deployment problem (SI units).

    Attributes:
        model, hardware: the specs.
        requests: prompt/output lengths (or a mix) and prefix hit.
        rate_per_s: requests/s the deployment must sustain.
        ttft_s, tpot_s: targets, or ``None`` (no target).
        max_chips: chip budget of the whole deployment (all replicas, both pools).
        modes: ``("agg",)``, ``("disagg",)`` or both.
        precisions: admissible (weights, KV) choices.
        specs: speculation options (``None`` = no speculation is always one).
        efficiency: the efficiency (profile resolved per phase by the scenarios).
        usd_per_chip_hour: the chip price.
        objective: ``"output"``, ``"total"`` (USD per million tokens) or ``"energy"`` (joules per request).
        electricity: the price of electricity and what the chip price pays for (owned chips: the cost
            includes the electricity).
        degrees: admissible tp, pp, ep values.
        scheduler: the engine's scheduling rules (KV reservation, caps; docs/serving.md §19.9).
        chunks: chunk budgets considered (aggregated).
        decode_base, prefill_base: scenarios of a one-chip replica in each phase (the split replaced per
            candidate).
        precision_args: the ``weights`` and ``kv`` arguments as given (the decode relaxation is built from them).
        ttft_percentile, tpot_percentile: the percentile (50, 90 or 99) each target holds at, or ``None``:
            the mean.
        prefill_hardware, decode_hardware: the chips each disaggregated pool may run on (names); both
            empty: the pools run on ``hardware`` and no pair of chips is searched.
        price_override: the ``usd_per_chip_hour`` given (``None``: each chip at its catalog price).
        chip_problems: the problem on each chip of the two lists (name -> problem, no lists of its own).
        step: how a step is priced (:attr:`costmodel.Rules.step`): ``"roofline"``, one roofline of all its
            FLOPs and bytes, or ``"operators"``, the sum of the kernels an engine runs (docs/theory.md §20).
    """

    model: ModelSpec
    hardware: HardwareSpec
    requests: Requests
    rate_per_s: float
    ttft_s: float | None
    tpot_s: float | None
    max_chips: int
    modes: tuple[str, ...]
    precisions: tuple[PrecisionChoice, ...]
    specs: tuple[Speculative | None, ...]
    efficiency: Efficiency | str
    usd_per_chip_hour: float
    objective: str
    degrees: dict[str, tuple[int, ...]] = field(hash=False, compare=False)
    scheduler: Scheduler = UNBOUNDED
    chunks: tuple[int, ...] = ()
    decode_base: Scenario | None = field(default=None, hash=False, compare=False)
    prefill_base: Scenario | None = field(default=None, hash=False, compare=False)
    precision_args: tuple = field(default=(None, None), hash=False, compare=False)
    ttft_percentile: int | None = None
    tpot_percentile: int | None = None
    prefill_hardware: tuple[str, ...] = ()
    decode_hardware: tuple[str, ...] = ()
    price_override: float | None = None
    chip_problems: dict[str, "ServingProblem"] = field(default_factory=dict, hash=False, compare=False)
    electricity: Electricity = Electricity()
    step: str = Rules.step

    def rules(self, attention: str = "heads", phase: str = "decode") -> Rules:
        """The modelling rules of a candidate with this attention sharding, in ``phase``."""
        return Rules(phase=phase, attention_sharding=attention, step=self.step)

    @property
    def uses_power(self) -> bool:
        """Whether the objective counts the deployment's power (energy, or the electricity of owned chips)."""
        return self.objective == "energy" or self.electricity.owned

    def objective_value(self, usd_per_hour, watts):
        """What the search minimises, from a deployment's USD per hour (the chips' price) and its watts (boards
        and hosts; ignored unless :attr:`uses_power`): the watts for ``"energy"`` (joules per request times the
        fixed rate), else the USD per hour, with the electricity (``watts·PUE·$/kWh``) for
        owned chips. Works on numbers and arrays."""
        if self.objective == "energy":
            return watts
        if self.electricity.owned:
            return usd_per_hour + watts * 3600.0 * usd_per_joule(self.electricity.pue, self.electricity.usd_per_kwh)
        return usd_per_hour

    def board_watts(self, compute_s, memory_s, step_s, busy=1.0):
        """Board power per chip (W) of steps keeping compute busy ``compute_s`` and HBM ``memory_s`` of ``step_s``,
        run a fraction ``busy`` of the time (docs/theory.md §21), on arrays; NaN when the objective does not
        count power (:attr:`uses_power`)."""
        h = self.hardware
        if not self.uses_power:
            return np.full(np.shape(step_s), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return board_power_w(np.asarray(compute_s), np.asarray(memory_s), np.maximum(step_s, 1e-30),
                                 h.idle_power_w, h.max_power_w, h.memory_power_share, np.clip(busy, 0.0, 1.0))

    @property
    def host_watts(self) -> float:
        """The host's power per chip (W; 0 where the catalog has none)."""
        return self.hardware.host_power_w or 0.0

    @property
    def idle_watts(self) -> float:
        """Board and host power of an idle chip (W; NaN when the objective does not count power)."""
        return self.hardware.idle_power_w + self.host_watts if self.uses_power else float("nan")

    @property
    def searches_pairs(self) -> bool:
        """Whether the disaggregated mode searches pairs of chips (``prefill_hardware``/``decode_hardware``)."""
        return bool(self.prefill_hardware)

    @property
    def pair_chips(self) -> tuple[str, ...]:
        """The chips of both lists, each once, prefill chips first (the index of a chip in the frames)."""
        return tuple(dict.fromkeys(self.prefill_hardware + self.decode_hardware))

    @property
    def prefill_tokens(self) -> float:
        return self.requests.prefill_tokens

    @property
    def output_tokens_per_s(self) -> float:
        return self.rate_per_s * self.requests.output_tokens

    @property
    def tokens_per_s(self) -> float:
        """Tokens/s the objective counts: output only, or input and output."""
        extra = self.requests.input_tokens if self.objective == "total" else 0.0  # energy: per output token
        return self.rate_per_s * (self.requests.output_tokens + extra)

    def splits(self, budget: int | None = None) -> np.ndarray:
        """Every admissible (tp, pp, ep) of one replica within ``budget`` chips, as an int array (n, 3)."""
        budget = budget or self.max_chips
        tp, pp, ep = (np.asarray(self.degrees[k], dtype=np.int64) for k in ("tp", "pp", "ep"))
        g = np.stack(np.meshgrid(tp, pp, ep, indexing="ij"), axis=-1).reshape(-1, 3)
        out = g[g.prod(axis=1) <= budget]
        if len(out) > MAX_SPLITS:
            raise ConfigError(f"{self.model.name} has {len(out):,} admissible (tp, pp, ep) splits within "
                              f"max_chips={budget}, more than the {MAX_SPLITS:,} one search may visit; lower max_chips")
        return out

    def precision_of(self, i: int) -> Precision:
        c = self.precisions[i]
        return Precision(weights=c.weights, kv=c.kv, math=c.math)

    def precision_inputs(self) -> dict[str, np.ndarray]:
        """Per-choice model inputs that depend on the precision (:func:`precision_input_table`)."""
        return precision_input_table(self.hardware, self.precisions)


def _specs(spec) -> tuple[Speculative | None, ...]:
    """No speculation is always an option; ``spec`` adds one option or a list of them."""
    if spec is None:
        return (None,)
    options = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    for s in options:
        if not isinstance(s, Speculative):
            raise ConfigError(f"spec must be None, a costmodel.Speculative or a list of them, got {shown_value(s):.80}")
    return (None, *dict.fromkeys(options))


def make_serving_problem(model, hardware, requests, *, rate_per_s=None, demand_tps=None, ttft_s=None, tpot_s=None,
                         max_chips=64, mode="auto", weights="bf16", kv=None, spec=None,
                         efficiency: Efficiency | str = DEFAULT_EFFICIENCY, usd_per_chip_hour=None,
                         objective="output", scheduler=None, ttft_percentile=None,
                         tpot_percentile=None, prefill_hardware=None, decode_hardware=None,
                         electricity=None, step=Rules.step) -> ServingProblem:
    """Validate the inputs of :func:`costmodel.optimize_serving` and build a :class:`ServingProblem`."""
    m, h = load_model(model), load_hardware(hardware)
    if not isinstance(requests, Requests):
        raise ConfigError(f"requests must be a costmodel.Requests, got {shown_value(requests):.80}")
    if (rate_per_s is None) == (demand_tps is None):
        raise ConfigError("give exactly one of rate_per_s (requests/s) and demand_tps (output tokens/s)")
    if rate_per_s is not None:
        rate = float(check_number("rate_per_s", rate_per_s, label="rate (requests/s)"))
    else:
        rate = float(check_number("demand_tokens_per_s", demand_tps)) / requests.output_tokens
        check_number("rate_per_s", rate, label="rate (demand_tps / output tokens)")
    for name, v in (("ttft_s", ttft_s), ("tpot_s", tpot_s)):
        if v is not None:
            check_number(name, v)
    check_number("max_chips", max_chips, integer=True)
    for name, q in (("ttft_percentile", ttft_percentile), ("tpot_percentile", tpot_percentile)):
        if q is not None and (isinstance(q, bool) or q not in PERCENTILES):
            raise ConfigError(f"{name} must be one of {', '.join(map(str, PERCENTILES))} or None (the mean), "
                              f"got {shown_value(q):.80}")
    if not isinstance(mode, str) or mode not in MODES + tuple(MODE_NAMES.values()):
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {shown_value(mode):.80}")
    mode = {v: k for k, v in MODE_NAMES.items()}.get(mode, mode)
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {shown_value(objective):.80}")
    step = Rules(step=step).step  # refused with the allowed values
    electricity = Electricity() if electricity is None else electricity
    if not isinstance(electricity, Electricity):
        raise ConfigError(f"electricity must be a costmodel.Electricity or None, got {shown_value(electricity):.80}")
    specs = _specs(spec)
    for s in specs[1:]:
        s.check_target(m)
    precisions = _precisions(h, m, weights, kv)
    first = precisions[0]
    prec = Precision(first.weights, first.kv, first.math)
    dec = scenario(m, h, Workload(phase="decode"), Parallel(), prec, efficiency, usd_per_chip_hour)
    pre = scenario(m, h, Workload(phase="prefill"), Parallel(), prec, efficiency, usd_per_chip_hour)
    big = requests.longest_prefill_tokens
    chunks = (tuple(c for c in CHUNK_OPTIONS if math.ceil(big / c) <= 256)
              or (int(2 ** math.ceil(math.log2(big / 256))),))
    pools = _pool_chips(h, prefill_hardware, decode_hardware, mode)
    if objective == "energy" or electricity.owned:
        why = "objective='energy'" if objective == "energy" else "price_basis='owned'"
        for chip in ([h] if mode != "disagg" or not pools else []) + (list(pools[2].values()) if pools else []):
            chip.require_power(why)
    chip_problems = {}
    if pools:
        for name, spec_h in pools[2].items():
            chip_problems[name] = make_serving_problem(
                m, spec_h, requests, rate_per_s=rate, ttft_s=ttft_s, tpot_s=tpot_s, max_chips=max_chips,
                mode="disagg", weights=weights, kv=kv, spec=spec, efficiency=efficiency,
                usd_per_chip_hour=usd_per_chip_hour, objective=objective, scheduler=scheduler,
                ttft_percentile=ttft_percentile, tpot_percentile=tpot_percentile, electricity=electricity,
                step=step)
    return ServingProblem(
        model=m, hardware=h, requests=requests, rate_per_s=rate,
        ttft_s=None if ttft_s is None else float(ttft_s), tpot_s=None if tpot_s is None else float(tpot_s),
        max_chips=int(max_chips), modes=("agg", "disagg") if mode == "auto" else (mode,), precisions=precisions,
        specs=specs, efficiency=efficiency, usd_per_chip_hour=float(dec.usd_per_chip_hour),
        objective=objective, degrees={k: tuple(v) for k, v in valid_degrees(m).items()}, chunks=chunks,
        decode_base=dec, prefill_base=pre, precision_args=(weights, kv), scheduler=scheduler_of(scheduler, h),
        ttft_percentile=None if ttft_percentile is None else int(ttft_percentile),
        tpot_percentile=None if tpot_percentile is None else int(tpot_percentile),
        prefill_hardware=pools[0] if pools else (), decode_hardware=pools[1] if pools else (),
        price_override=None if usd_per_chip_hour is None else float(dec.usd_per_chip_hour),
        chip_problems=chip_problems, electricity=electricity, step=step)


def _chip_specs(name: str, chips, default: HardwareSpec) -> list[HardwareSpec]:
    """The chips of one pool's list: a name, a comma-separated string or a list of names or specs."""
    if chips is None:
        return [default]
    items = chips.split(",") if isinstance(chips, str) else chips
    if not isinstance(items, (list, tuple)) or not all(isinstance(c, (str, HardwareSpec)) for c in items):
        raise ConfigError(f"{name} must be a chip name, 'a,b' or a list of chip names, got {shown_value(chips):.80}")
    specs = [load_hardware(c.strip() if isinstance(c, str) else c) for c in items
             if not (isinstance(c, str) and not c.strip())]
    if not specs:
        raise ConfigError(f"{name} names no chip; give one or more catalog names, e.g. 'h100-sxm,b200'")
    return specs


def _pool_chips(hardware: HardwareSpec, prefill_hardware, decode_hardware, mode: str):
    """``(prefill names, decode names, name -> spec)`` of the pair search, or ``None`` when neither list is
    given (each list defaults to ``hardware``)."""
    if prefill_hardware is None and decode_hardware is None:
        return None
    if mode == "agg":
        raise ConfigError("prefill_hardware and decode_hardware choose the chips of the disaggregated pools; "
                          "mode='agg' has none: use mode='disagg' or 'auto'")
    pre = _chip_specs("prefill_hardware", prefill_hardware, hardware)
    dec = _chip_specs("decode_hardware", decode_hardware, hardware)
    specs = {c.name: c for c in pre + dec}
    return (tuple(dict.fromkeys(c.name for c in pre)), tuple(dict.fromkeys(c.name for c in dec)), specs)


#: the problems on one chip at another budget or targets, kept so that their ids (which the relaxation's
#: cache keys on) stay the same across the calls of one solve
_ON_CHIP: dict[tuple, tuple[ServingProblem, ServingProblem]] = {}


def on_chip(problem: ServingProblem, name: str) -> ServingProblem:
    """The problem on the chip ``name`` of the pair lists, at ``problem``'s budget and targets (a problem
    without lists: both pools on that chip).

    Example:
        >>> import costmodel as cm
        >>> p = make_serving_problem("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), rate_per_s=1.0,
        ...                          mode="disagg", decode_hardware="h200")
        >>> on_chip(p, "h200").hardware.name, on_chip(p, "h200").searches_pairs
        ('h200', False)
    """
    base = problem.chip_problems[name]
    key = (id(base), problem.max_chips, problem.ttft_s, problem.tpot_s)
    kept = _ON_CHIP.get(key)
    if kept is None or kept[0] is not base:
        if len(_ON_CHIP) > 256:
            _ON_CHIP.clear()
        value = dataclasses.replace(base, max_chips=problem.max_chips, ttft_s=problem.ttft_s, tpot_s=problem.tpot_s)
        kept = _ON_CHIP[key] = (base, value)
    return kept[1]


def pool_usd_per_hour(prefill_chips, prefill_price: float, decode_chips, decode_price: float):
    """USD per hour of two pools, each at its chip's price (one price: the chips of both times it, so that
    a pair of the same chip ranks exactly as the chips do)."""
    if prefill_price == decode_price:
        return (prefill_chips + decode_chips) * decode_price
    return prefill_chips * prefill_price + decode_chips * decode_price


def with_budget(problem: ServingProblem, max_chips: int) -> ServingProblem:
    """The same problem with another chip budget."""
    return dataclasses.replace(problem, max_chips=int(max_chips))


def with_targets(problem: ServingProblem, ttft_s: float | None, tpot_s: float | None) -> ServingProblem:
    return dataclasses.replace(problem, ttft_s=ttft_s, tpot_s=tpot_s)
