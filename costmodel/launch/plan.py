"""A deployment as engines launch it: the model's checkpoint, its pools of instances and their settings.

:func:`plan_of` reads an answer of :func:`costmodel.optimize` (a :class:`~costmodel.Solution`) or of
:func:`costmodel.optimize_serving` (a :class:`~costmodel.ServingSolution`) into a :class:`LaunchPlan`;
:mod:`costmodel.launch.commands` writes it in an engine's terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, CostModelError
from ..specs import ModelSpec
from ..specs.catalog import load_model

__all__ = ["Pool", "LaunchPlan", "plan_of", "checkpoint_of"]

_HF = re.compile(r"https://huggingface\.co/([\w.-]+/[\w.-]+)")


@dataclass(frozen=True)
class Pool:
    """Instances of one kind.

    Attributes:
        role: ``None`` (aggregated: prefill and decode together), ``"prefill"`` or ``"decode"``.
        tp, pp, ep: this project's degrees (``ep`` multiplies the chips: attention runs data-parallel over
            the ``ep`` groups, docs/sharding.md).
        replicas: instances of this kind.
        max_seqs: sequences in flight per instance (``None``: the engine's default).
        chunk_tokens: prompt tokens per step (the chunked-prefill budget; ``None``: the engine's default).
        batch_sharded_attention: attention data-parallel over the tensor-parallel group too.
        hardware: the pool's chip when the two pools of a disaggregated answer run on different chips
            (``None``: the answer's one chip).
    """

    role: str | None
    tp: int
    pp: int
    ep: int
    replicas: int
    max_seqs: int | None = None
    chunk_tokens: int | None = None
    batch_sharded_attention: bool = False
    hardware: str | None = None

    @property
    def gpus(self) -> int:
        """GPUs of one instance."""
        return self.tp * self.pp * self.ep


@dataclass(frozen=True)
class LaunchPlan:
    """What an engine needs to start the deployment.

    Attributes:
        model: the catalog name.
        checkpoint: the Hugging Face repository of its weights (``None``: not known; the command says MODEL).
        native_precision: the checkpoint's format (weights quantised to another format need it stated).
        weights, kv: the formats the answer assumes.
        pools: one (aggregated) or two (prefill, decode).
        speculative: ``None`` or ``{"draft": "mtp" or a catalog name, "length": γ}``.
        summary: one line: what the answer was.
    """

    model: str
    checkpoint: str | None
    native_precision: str
    weights: str
    kv: str
    pools: tuple[Pool, ...]
    speculative: dict[str, Any] | None = None
    summary: str = ""


def _spec(model):
    """The model's spec, or ``None`` for a name the catalog does not hold (a model read from a config.json)."""
    if isinstance(model, ModelSpec):
        return model
    try:
        return load_model(model)
    except CostModelError:
        return None


def checkpoint_of(model) -> str | None:
    """The Hugging Face repository a model's spec cites (its ``source``), or ``None``."""
    spec = _spec(model)
    m = _HF.search(getattr(spec, "source", "") or "") if spec is not None else None
    return m.group(1) if m else None


def _native(model, weights: str) -> str:
    spec = _spec(model)
    return spec.native_precision if spec is not None else weights  # unknown: take the answer's as the checkpoint's


def plan_of(solution: Any, model: str | None = None) -> LaunchPlan:
    """The :class:`LaunchPlan` of a feasible answer of ``optimize`` or ``optimize_serving``.

    Raises:
        ConfigError: the answer is infeasible (nothing to launch) or not an answer of either.
    """
    from ..optimizer.serving.solution import ServingSolution
    from ..optimizer.solution import Solution

    if isinstance(solution, Solution):
        if not solution.feasible or solution.choice is None:
            raise ConfigError("the answer is infeasible: there is no deployment to launch")
        c = solution.choice.config(solution.problem)
        spec = solution.problem.model
        name = spec.name
        pools = (Pool(None, c["tp"], c["pp"], c["ep"], c["replicas"], max_seqs=int(c["batch"])),)
        summary = (f"{name} on {c['chips']} {solution.problem.hardware.name}: tp={c['tp']} pp={c['pp']} ep={c['ep']} "
                   f"x{c['replicas']}, batch {c['batch']}, {c['weights']} weights, {c['kv']} KV")
        return LaunchPlan(name, checkpoint_of(spec), spec.native_precision, c["weights"], c["kv"], pools, None, summary)
    if isinstance(solution, ServingSolution):
        if not solution.feasible or solution.config is None:
            raise ConfigError("the answer is infeasible: there is no deployment to launch")
        name = model or solution.model
        if name is None:
            raise ConfigError("name the model: plan_of(solution, model='llama-3-70b')")
        c = solution.config
        cap = ((solution.serving or {}).get("scheduler") or {}).get("max_seqs")  # an engine cap the answer assumed
        cap = None if cap is None else int(cap)
        if "prefill" in c:
            p, d = c["prefill"], c["decode"]
            chips = (c.get("prefill_hardware"), c.get("decode_hardware"))
            on_p, on_d = chips if chips[0] != chips[1] else (None, None)  # pools on two chips: each says its own
            pools = (Pool("prefill", p["tp"], p["pp"], p["ep"], p["replicas"], hardware=on_p),
                     Pool("decode", d["tp"], d["pp"], d["ep"], d["replicas"], max_seqs=cap, hardware=on_d))
            weights, kv = d["weights"], d["kv"]
        else:
            pools = (Pool(None, c["tp"], c["pp"], c["ep"], c["replicas"], max_seqs=cap, chunk_tokens=c.get("chunk"),
                          batch_sharded_attention=c.get("attention") == "batch"),)
            weights, kv = c["weights"], c["kv"]
        spec = c.get("spec")
        return LaunchPlan(name, checkpoint_of(name), _native(name, weights), weights, kv, pools,
                          None if spec is None else {"draft": spec["draft"], "length": int(spec["length"])},
                          solution.message.split(";")[0])
    raise ConfigError(f"plan_of takes an answer of costmodel.optimize or optimize_serving, got "
                      f"{type(solution).__name__}")
