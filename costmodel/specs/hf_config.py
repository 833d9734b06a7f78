"""Read a Hugging Face ``config.json`` into a :class:`ModelSpec`.

Handles the field names of Llama/Mistral/Qwen (dense, GQA), Mixtral and
Qwen-MoE (MoE), DeepSeek-V2/V3 (MLA + MoE with shared experts), gpt-oss
(sliding-window layers, MXFP4 experts), Llama 4 (``text_config``, MoE every
``interleave_moe_layer_step``-th layer with a shared expert, chunked local
attention) and GPT-2 style configs. Unknown extra fields are ignored; a missing
required field is an error that names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .model import ModelSpec

__all__ = ["model_from_hf_config"]

_PLAIN_MLP_TYPES = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2", "gpt_bigcode"}
_ALIASES = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_heads": ("num_attention_heads", "n_head"),
}


def model_from_hf_config(config: str | Path | dict[str, Any], name: str | None = None) -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` (path or parsed dict).

    Args:
        config: path to the file, or its parsed contents.
        name: the model's name; defaults to the config's ``_name_or_path`` or the
            folder holding the file.

    Raises:
        SpecError: the file is unreadable, not JSON, or lacks a required field.
    """
    source = "config.json"
    if not isinstance(config, dict):
        path = Path(config)
        source = str(path)
        try:
            config = json.loads(path.read_text())
        except OSError as e:
            raise SpecError(f"cannot read model config {source}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise SpecError(f"{source} is not valid JSON (line {e.lineno}: {e.msg})") from None
        if not isinstance(config, dict):
            raise SpecError(f"{source} must hold a JSON object of model fields")
        name = name or config.get("_name_or_path") or path.resolve().parent.name
    c = config
    name = name or c.get("_name_or_path") or "custom"
    if isinstance(c.get("text_config"), dict) and "num_hidden_layers" not in c:
        c = {**c["text_config"], "quantization_config": c.get("quantization_config")}  # multimodal: the decoder
    fields = _common_fields(c, source)
    fields.update(_moe_fields(c, fields))
    fields.update(_mla_fields(c, fields))
    fields.update(_window_fields(c, fields))
    try:
        return ModelSpec(name=str(name).split("/")[-1].lower(), source=source, **fields)
    except TypeError as e:  # wrong value type in the file
        raise SpecError(f"{source}: {e}") from None


def _get(c: dict[str, Any], key: str, source: str) -> Any:
    for k in _ALIASES.get(key, (key,)):
        if c.get(k) is not None:
            return c[k]
    raise SpecError(
        f"{source} lacks {' or '.join(_ALIASES.get(key, (key,)))!s}; "
        "is it a Hugging Face decoder config.json?"
    )


def _int(v: Any, key: str, source: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise SpecError(f"{source}: {key} must be an integer, got {v!r}")
    return int(v)


def _common_fields(c: dict[str, Any], source: str) -> dict[str, Any]:
    d_model = _int(_get(c, "d_model", source), "hidden_size", source)
    n_heads = _int(_get(c, "n_heads", source), "num_attention_heads", source)
    model_type = str(c.get("model_type", "")).lower()
    d_ff = c.get("intermediate_size") or c.get("n_inner") or c.get("ffn_dim") or 4 * d_model
    dtype = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    quant = c.get("quantization_config") or {}
    native = "fp8" if "e4m3" in json.dumps(quant) or quant.get("quant_method") == "fp8" else (
        "mxfp4" if quant.get("quant_method") == "mxfp4" else "fp32" if "float32" in dtype else "bf16")
    return dict(
        attention="gqa",
        mlp="dense",
        n_layers=_int(_get(c, "n_layers", source), "num_hidden_layers", source),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=_int(c.get("num_key_value_heads") or n_heads, "num_key_value_heads", source),
        d_head=_int(c.get("head_dim") or d_model // n_heads, "head_dim", source),
        vocab_size=_int(_get(c, "vocab_size", source), "vocab_size", source),
        d_ff=_int(d_ff, "intermediate_size", source),
        mlp_matrices=2 if model_type in _PLAIN_MLP_TYPES else 3,
        tied_embeddings=bool(c.get("tie_word_embeddings", model_type in _PLAIN_MLP_TYPES)),
        attention_bias=bool(c.get("attention_bias", model_type in ("qwen2", "qwen2_moe"))),
        native_precision=native,
    )


def _moe_fields(c: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    n_experts = c.get("n_routed_experts") or c.get("num_local_experts") or c.get("num_experts")
    if not n_experts:
        return {}
    expert_width = c.get("moe_intermediate_size") or base["d_ff"]
    shared = c.get("n_shared_experts") or 0
    if not shared and c.get("shared_expert_intermediate_size"):
        shared = max(1, round(c["shared_expert_intermediate_size"] / expert_width))
    dense_layers = int(c.get("first_k_dense_replace") or 0)
    n_moe = base["n_layers"] - dense_layers
    dense_width = base["d_ff"]
    if str(c.get("model_type", "")).startswith("llama4"):
        # Llama 4: MoE every interleave_moe_layer_step-th layer, one shared expert of the expert
        # width, dense layers of width intermediate_size_mlp (transformers configuration_llama4.py)
        n_moe = base["n_layers"] // int(c.get("interleave_moe_layer_step") or 1)
        shared = 1
        dense_width = int(c.get("intermediate_size_mlp") or dense_width)
    return dict(
        mlp="moe",
        n_experts=int(n_experts),
        experts_per_token=int(c.get("num_experts_per_tok") or c.get("moe_top_k") or 2),
        n_shared_experts=int(shared),
        d_ff_expert=int(expert_width),
        n_moe_layers=n_moe,
        d_ff=dense_width if n_moe < base["n_layers"] else 0,
    )


def _mla_fields(c: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    if not c.get("kv_lora_rank"):
        return {}
    nope, rope = int(c["qk_nope_head_dim"]), int(c["qk_rope_head_dim"])
    return dict(
        attention="mla",
        q_lora_rank=int(c.get("q_lora_rank") or 0),
        kv_lora_rank=int(c["kv_lora_rank"]),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=nope,
        v_head_dim=int(c["v_head_dim"]),
        d_head=nope + rope,
        n_kv_heads=base["n_heads"],
    )


def _window_fields(c: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Layers that attend a bounded span: sliding windows (``layer_types``) or Llama 4's chunks."""
    layer_types = c.get("layer_types")
    if isinstance(layer_types, list) and c.get("sliding_window") and "sliding_attention" in layer_types:
        return dict(n_window_layers=layer_types.count("sliding_attention"),
                    attention_window=int(c["sliding_window"]), window_kind="sliding")
    if c.get("attention_chunk_size"):
        # RoPE layers attend within chunks; no_rope_layers[i] == 1 marks a RoPE layer, by default
        # every layer but each no_rope_layer_interval-th (transformers configuration_llama4.py)
        interval = int(c.get("no_rope_layer_interval") or 4)
        rope = c.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(base["n_layers"])]
        return dict(n_window_layers=int(sum(rope)), attention_window=int(c["attention_chunk_size"]),
                    window_kind="chunked")
    return {}
