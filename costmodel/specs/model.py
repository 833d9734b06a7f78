"""Model architecture specifications (dense, GQA/MQA/MHA, MLA, MoE).

Field names equal the SymPy symbol names of :mod:`costmodel.symbolic`, so a
spec maps one to one onto the inputs of the compiled functions. Widths are in
elements; nothing here is in bytes (precision is a serving choice).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SpecError
from .precision import check_precision

__all__ = ["ModelSpec", "ModelStructure"]

Attention = Literal["gqa", "mla"]
Mlp = Literal["dense", "moe"]
Window = Literal["none", "sliding", "chunked"]


@dataclass(frozen=True)
class ModelStructure:
    """The discrete shape of a model: one compiled function per structure.

    Attributes:
        attention: ``"gqa"`` (multi-head, grouped-query or multi-query) or ``"mla"``.
        mlp: ``"dense"`` or ``"moe"``.
        q_compressed: MLA only; whether queries go through a low-rank latent.
        window: ``"none"`` (every layer attends the whole context), ``"sliding"``
            (``n_window_layers`` layers attend the last ``attention_window`` tokens)
            or ``"chunked"`` (those layers attend within chunks of ``attention_window``
            tokens, as Llama 4's local layers).
    """

    attention: Attention
    mlp: Mlp
    q_compressed: bool = False
    window: Window = "none"


_INT_FIELDS = (
    "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "vocab_size", "d_ff",
    "mlp_matrices", "n_experts", "experts_per_token", "n_shared_experts", "d_ff_expert",
    "n_moe_layers", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
    "v_head_dim", "n_window_layers", "attention_window",
)


@dataclass(frozen=True)
class ModelSpec:
    """A transformer decoder, validated at construction.

    Example:
        >>> from costmodel import load_model
        >>> m = load_model("llama-3-8b")
        >>> (m.n_layers, m.n_kv_heads, m.structure.attention)
        (32, 8, 'gqa')
    """

    name: str
    attention: Attention
    mlp: Mlp
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    vocab_size: int
    d_ff: int
    mlp_matrices: int = 3
    tied_embeddings: bool = False
    parallel_block: bool = False
    attention_bias: bool = False
    native_precision: str = "bf16"
    n_experts: int = 0
    experts_per_token: int = 0
    n_shared_experts: int = 0
    d_ff_expert: int = 0
    n_moe_layers: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    n_window_layers: int = 0
    attention_window: int = 0
    window_kind: Literal["sliding", "chunked"] = "sliding"
    display_name: str = ""
    source: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def structure(self) -> ModelStructure:
        """The discrete structure that selects the compiled function."""
        window = self.window_kind if self.n_window_layers > 0 else "none"
        return ModelStructure(self.attention, self.mlp, self.attention == "mla" and self.q_lora_rank > 0, window)

    @property
    def n_embedding_matrices(self) -> int:
        """1 when the input embedding and LM head share one matrix, else 2."""
        return 1 if self.tied_embeddings else 2

    @property
    def allreduces_per_layer(self) -> int:
        """Tensor-parallel all-reduces per layer: 1 for a parallel block, 2 for a serial one."""
        return 1 if self.parallel_block else 2

    def inputs(self) -> dict[str, float]:
        """Numeric inputs of the symbolic model that this spec provides (symbol name -> value)."""
        vals: dict[str, float] = {f: float(getattr(self, f)) for f in _INT_FIELDS}
        vals["n_embedding_matrices"] = float(self.n_embedding_matrices)
        vals["allreduces_per_layer"] = float(self.allreduces_per_layer)
        vals["attention_bias"] = float(self.attention_bias)
        return vals

    def replace(self, **changes: Any) -> "ModelSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _validate(m: ModelSpec) -> None:
    where = f"model {m.name!r}"
    if m.attention not in ("gqa", "mla"):
        raise SpecError(f"{where}: attention must be 'gqa' or 'mla', got {m.attention!r}")
    if m.mlp not in ("dense", "moe"):
        raise SpecError(f"{where}: mlp must be 'dense' or 'moe', got {m.mlp!r}")
    for f in _INT_FIELDS:
        v = getattr(m, f)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SpecError(f"{where}: {f} must be a non-negative integer, got {v!r}")
    for f in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "vocab_size"):
        if getattr(m, f) <= 0:
            raise SpecError(f"{where}: {f} must be positive, got {getattr(m, f)}")
    if m.mlp_matrices not in (2, 3):
        raise SpecError(f"{where}: mlp_matrices must be 2 (plain MLP) or 3 (gated), got {m.mlp_matrices}")
    if m.n_heads % m.n_kv_heads:
        raise SpecError(f"{where}: n_kv_heads={m.n_kv_heads} must divide n_heads={m.n_heads}")
    check_precision(m.native_precision, f"{where} native_precision")
    if m.mlp == "moe":
        _validate_moe(m, where)
    elif m.d_ff <= 0:
        raise SpecError(f"{where}: a dense model needs d_ff > 0")
    if m.attention == "mla":
        for f in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            if getattr(m, f) <= 0:
                raise SpecError(f"{where}: an MLA model needs {f} > 0")
    if m.n_window_layers:
        _validate_window(m, where)


def _validate_window(m: ModelSpec, where: str) -> None:
    if m.window_kind not in ("sliding", "chunked"):
        raise SpecError(f"{where}: window_kind must be 'sliding' or 'chunked', got {m.window_kind!r}")
    if m.attention_window <= 0:
        raise SpecError(f"{where}: n_window_layers={m.n_window_layers} needs attention_window > 0 (tokens)")
    if m.n_window_layers >= m.n_layers:
        raise SpecError(f"{where}: n_window_layers={m.n_window_layers} must be below n_layers={m.n_layers} "
                        "(at least one layer attends the whole context)")
    if m.attention != "gqa":
        raise SpecError(f"{where}: windowed attention is modelled for attention='gqa' only, got {m.attention!r}")


def _validate_moe(m: ModelSpec, where: str) -> None:
    for f in ("n_experts", "experts_per_token", "d_ff_expert", "n_moe_layers"):
        if getattr(m, f) <= 0:
            raise SpecError(f"{where}: a MoE model needs {f} > 0")
    if m.experts_per_token > m.n_experts:
        raise SpecError(
            f"{where}: experts_per_token={m.experts_per_token} exceeds n_experts={m.n_experts}"
        )
    if m.n_moe_layers > m.n_layers:
        raise SpecError(f"{where}: n_moe_layers={m.n_moe_layers} exceeds n_layers={m.n_layers}")
    if m.n_moe_layers < m.n_layers and m.d_ff <= 0:
        raise SpecError(f"{where}: {m.n_layers - m.n_moe_layers} dense layers need d_ff > 0")
