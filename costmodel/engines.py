"""Serving engines' memory rules: how much of a chip's HBM the KV cache gets (docs/theory.md §4.3).

Engines size the KV cache differently, and the rule decides the largest batch that fits:

* **vLLM** ``gpu_memory_utilization`` (default 0.9): the engine may use that fraction of the
  *total* memory for weights, activations (peak of a profiling run) and KV cache; the KV cache
  gets what the other two leave.
* **TensorRT-LLM** ``KvCacheConfig.free_gpu_memory_fraction`` (default 0.9): the KV cache gets
  that fraction of the memory *free* after the weights and activations are allocated.
* **SGLang** ``mem_fraction_static`` (default 0.88 on one GPU): the fraction of the total memory
  for the static pools, weights and KV cache; activations live in the rest.

Each preset is three inputs of the symbolic model (``memory_fraction`` ``u``,
``kv_memory_fraction`` ``f_kv``, ``activations_in_budget`` ``α``): the KV cache gets
``f_kv·(u·M − W − α·A)``. :meth:`Engine.apply` sets them on an
:class:`~costmodel.config.Efficiency` or a profile, which every evaluating function takes as
``efficiency``; the command line's ``--engine`` does the same. Importing this module does not
import JAX.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .config import Efficiency
from .efficiency import Profile, load_profile
from .errors import ConfigError, unknown_name
from .limits import check_number

__all__ = ["Engine", "ENGINES", "DEFAULT_ENGINE", "engine", "with_engine", "MEMORY_FIELDS", "Scheduler", "SCHEDULERS",
           "KV_RESERVATIONS", "UNBOUNDED", "scheduler_of"]

#: The efficiency inputs an engine preset sets.
MEMORY_FIELDS = ("memory_fraction", "kv_memory_fraction", "activations_in_budget")

#: How an engine holds the KV cache of a running request: ``"growing"``, pages allocated as the sequence
#: grows (the cache holds the mean context ``I + O/2`` per sequence; preemption when full), or
#: ``"peak"``, the whole ``I + O`` reserved at admission (no request is ever evicted).
KV_RESERVATIONS = ("growing", "peak")

@dataclass(frozen=True)
class Scheduler:
    """An engine's scheduling rules (docs/serving.md §19.9): how the KV cache is reserved and the caps
    on a step.

    Attributes:
        kv_reservation: one of :data:`KV_RESERVATIONS`.
        max_seqs: most running sequences per replica (vLLM ``max_num_seqs``, TensorRT-LLM
            ``max_batch_size``, SGLang ``max_running_requests``); ``None``: no cap.
        max_batched_tokens: most tokens a step processes, decode tokens first and prompt chunks in the
            rest (vLLM ``max_num_batched_tokens``, TensorRT-LLM ``max_num_tokens``, SGLang
            ``chunked_prefill_size``); ``None``: no cap.
        chunked_prefill: whether a prompt may be split over steps; without it a step prefills whole
            prompts within its token budget (TensorRT-LLM's default), so no prompt may exceed it.
        name: the preset's name (or ``"unbounded"``).
        source: where the rules are stated.
    """

    kv_reservation: str = "growing"
    max_seqs: float | None = None
    max_batched_tokens: float | None = None
    chunked_prefill: bool = True
    name: str = "unbounded"
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.chunked_prefill, bool):
            raise ConfigError(f"chunked_prefill must be True or False, got {self.chunked_prefill!r:.60}")
        if self.kv_reservation not in KV_RESERVATIONS:
            raise ConfigError(f"kv_reservation must be one of {', '.join(KV_RESERVATIONS)}, got "
                              f"{self.kv_reservation!r:.60}")
        for f in ("max_seqs", "max_batched_tokens"):
            v = getattr(self, f)
            if v is not None:
                whole = int(v) if isinstance(v, float) and v.is_integer() else v
                object.__setattr__(self, f, float(check_number(f, whole, integer=True)))

    def kv_context(self, input_tokens: float, output_tokens: float) -> float:
        """Tokens of KV cache a running sequence holds: ``I + O`` reserved at admission (``peak``), or its
        mean context ``I + O/2`` as pages grow."""
        return input_tokens + (output_tokens if self.kv_reservation == "peak" else output_tokens / 2)

    def with_overrides(self, *, max_seqs: float | None = None, max_batched_tokens: float | None = None,
                       kv_reservation: str | None = None, chunked_prefill: bool | None = None) -> "Scheduler":
        """These rules with the given caps, reservation or chunking replaced (``None``: keep)."""
        changes = {k: v for k, v in (("max_seqs", max_seqs), ("max_batched_tokens", max_batched_tokens),
                                     ("kv_reservation", kv_reservation), ("chunked_prefill", chunked_prefill))
                   if v is not None}
        if not changes:
            return self
        mark = " (overridden)"
        return replace(self, **changes, name=self.name if self.name.endswith(mark) else self.name + mark)


#: No caps, pages as sequences grow: the idealised engine (the default of :func:`costmodel.serve`).
UNBOUNDED = Scheduler()


@dataclass(frozen=True)
class Engine:
    """One engine's memory rule.

    Attributes:
        name: the preset's name (``"vllm"``, ``"trtllm"``, ``"sglang"``).
        setting: the engine's own name for the knob; ``value`` its default.
        memory_fraction, kv_memory_fraction, activations_in_budget: the model inputs the rule sets.
        rule: the rule in words; ``source``: the engine documentation that states it.
    """

    name: str
    setting: str
    value: float
    memory_fraction: float
    kv_memory_fraction: float
    activations_in_budget: float
    rule: str
    source: str
    schedulers: tuple[tuple[float, tuple[str, ...], Scheduler], ...] = ((0.0, (), UNBOUNDED),)

    def scheduler(self, hardware=None) -> Scheduler:
        """The engine's default scheduling rules on ``hardware`` (a spec or a catalog name; ``None``: the
        largest-memory defaults). Engines pick some defaults by the GPU's memory: the first rule whose
        memory floor the chip reaches and whose name is not excluded."""
        if hardware is None:
            return self.schedulers[0][2]
        if isinstance(hardware, str):
            from .specs import load_hardware

            hardware = load_hardware(hardware)
        name = hardware.name.lower()
        for floor, excluded, rules in self.schedulers:
            if hardware.hbm_bytes >= floor and not any(x in name for x in excluded):
                return rules
        return self.schedulers[-1][2]

    def inputs(self) -> dict[str, float]:
        """The memory inputs this rule sets (``memory_fraction``, ``kv_memory_fraction``, ``activations_in_budget``)."""
        return {f: float(getattr(self, f)) for f in MEMORY_FIELDS}

    def apply(self, efficiency: Efficiency | Profile | str | Path) -> Efficiency | Profile:
        """``efficiency`` with this engine's memory rule.

        An :class:`Efficiency` comes back as one; a profile (a name, a path or a
        :class:`Profile`) comes back as a :class:`Profile` whose fixed inputs carry the rule and
        whose parameters no longer set it.
        """
        if isinstance(efficiency, Efficiency):
            return replace(efficiency, **self.inputs())
        p = load_profile(efficiency)
        params = tuple(q for q in p.parameters if q["field"] not in MEMORY_FIELDS)
        return replace(p, name=p.name if p.name.endswith(f"@{self.name}") else f"{p.name}@{self.name}",
                       fixed=p.fixed | self.inputs(), parameters=params)


#: The presets, each at its engine's default setting.
ENGINES: dict[str, Engine] = {
    "vllm": Engine(
        "vllm", "gpu_memory_utilization", 0.9, 0.9, 1.0, 1.0,
        "the KV cache gets gpu_memory_utilization x total memory - weights - peak activations",
        "vLLM engine arguments, --gpu-memory-utilization: 'The fraction of GPU memory to be used for the "
        "model executor ... default 0.9' (docs.vllm.ai/en/stable/configuration/engine_args.html); "
        "vllm/worker: KV cache bytes = total x utilization - weights - profiled peak activation memory"),
    "trtllm": Engine(
        "trtllm", "kv_cache_free_gpu_memory_fraction", 0.9, 1.0, 0.9, 1.0,
        "the KV cache gets kv_cache_free_gpu_memory_fraction x (total memory - weights - activations)",
        "TensorRT-LLM 'How to Change KV Cache Behavior' (nvidia.github.io/TensorRT-LLM/examples/"
        "kvcacheconfig.html): 'The default for free_gpu_memory_fraction is 0.9, which means TensorRT LLM "
        "will try to allocate 90% of free GPU memory for KV cache'; KvCacheConfig.free_gpu_memory_fraction "
        "= 0.9 (llm-api reference); docs/source/reference/memory.md: weights and activations first"),
    "sglang": Engine(
        "sglang", "mem_fraction_static", 0.88, 0.88, 1.0, 0.0,
        "weights and the KV cache pool get mem_fraction_static x total memory; activations the rest",
        "SGLang server arguments, --mem-fraction-static: 'The fraction of the memory used for static "
        "allocation (model weights and KV cache memory pool)'; default 0.88 at tp=1 (0.87 tp2, 0.85 tp4, "
        "0.81-0.83 tp8, sgl-project/sglang python/sglang/srt/server_args.py); KV pool = total x "
        "mem_fraction_static - weights (model_runner.py)"),
}

_GIB = 2**30
_VLLM = ("vLLM 0.11.0 (V1 engine), vllm/engine/arg_utils.py EngineArgs._set_default_args: for `vllm serve` "
         "(UsageContext.OPENAI_API_SERVER) max_num_seqs 1024 and max_num_batched_tokens 8192 'if device_memory >= "
         "70 * GiB_bytes and \"a100\" not in device_name', else 256 and 2048; chunked prefill always on; "
         "vllm/v1/core/kv_cache_manager.py allocate_slots: blocks allocated as tokens are computed, none reserved "
         "for future output, preemption by recompute when they run out (docs/configuration/optimization.md)")
_TRTLLM = ("TensorRT-LLM 1.x (PyTorch backend, trtllm-serve): BuildConfig max_batch_size 2048 and max_num_tokens "
           "8192 (tensorrt_llm/builder.py; tensorrt_llm/commands/serve.py takes them as its defaults); "
           "SchedulerConfig.capacity_scheduler_policy GUARANTEED_NO_EVICT (tensorrt_llm/llmapi/llm_args.py): "
           "a request is admitted only with blocks for its whole prompt + max_new_tokens "
           "(cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp, kvCacheManager.cpp); "
           "enable_chunked_prefill False (TorchLlmArgs)")
_SGLANG = ("SGLang 0.5.3, python/sglang/srt/server_args.py _handle_gpu_memory_settings: chunked_prefill_size 16384 "
           "at 160 GB or more (B200, MI300), 8192 from 60 GB (H100, A100-80G, H200), 4096 from 35 GB, 2048 below; "
           "max_running_requests derived from memory (min(KV tokens / 2, a request pool of 2,048-4,096)); "
           "KV reserved as an estimate of the remaining output (new_token_ratio 0.7 decaying to 0.098, "
           "managers/schedule_policy.py) with retraction when it runs out: modelled as growing pages")

#: Each engine's default scheduler by the chip's memory: (memory floor in bytes, excluded chip names, rules).
SCHEDULERS: dict[str, tuple[tuple[float, tuple[str, ...], Scheduler], ...]] = {
    "vllm": ((70 * _GIB, ("a100",), Scheduler("growing", 1024, 8192, True, "vllm", _VLLM)),
             (0.0, (), Scheduler("growing", 256, 2048, True, "vllm", _VLLM))),
    "trtllm": ((0.0, (), Scheduler("peak", 2048, 8192, False, "trtllm", _TRTLLM)),),
    "sglang": ((160 * _GIB, (), Scheduler("growing", None, 16384, True, "sglang", _SGLANG)),
               (60 * _GIB, (), Scheduler("growing", None, 8192, True, "sglang", _SGLANG)),
               (35 * _GIB, (), Scheduler("growing", None, 4096, True, "sglang", _SGLANG)),
               (0.0, (), Scheduler("growing", None, 2048, True, "sglang", _SGLANG))),
}
for _name, _rules in SCHEDULERS.items():
    ENGINES[_name] = replace(ENGINES[_name], schedulers=_rules)

#: The rule the packaged calibrated profile uses (its ``fixed`` inputs): vLLM's default.
DEFAULT_ENGINE = "vllm"


def engine(name: str) -> Engine:
    """The preset called ``name`` (:data:`ENGINES`); raises a one-line error naming the allowed ones."""
    if not isinstance(name, str) or name not in ENGINES:
        raise unknown_name("engine", str(name), list(ENGINES), "Engines set the KV cache's share of HBM.")
    return ENGINES[name]


def with_engine(efficiency: Efficiency | Profile | str | Path, name: str | None) -> Efficiency | Profile | str | Path:
    """``efficiency`` under engine ``name``'s memory rule, or unchanged when ``name`` is ``None``."""
    if name is None:
        return efficiency
    if isinstance(efficiency, bool) or not isinstance(efficiency, (Efficiency, Profile, str, Path)):
        raise ConfigError(f"efficiency must be an Efficiency, a profile name or a path, got {efficiency!r:.80}")
    return engine(name).apply(efficiency)


def scheduler_of(scheduler: Scheduler | str | None, hardware=None) -> Scheduler:
    """A :class:`Scheduler` from a scheduler, an engine's name (its defaults on ``hardware``) or ``None``
    (no caps)."""
    if scheduler is None:
        return UNBOUNDED
    if isinstance(scheduler, str):
        return engine(scheduler).scheduler(hardware)
    if not isinstance(scheduler, Scheduler):
        raise ConfigError(f"scheduler must be a costmodel.engines.Scheduler, an engine name "
                          f"({', '.join(ENGINES)}) or None, got {scheduler!r:.80}")
    return scheduler
