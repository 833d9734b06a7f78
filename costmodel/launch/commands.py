"""A :class:`~costmodel.launch.plan.LaunchPlan` written as an engine's launch commands.

Each engine's flags are its own, for the version its flag list states (:mod:`costmodel.launch.flags`):
vLLM's ``vllm serve``, SGLang's ``python -m sglang.launch_server`` and TensorRT-LLM's ``trtllm-serve``.
The degrees translate as docs/sharding.md tabulates: this project's ``ep`` multiplies the chips and runs
attention data-parallel over the ``ep`` groups, which the engines spell as data-parallel attention plus
expert parallelism over all the instance's GPUs.
"""

from __future__ import annotations

import json
import shlex

from ..errors import ConfigError
from .flags import ENGINES, engine_flags
from .plan import LaunchPlan, Pool, checkpoint_of

__all__ = ["launch_command"]

#: weight formats an engine quantises a 16-bit checkpoint to at load time (others need a quantised checkpoint)
_ONLINE_QUANT = {"vllm": {"fp8": "fp8"}, "sglang": {"fp8": "fp8"}, "trtllm": {}}
#: KV-cache formats in each engine's spelling (``None``: the engine's default, the checkpoint's dtype)
_KV = {
    "vllm": {"fp8": "fp8", "fp16": "float16", "bf16": "bfloat16", "nvfp4": "nvfp4", "fp4": "nvfp4",
             "int8": "int8_per_token_head", "int4": "int4_per_token_head"},
    "sglang": {"fp8": "fp8_e4m3", "bf16": "bfloat16", "fp4": "nvfp4", "nvfp4": "nvfp4"},
    "trtllm": {"fp8": "fp8", "nvfp4": "nvfp4", "fp4": "nvfp4"},
}


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _json(obj: dict) -> str:
    return shlex.quote(json.dumps(obj, separators=(",", ":")))


def _checkpoint(plan: LaunchPlan) -> str:
    return plan.checkpoint or "MODEL"


def _notes(plan: LaunchPlan, engine: str) -> list[str]:
    f = engine_flags(engine)
    source = f.source.split(",")[0].split(" (")[0]
    out = [f"# costmodel: {plan.summary}" if plan.summary else f"# costmodel: {plan.model}",
           f"# {f.engine} {f.version.split(' (')[0]}: flags as its parser defines them ({source})"]
    if plan.checkpoint is None:
        out.append(f"# MODEL: the checkpoint of {plan.model} (its spec names no Hugging Face repository)")
    if plan.weights != plan.native_precision and plan.weights not in _ONLINE_QUANT[engine]:
        out.append(f"# weights in {plan.weights}: use a checkpoint quantised to {plan.weights} "
                   f"(the answer assumes them; {f.engine} does not quantise to it at load time)")
    if plan.kv != "bf16" and plan.kv not in _KV[engine]:
        out.append(f"# KV cache in {plan.kv}: {f.engine} has no such KV format; the closest is its default")
    return out


def _kv_value(plan: LaunchPlan, engine: str) -> str | None:
    if plan.kv == "bf16" and plan.native_precision not in ("fp16", "fp32"):
        return None  # the engines' default: the checkpoint's activation dtype, bf16 for these
    return _KV[engine].get(plan.kv)


def _attention_note(pool: Pool, closest: str) -> list[str]:
    if not pool.batch_sharded_attention or pool.tp == 1:
        return []
    return [f"# the answer shards attention by batch over the {pool.tp} tensor-parallel GPUs; the closest here is "
            f"data-parallel attention ({closest})"]


def _instance(pool: Pool, args: list[str], closest_dp_attention: str, role_note: str) -> list[str]:
    """One instance's command, after the notes on its replicas, its attention and its role."""
    lines = _replicas_note(pool, pool.role or "replicas") + _attention_note(pool, closest_dp_attention)
    if pool.role:
        on = f" on {pool.hardware} GPUs" if pool.hardware else ""
        lines.append(f"# {pool.role} instance{on}{role_note}")
    return lines + [" \\\n  ".join(args)]


