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

__all__ = ["Engine", "ENGINES", "DEFAULT_ENGINE", "engine", "with_engine", "MEMORY_FIELDS"]

#: The efficiency inputs an engine preset sets.
MEMORY_FIELDS = ("memory_fraction", "kv_memory_fraction", "activations_in_budget")


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
