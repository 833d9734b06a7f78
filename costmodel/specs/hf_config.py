"""Read a Hugging Face ``config.json`` into a :class:`ModelSpec`.

Handles the field names of Llama/Mistral/Qwen (dense, GQA), Mixtral and
Qwen-MoE (MoE), DeepSeek-V2/V3 (MLA + MoE with shared experts), gpt-oss
(sliding-window layers, MXFP4 experts), Llama 4 (``text_config``, MoE every
``interleave_moe_layer_step``-th layer with a shared expert, chunked local
attention) and GPT-2 style configs. Unknown extra fields are ignored; a missing
required field, a value of the wrong type or out of range is an error that names it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..limits import MODEL_RANGES, shown_value
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
        name: the model's name; defaults to the last part of the config's ``_name_or_path``
            (lower case), else the path as given (a folder's name says little: ``cfgs/config.json``).

    Raises:
        SpecError: the file is unreadable, not JSON, or lacks a required field, or a field has
            the wrong type or lies outside its range (the message names the config's own key).
    """
    source = "config.json"
    default_name = "custom"
    if not isinstance(config, dict):
        if not isinstance(config, (str, Path)):
            raise SpecError(f"model config must be a path or a dict of config.json fields, got {config!r:.80}")
        path = Path(config)
        source = str(path)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except IsADirectoryError:
            raise SpecError(f"model config {source} is a directory; pass the config.json file inside it") from None
        except OSError as e:
            raise SpecError(f"cannot read model config {source}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise SpecError(f"{source} is not UTF-8 text (byte {e.start}); is it a config.json?") from None
        except json.JSONDecodeError as e:
            raise SpecError(f"{source} is not valid JSON (line {e.lineno}: {e.msg})") from None
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            raise SpecError(f"{source} cannot be read as a config.json: {e}") from None
        except RecursionError:
            raise SpecError(f"{source} nests too deeply to be a config.json") from None
        default_name = source
    if not isinstance(config, dict):
        raise SpecError(f"{source} must hold a JSON object of model fields, got a {type(config).__name__}")
    c = config
    hf_name = c.get("_name_or_path")
    if name is None:
        named = isinstance(hf_name, str) and hf_name.strip("/ ")
        name = hf_name.rstrip("/").split("/")[-1].lower() if named else default_name
    if not isinstance(name, str):
        raise SpecError(f"a model's name must be a string, got {name!r}")
    if isinstance(c.get("text_config"), dict) and "num_hidden_layers" not in c:
        c = {**c["text_config"], "quantization_config": c.get("quantization_config")}  # multimodal: the decoder
    fields = _common_fields(c, source)
    fields.update(_moe_fields(c, fields, source))
    fields.update(_mla_fields(c, fields, source))
    fields.update(_window_fields(c, fields, source))
    try:
        return ModelSpec(name=name, source=source, **fields)
    except SpecError as e:  # a relation between fields: speak the config's own keys
        raise SpecError(re.sub(r"\b(" + "|".join(_HF_NAME) + r")\b", lambda g: _HF_NAME[g.group(1)],
                               f"{source}: {e}")) from None


#: ModelSpec field -> the config.json key it is read from (for messages).
_HF_NAME = {"n_layers": "num_hidden_layers", "d_model": "hidden_size", "n_heads": "num_attention_heads",
            "n_kv_heads": "num_key_value_heads", "d_head": "head_dim", "d_ff_expert": "moe_intermediate_size",
            "d_ff": "intermediate_size", "n_experts": "number of routed experts",
            "experts_per_token": "num_experts_per_tok", "n_moe_layers": "MoE layers (num_hidden_layers - first_k_dense_replace)",
            "vocab_size": "vocab_size", "n_expert_groups": "n_group", "expert_groups_per_token": "topk_group"}


def _get(c: dict[str, Any], key: str, source: str) -> Any:
    for k in _ALIASES.get(key, (key,)):
        if c.get(k) is not None:
            return c[k]
    raise SpecError(
        f"{source} lacks {' or '.join(_ALIASES.get(key, (key,)))!s}; "
        "is it a Hugging Face decoder config.json?"
    )


def _int(v: Any, key: str, source: str, field: str, lo: int = 1) -> int:
    """``v`` as an int if it is a whole number in ``[lo, MODEL_RANGES[field]]``; the message names ``key``."""
    hi = MODEL_RANGES[field]
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok and isinstance(v, float):
        ok = math.isfinite(v) and v.is_integer()
    if not ok or not lo <= v <= hi:
        raise SpecError(f"{source}: {key} must be a whole number in [{lo}, {hi:,}], got {shown_value(v)}")
    return int(v)


def _bool(c: dict[str, Any], key: str, default: bool, source: str) -> bool:
    v = c.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise SpecError(f"{source}: {key} must be true or false, got {v!r}")
    return v


def _first(c: dict[str, Any], *keys: str) -> tuple[str, Any]:
    """The first of ``keys`` present with a truthy value, and that value (``(keys[0], None)`` if none)."""
    for k in keys:
        v = c.get(k)
        if v is not None and v is not False and v != 0:
            return k, v
    return keys[0], None


def _common_fields(c: dict[str, Any], source: str) -> dict[str, Any]:
    d_model = _int(_get(c, "d_model", source), "hidden_size", source, "d_model")
    n_heads = _int(_get(c, "n_heads", source), "num_attention_heads", source, "n_heads")
    model_type = str(c.get("model_type", "")).lower()
    ff_key, d_ff = _first(c, "intermediate_size", "n_inner", "ffn_dim")
    d_ff = 4 * d_model if d_ff is None else d_ff
    dtype = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    quant = c.get("quantization_config") or {}
    if not isinstance(quant, dict):
        raise SpecError(f"{source}: quantization_config must be an object, got {quant!r:.80}")
    native = "fp8" if "e4m3" in json.dumps(quant) or quant.get("quant_method") == "fp8" else (
        "mxfp4" if quant.get("quant_method") == "mxfp4" else "fp32" if "float32" in dtype else "bf16")
    kv_key, n_kv = _first(c, "num_key_value_heads")
    hd_key, d_head = _first(c, "head_dim")
    return dict(
        attention="gqa",
        mlp="dense",
        n_layers=_int(_get(c, "n_layers", source), "num_hidden_layers", source, "n_layers"),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=_int(n_heads if n_kv is None else n_kv, kv_key, source, "n_kv_heads"),
        d_head=_int(max(1, d_model // n_heads) if d_head is None else d_head, hd_key, source, "d_head"),
        vocab_size=_int(_get(c, "vocab_size", source), "vocab_size", source, "vocab_size"),
        d_ff=_int(d_ff, ff_key, source, "d_ff"),
        mlp_matrices=2 if model_type in _PLAIN_MLP_TYPES else 3,
        tied_embeddings=_bool(c, "tie_word_embeddings", model_type in _PLAIN_MLP_TYPES, source),
        attention_bias=_bool(c, "attention_bias", model_type in ("qwen2", "qwen2_moe"), source),
        native_precision=native,
    )


def _moe_fields(c: dict[str, Any], base: dict[str, Any], source: str) -> dict[str, Any]:
    experts_key, n_experts = _first(c, "n_routed_experts", "num_local_experts", "num_experts")
    if n_experts is None:
        return {}
    n_experts = _int(n_experts, experts_key, source, "n_experts")
    width_key, expert_width = _first(c, "moe_intermediate_size")
    expert_width = _int(base["d_ff"] if expert_width is None else expert_width,
                        width_key if expert_width is not None else "intermediate_size", source, "d_ff_expert")
    shared = _int(c.get("n_shared_experts") or 0, "n_shared_experts", source, "n_shared_experts", lo=0)
    if not shared and c.get("shared_expert_intermediate_size"):
        width = _int(c["shared_expert_intermediate_size"], "shared_expert_intermediate_size", source, "d_ff")
        shared = max(1, round(width / expert_width))
    dense_layers = _int(c.get("first_k_dense_replace") or 0, "first_k_dense_replace", source, "n_layers", lo=0)
    if dense_layers >= base["n_layers"]:
        raise SpecError(f"{source}: first_k_dense_replace={dense_layers} leaves no MoE layer; it must be below "
                        f"num_hidden_layers={base['n_layers']}")
    top_key, top_k = _first(c, "num_experts_per_tok", "moe_top_k")
    top_k = _int(2 if top_k is None else top_k, top_key, source, "experts_per_token")
    if top_k > n_experts:
        raise SpecError(f"{source}: {top_key}={top_k} exceeds the {n_experts} experts of {experts_key}")
    n_moe = base["n_layers"] - dense_layers
    dense_width = base["d_ff"]
    if str(c.get("model_type", "")).startswith("llama4"):
        # Llama 4: MoE every interleave_moe_layer_step-th layer, one shared expert of the expert
        # width, dense layers of width intermediate_size_mlp (transformers configuration_llama4.py)
        step = _int(c.get("interleave_moe_layer_step") or 1, "interleave_moe_layer_step", source, "n_layers")
        n_moe = base["n_layers"] // step
        if n_moe == 0:
            raise SpecError(f"{source}: interleave_moe_layer_step={step} leaves no MoE layer in "
                            f"num_hidden_layers={base['n_layers']}")
        shared = 1
        dense_width = _int(c.get("intermediate_size_mlp") or dense_width, "intermediate_size_mlp", source, "d_ff")
    # node-limited routing: experts drawn from the best topk_group of n_group groups (DeepSeek-V3
    # report, arXiv 2412.19437, section 2.1.2; transformers configuration_deepseek_v3.py); absent: no limit
    groups = _int(c.get("n_group") or 1, "n_group", source, "n_expert_groups")
    chosen = _int(c.get("topk_group") or groups, "topk_group", source, "expert_groups_per_token")
    return dict(
        mlp="moe",
        n_experts=n_experts,
        n_expert_groups=groups,
        expert_groups_per_token=chosen,
        experts_per_token=top_k,
        n_shared_experts=shared,
        d_ff_expert=expert_width,
        n_moe_layers=n_moe,
        d_ff=dense_width if n_moe < base["n_layers"] else 0,
    )


def _mla_fields(c: dict[str, Any], base: dict[str, Any], source: str) -> dict[str, Any]:
    if not c.get("kv_lora_rank"):
        return {}
    missing = [k for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim") if c.get(k) is None]
    if missing:
        raise SpecError(f"{source} sets kv_lora_rank (multi-head latent attention) but lacks "
                        f"{', '.join(missing)}; an MLA config needs all of them")
    nope = _int(c["qk_nope_head_dim"], "qk_nope_head_dim", source, "qk_nope_head_dim")
    rope = _int(c["qk_rope_head_dim"], "qk_rope_head_dim", source, "qk_rope_head_dim")
    return dict(
        attention="mla",
        q_lora_rank=_int(c.get("q_lora_rank") or 0, "q_lora_rank", source, "q_lora_rank", lo=0),
        kv_lora_rank=_int(c["kv_lora_rank"], "kv_lora_rank", source, "kv_lora_rank"),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=nope,
        v_head_dim=_int(c["v_head_dim"], "v_head_dim", source, "v_head_dim"),
        d_head=nope + rope,
        n_kv_heads=base["n_heads"],
    )


def _window_fields(c: dict[str, Any], base: dict[str, Any], source: str) -> dict[str, Any]:
    """Layers that attend a bounded span: sliding windows (``layer_types``) or Llama 4's chunks."""
    layer_types = c.get("layer_types")
    if isinstance(layer_types, list) and c.get("sliding_window") and "sliding_attention" in layer_types:
        return dict(n_window_layers=min(layer_types.count("sliding_attention"), base["n_layers"]),
                    attention_window=_int(c["sliding_window"], "sliding_window", source, "attention_window"),
                    window_kind="sliding")
    if c.get("attention_chunk_size"):
        # RoPE layers attend within chunks; no_rope_layers[i] == 1 marks a RoPE layer, by default
        # every layer but each no_rope_layer_interval-th (transformers configuration_llama4.py)
        interval = _int(c.get("no_rope_layer_interval") or 4, "no_rope_layer_interval", source, "n_layers")
        rope = c.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(base["n_layers"])]
        if not (isinstance(rope, list) and all(v in (0, 1) and not isinstance(v, float) for v in rope)):
            raise SpecError(f"{source}: no_rope_layers must be a list of 0s and 1s, got {rope!r:.80}")
        return dict(n_window_layers=min(int(sum(rope)), base["n_layers"]),
                    attention_window=_int(c["attention_chunk_size"], "attention_chunk_size", source,
                                          "attention_window"),
                    window_kind="chunked")
    return {}