def _replicas_note(pool: Pool, what: str) -> list[str]:
    if pool.replicas == 1:
        return []
    return [f"# {what}: run {pool.replicas} instances like this one ({pool.gpus} GPUs each) behind a load balancer"]


#: the flags of online quantisation, the KV-cache format and the cap on sequences in flight
_FORMAT_FLAGS = {"vllm": ("--quantization", "--kv-cache-dtype", "--max-num-seqs"),
                 "sglang": ("--quantization", "--kv-cache-dtype", "--max-running-requests")}


def _formats_and_cap(plan: LaunchPlan, pool: Pool, engine: str) -> list[str]:
    """The weight quantisation (a 16-bit checkpoint quantised at load), KV format and sequence cap flags."""
    quant_flag, kv_flag, seqs_flag = _FORMAT_FLAGS[engine]
    quant = _ONLINE_QUANT[engine].get(plan.weights) if plan.weights != plan.native_precision else None
    kv = _kv_value(plan, engine)
    return ([f"{quant_flag} {quant}"] if quant else []) + ([f"{kv_flag} {kv}"] if kv else []) \
        + ([f"{seqs_flag} {pool.max_seqs}"] if pool.max_seqs else [])


# ---------------------------------------------------------------- vLLM

def _vllm(plan: LaunchPlan) -> list[str]:
    out = _notes(plan, "vllm")
    disagg = len(plan.pools) > 1
    if disagg:
        out.append("# disaggregated: the prefill and decode instances exchange KV over NIXL; put vLLM's "
                   "disaggregation proxy (or a router that sends each request to both) in front")
    for pool in plan.pools:
        args = [f"vllm serve {_q(_checkpoint(plan))}", f"--tensor-parallel-size {pool.tp}"]
        if pool.pp > 1:
            args.append(f"--pipeline-parallel-size {pool.pp}")
        if pool.ep > 1:  # attention data-parallel over the ep groups, experts over all tp·ep GPUs
            args += [f"--data-parallel-size {pool.ep}", "--enable-expert-parallel"]
        args += _formats_and_cap(plan, pool, "vllm")
        if pool.chunk_tokens and pool.role in (None, "prefill"):
            args += ["--enable-chunked-prefill", f"--max-num-batched-tokens {pool.chunk_tokens}"]
        if plan.speculative and pool.role in (None, "decode"):
            spec = plan.speculative
            conf = ({"method": "mtp", "num_speculative_tokens": spec["length"]} if spec["draft"] == "mtp" else
                    {"method": "draft_model", "model": checkpoint_of(spec["draft"]) or spec["draft"],
                     "num_speculative_tokens": spec["length"]})
            args.append(f"--speculative-config {_json(conf)}")
        if disagg:
            args.append(f"--kv-transfer-config {_json({'kv_connector': 'NixlConnector', 'kv_role': 'kv_both'})}")
        out += _instance(pool, args, "--data-parallel-size", "")
    return out


# ---------------------------------------------------------------- SGLang

def _sglang(plan: LaunchPlan) -> list[str]:
    out = _notes(plan, "sglang")
    for pool in plan.pools:
        gpus = pool.tp * pool.ep
        args = ["python -m sglang.launch_server", f"--model-path {_q(_checkpoint(plan))}", f"--tp-size {gpus}"]
        if pool.ep > 1:  # attention data-parallel over ep groups of tp GPUs, experts over all of them
            args += [f"--attn-dp-size {pool.ep}", f"--ep-size {gpus}"]
        if pool.pp > 1:
            args.append(f"--pp-size {pool.pp}")
        args += _formats_and_cap(plan, pool, "sglang")
        if pool.chunk_tokens and pool.role in (None, "prefill"):
            args.append(f"--chunked-prefill-size {pool.chunk_tokens}")
        if plan.speculative and pool.role in (None, "decode"):
            g = plan.speculative["length"]
            if plan.speculative["draft"] == "mtp":  # DeepSeek's MTP runs as SGLang's EAGLE (NextN) draft
                args += ["--speculative-algorithm EAGLE", f"--speculative-num-steps {g}",
                         "--speculative-eagle-topk 1", f"--speculative-num-draft-tokens {g + 1}"]
            else:
                draft = checkpoint_of(plan.speculative["draft"]) or plan.speculative["draft"]
                args += ["--speculative-algorithm STANDALONE", f"--speculative-draft-model-path {_q(draft)}",
                         f"--speculative-num-steps {g}", "--speculative-eagle-topk 1",
                         f"--speculative-num-draft-tokens {g + 1}"]
        if pool.role:
            args.append(f"--disaggregation-mode {pool.role}")
        out += _instance(pool, args, "--attn-dp-size", " (with sglang_router's PD mode in front)")
    return out


# ---------------------------------------------------------------- TensorRT-LLM

def _trtllm_options(plan: LaunchPlan, pool: Pool) -> dict:
    opts: dict = {}
    kv = _kv_value(plan, "trtllm")
    if kv:
        opts["kv_cache_config"] = {"dtype": kv}
    if pool.chunk_tokens and pool.role in (None, "prefill"):
        opts["enable_chunked_prefill"] = True
    if pool.ep > 1:
        opts["enable_attention_dp"] = True
    if pool.role:  # a context or generation worker of a disaggregated deployment hands KV over
        opts["cache_transceiver_config"] = {"backend": "DEFAULT"}
    if plan.speculative and pool.role in (None, "decode"):
        g = plan.speculative["length"]
        if plan.speculative["draft"] == "mtp":
            opts["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": g}
        else:
            opts["speculative_config"] = {"decoding_type": "DraftTarget", "max_draft_len": g,
                                          "speculative_model": checkpoint_of(plan.speculative["draft"])
                                          or plan.speculative["draft"]}
    return opts


def _yaml(d: dict, indent: int = 0) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * indent + f"{k}:")
            out += _yaml(v, indent + 2)
        else:
            out.append(" " * indent + f"{k}: {json.dumps(v)}")
    return out


def _trtllm(plan: LaunchPlan) -> list[str]:
    out = _notes(plan, "trtllm")
    for i, pool in enumerate(plan.pools):
        gpus = pool.tp * pool.ep
        args = [f"trtllm-serve {_q(_checkpoint(plan))}", f"--tp_size {gpus}"]
        if pool.pp > 1:
            args.append(f"--pp_size {pool.pp}")
        if pool.ep > 1:
            args.append(f"--ep_size {gpus}")
        if pool.max_seqs:
            args.append(f"--max_batch_size {pool.max_seqs}")
        if pool.chunk_tokens and pool.role in (None, "prefill"):
            args.append(f"--max_num_tokens {pool.chunk_tokens}")
        opts = _trtllm_options(plan, pool)
        name = f"{pool.role or 'serve'}-options.yaml"
        if opts:
            out.append(f"cat > {name} <<'EOF'")
            out += _yaml(opts)
            out.append("EOF")
            args.append(f"--extra_llm_api_options {name}")
        if plan.weights != plan.native_precision:
            out.append(f"# weights in {plan.weights}: TensorRT-LLM loads a checkpoint quantised to it "
                       "(NVIDIA Model Optimizer); point the command at that checkpoint")
        role = f" ({'context' if pool.role == 'prefill' else 'generation'} server of `trtllm-serve disaggregated`)"
        out += _instance(pool, args, "enable_attention_dp", role)
    return out


_WRITERS = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm}


def launch_command(plan: LaunchPlan, engine: str) -> str:
    """The launch commands of ``plan`` for ``engine`` (``vllm``, ``sglang`` or ``trtllm``), as shell text:
    comments say what the commands cannot (replicas behind a load balancer, a checkpoint to quantise)."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return "\n".join(_WRITERS[engine](plan)) + "\n"
