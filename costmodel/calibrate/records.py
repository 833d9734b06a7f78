"""Published measurements, each mapped to one full configuration of the model.

``data/measurements.json`` is a copy of the project's measurement set (each
record names its source). :func:`load_cases` turns every record into a
:class:`Case`: model, chip, split, precision, engine, layout, load and the metric
the source measured, in SI units. Fields a source left unstated are filled here
with a stated assumption (``Case.assumptions``), never silently.

Every record is calibrated on: step-level figures (decode steps, streams of one
request, prefills) through the compiled step functions, and whole-request figures
(static batches, offline throughput, time to first token, a disaggregated prefill
pool) through the closed forms of the serving model (:mod:`costmodel.serving`,
docs/serving.md §19), evaluated vectorised by :class:`~costmodel.calibrate.evaluate.CaseSet`.

A user's own file of the same schema maps the same way (:func:`load_cases` with a
path); a record with a missing field, an unknown model, chip or precision, or a
metric the mapping does not know is a one-line :class:`~costmodel.errors.ConfigError`
naming the record.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import Parallel, Precision
from ..engines import DEFAULT_ENGINE, ENGINES
from ..errors import ConfigError, CostModelError
from ..specs import load_hardware, load_model
from ..specs.precision import BYTES_PER_ELEMENT
from ..symbolic import Rules

__all__ = ["Case", "METRICS", "load_records", "load_cases", "case_from_record", "SOURCES", "REQUIRED_FIELDS",
           "check_record", "ENGINE_OF_SOURCE"]

#: metric kind -> (unit, meaning). Every record maps to one of these.
METRICS: dict[str, tuple[str, str]] = {
    "step_s": ("s", "decode step time = inter-token latency"),
    "user_tokens_per_s": ("tokens/s", "output tokens per second of one stream, prefill included"),
    "prefill_s": ("s", "time to prefill the whole batch of prompts"),
    "system_tokens_per_s": ("tokens/s", "output tokens per second of an offline (continuous-batching) run"),
    "ttft_s": ("s", "time to first token of a static batch: the prefill of its prompts"),
    "e2e_s": ("s", "end-to-end latency of a static batch: prefill plus every decode step"),
    "static_tokens_per_s": ("tokens/s", "output tokens per second of a static batch over its whole run"),
    "prefill_tokens_per_s": ("tokens/s", "input tokens per second of a prefill pool"),
}

#: source string of the measurement file -> short key used for leave-one-source-out folds.
SOURCES: dict[str, str] = {
    "gpt-fast (PyTorch team) benchmark table": "gpt-fast",
    "TensorRT-LLM published performance overview": "tensorrt-llm",
    "Pope et al. 2022 'Efficiently Scaling Transformer Inference' (arXiv:2211.05102, MLSys 2023)": "pope-2022",
    "MLPerf Inference v4.1 closed division results": "mlperf-4.1",
    "Intel Gaudi model performance data": "intel-gaudi",
    "SGLang team (LMSYS) blog, prefill phase evaluation": "sglang",
    "vLLM nightly performance benchmark CI (Buildkite)": "vllm-ci",
    "TensorRT-LLM performance.md (v0.5/v0.6.1 reference tables)": "tensorrt-llm-v0.5",
    "TensorRT-LLM performance overview (trtllm-bench, PyTorch backend)": "tensorrt-llm-pytorch",
}

#: The serving engine behind each packaged source (its memory rule sizes the KV cache,
#: :mod:`costmodel.engines`); a record's own ``engine`` field overrides it, and sources not
#: listed take :data:`~costmodel.engines.DEFAULT_ENGINE`.
ENGINE_OF_SOURCE: dict[str, str] = {
    "tensorrt-llm": "trtllm", "mlperf-4.1": "trtllm", "tensorrt-llm-v0.5": "trtllm",
    "tensorrt-llm-pytorch": "trtllm", "sglang": "sglang", "vllm-ci": "vllm",
}

#: Fields every record must have (``null`` where the source did not state it).
REQUIRED_FIELDS = ("id", "model", "hardware", "chips", "tp", "weights_dtype", "kv_dtype", "batch",
                   "prompt_tokens", "generated_tokens", "context_tokens", "phase", "metric", "value", "source")

_RECORD_METRIC = {
    "tokens_per_s_per_user": "user_tokens_per_s",
    "mean_inter_token_latency": "step_s",
    "per_token_latency": "step_s",
    "prefill_latency": "prefill_s",
    "ttft": "ttft_s",
    "e2e_latency": "e2e_s",
    "output_tokens_per_s_system": "system_tokens_per_s",
    "tokens_per_s_system": "system_tokens_per_s",
    "output_tokens_per_s_per_chip": "system_tokens_per_s",
    "input_tokens_per_s_per_node": "prefill_tokens_per_s",
}

# gpt-fast generate.py: --max_new_tokens default 200 (pytorch-labs/gpt-fast, generate.py argparse);
# its tokens/s divides the generated tokens by the whole call, prefill included.
GPT_FAST_OUTPUT_TOKENS = 200
# MLPerf llama2-70b: the record derives ~290 output tokens per sample (tokens/s / samples/s);
# the reference implementation reports 294.45 tokens per sample (mlcommons/inference
# language/llama2-70b/README.md). The mean prompt is not in the record: OpenOrca prompts are
# capped at 1024 tokens (processorca.py --seqlen_limit=1024); half the cap is an assumption
# (a mean near the cap would need over 80% of peak fp8 FLOP/s for the measured rate, see
# docs/calibration.md).
MLPERF_OUTPUT_TOKENS = 290
MLPERF_PROMPT_TOKENS = 512
# "low load (about 2 requests/s)" in the TensorRT-LLM online-serving table (QPS 2).
LOW_LOAD_REQUESTS_PER_S = 2.0
#: Prompt tokens a continuous-batching step may prefill (cm.serve's default chunk budget; vLLM's
#: max_num_batched_tokens and trtllm-bench's max_num_tokens default to 8192).
CHUNK_TOKENS = 8192.0
#: SGLang large-scale EP blog (lm-sys.github.io blog/2025-05-05-large-scale-ep.md): 16,384 tokens per
#: device per prefill batch (stated for the 4K case; the same tokens per device is assumed at 2K).
SGL_TOKENS_PER_DEVICE = 16384
GPUS_PER_NODE = 8  # the unit of an ``..._per_node`` metric: tok/s per node of 8 GPUs


@dataclass(frozen=True)
class Case:
    """One measurement as a configuration the model can evaluate.

    Attributes:
        id, source: the record id and its short source key (a cross-validation fold).
        model, hardware: catalog names.
        parallel, precision: the split and numeric formats.
        metric: a key of :data:`METRICS`; ``measured`` is its value in SI units.
        load: ``"fixed"`` (``batch`` given), ``"max"`` (offline: continuous batching at the
            largest batch that fits, capped by ``batch`` when given), ``"rate"``
            (``request_rate_per_s`` requests per second) or ``"static"`` (a static batch).
        batch: sequences per replica (``load="fixed"`` or ``"static"``), or the cap (``"max"``).
        prompt, output: tokens per request; ``context`` is the mean cached context
            a decode step reads (prompt + output/2 unless the source states it).
        rules: :class:`~costmodel.symbolic.Rules` settings other than the phase, as
            ``(name, value)`` pairs (communication overlap, layout, attention sharding).
        engine: the serving engine whose memory rule sizes the KV cache (:mod:`costmodel.engines`).
        scale: the metric's unit over the model's (1/chips for a per-chip rate, 8/chips per node).
        assumptions: what the mapping had to assume, in words.
    """

    id: str
    source: str
    model: str
    hardware: str
    parallel: Parallel
    precision: Precision
    metric: str
    measured: float
    load: str
    batch: float | None
    prompt: float
    output: float
    context: float
    request_rate_per_s: float = 0.0
    rules: tuple[tuple[str, str], ...] = ()
    engine: str = DEFAULT_ENGINE
    scale: float = 1.0
    chunk_tokens: float = CHUNK_TOKENS
    assumptions: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_time(self) -> bool:
        """Whether the metric is a time (the ideal model must not exceed it) or a rate."""
        return METRICS[self.metric][0] == "s"

    @property
    def layout(self) -> str:
        """The tensor-parallel layout the record names (``Rules.layout``; ``"1d-ws"`` by default)."""
        return dict(self.rules).get("layout", "1d-ws")


def load_records(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The raw records of a measurement file (default: the packaged one), each checked by :func:`check_record`.

    Raises:
        ConfigError: the file cannot be read, is not JSON of ``{"records": [...]}``, or a record is malformed.
    """
    where = "the packaged measurements" if path is None else str(path)
    try:
        text = ((resources.files(__package__) / "data" / "measurements.json").read_text() if path is None
                else Path(path).read_text(encoding="utf-8"))
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"measurements file {where} is not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"measurements file {where} is not UTF-8 text (byte {e.start})") from None
    except (RecursionError, ValueError) as e:
        raise ConfigError(f"measurements file {where} cannot be read: {type(e).__name__}") from None
    except OSError as e:
        raise ConfigError(f"cannot read measurements file {where}: {e.strerror or e}") from None
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list) or not records:
        raise ConfigError(f"measurements file {where} must hold {{\"records\": [...]}} with at least one record")
    for i, r in enumerate(records):
        check_record(r, i)
    ids = [r["id"] for r in records]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise ConfigError(f"measurements file {where}: record id {dup[0]!r} appears more than once")
    return records


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dtype(v: str | None) -> str | None:
    """``"fp8 (block-scaled)"`` -> ``"fp8"``; ``None`` stays ``None``."""
    return None if v is None else v.split()[0] if v.split() else v


def check_record(r: Any, index: int = 0) -> None:
    """Raise a one-line :class:`ConfigError` naming record ``index`` (and its id) if it is malformed.

    Checks: an object with every field of :data:`REQUIRED_FIELDS`; a catalog model and chip; known
    precisions; a metric and phase the mapping knows; a positive finite value; positive whole
    counts where given.
    """
    at = f"measurement record {index}"
    if not isinstance(r, dict):
        raise ConfigError(f"{at} must be a JSON object with fields {', '.join(REQUIRED_FIELDS)}, got {r!r:.60}")
    if isinstance(r.get("id"), str) and r["id"]:
        at += f" ({r['id']})"
    missing = [f for f in REQUIRED_FIELDS if f not in r]
    if missing:
        raise ConfigError(f"{at}: missing field {missing[0]!r} (each record needs {', '.join(REQUIRED_FIELDS)}; "
                          "null where the source did not state it)")
    for f in ("id", "model", "hardware", "phase", "metric", "source"):
        if not isinstance(r[f], str) or not r[f]:
            raise ConfigError(f"{at}: {f} must be a non-empty string, got {r[f]!r:.60}")
    try:
        load_model(r["model"])
        load_hardware(r["hardware"])
    except CostModelError as e:
        raise ConfigError(f"{at}: {e}") from None
    for f in ("weights_dtype", "kv_dtype"):
        v = _dtype(r[f]) if isinstance(r[f], str) else r[f]
        if v is not None and v not in BYTES_PER_ELEMENT:
            raise ConfigError(f"{at}: {f} {r[f]!r:.40} is not a precision the model names "
                              f"(allowed: {', '.join(BYTES_PER_ELEMENT)}, or null)")
    if r["metric"] not in _RECORD_METRIC:
        raise ConfigError(f"{at}: metric {r['metric']!r:.40} is not one the calibration maps "
                          f"(allowed: {', '.join(_RECORD_METRIC)})")
    if r["phase"] not in ("decode", "prefill", "e2e", "offline"):
        raise ConfigError(f"{at}: phase {r['phase']!r:.40} must be decode, prefill, e2e or offline")
    if not _is_number(r["value"]) or r["value"] <= 0:
        raise ConfigError(f"{at}: value must be a positive finite number, got {r['value']!r:.40}")
    for f in ("chips", "tp", "pp", "ep", "replicas", "batch", "prompt_tokens", "generated_tokens", "context_tokens"):
        v = r.get(f)
        if v is not None and (not _is_number(v) or v < 1 or v > 1e9):
            raise ConfigError(f"{at}: {f} must be null or a number from 1 to 1e9, got {v!r:.40}")
    if r.get("engine") is not None and r["engine"] not in ENGINES:
        raise ConfigError(f"{at}: engine {r['engine']!r:.40} must be one of {', '.join(ENGINES)} or null")


def _need(r: dict[str, Any], *names: str) -> None:
    for f in names:
        if r.get(f) is None:
            raise ConfigError(f"measurement record {r['id']}: {f} is null, and metric {r['metric']!r} in phase "
                              f"{r['phase']!r} needs it")


def _source_key(source: str) -> str:
    return SOURCES.get(source) or re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:40] or "source"


def _layout_rules(layout: str) -> tuple[dict[str, str], str]:
    """:class:`~costmodel.symbolic.Rules` settings for a record's layout: a ``Rules.layout`` name or a
    Pope et al. description (docs/theory.md §13)."""
    if layout in ("1d-ws", "2d-ws", "wg-x", "wg-xy", "wg-xyz"):
        return {"layout": layout}, f"layout {layout}"
    ffn = "wg-xyz" if "XYZ weight-gathered" in layout else "2d-ws" if "2D weight-stationary" in layout else "1d-ws"
    rules = {"layout": ffn, "attention_sharding": "batch" if "batch-sharded" in layout else "heads"}
    return rules, f"paper layout '{layout}' as Rules(" + ", ".join(f"{k}={v}" for k, v in rules.items()) + ")"


def _mapping(r: dict[str, Any]) -> dict[str, Any]:
    """Record-specific choices: model variant, split, load, lengths and assumptions."""
    rid, metric, phase = r["id"], r["metric"], r["phase"]
    I, O, B = r["prompt_tokens"], r["generated_tokens"], r["batch"]
    if SOURCES.get(r["source"]) == "gpt-fast" and metric == "tokens_per_s_per_user" and O is None:
        out = GPT_FAST_OUTPUT_TOKENS
        _need(r, "prompt_tokens", "batch")
        return dict(load="fixed", prompt=I, output=out,
                    assumptions=(f"{out} generated tokens (gpt-fast's default max_new_tokens); "
                                 "mean context prompt + output/2",))
    if rid in ("TRT-11", "TRT-14"):
        return dict(load="rate", request_rate_per_s=LOW_LOAD_REQUESTS_PER_S, prompt=I, output=O,
                    assumptions=("2 requests/s; batch from Little's law (costmodel.serving.load_to_batch.low_load_batch)",))
    if rid == "MLP-01":
        prompt = I if I is not None else MLPERF_PROMPT_TOKENS
        return dict(load="max", prompt=prompt, output=O or MLPERF_OUTPUT_TOKENS, batch=B,
                    assumptions=(f"offline at the submission's batch cap {B} per TP2 replica, 4 replicas",
                                 f"{O or MLPERF_OUTPUT_TOKENS} output tokens per sample"
                                 + (" (record)" if O else " (record note)"),
                                 f"mean prompt {prompt} tokens" + (" (record)" if I is not None else
                                                                  ": not stated; half the 1024 cap")))
    if rid.startswith("POPE-"):
        # heads padded 48 -> 64 for these experiments (record's heads_note, Pope et al. section 5);
        # 64-way split on the default 4x4x4 mesh, with the paper's layouts. Communication is
        # not overlapped (the default rule): the paper's looped CollectiveEinsum hides part of
        # it (1.4x over compiler scheduling, docs/theory.md §13.1), the rest is left to calibration.
        prompt = I or r["context_tokens"]
        context = r["context_tokens"] or prompt
        return dict(load="fixed", model="palm-540b-padded64", parallel=Parallel(tp=r["chips"]),
                    prompt=prompt, output=1, context=context,
                    assumptions=("heads padded to 64 (palm-540b-padded64), 64-way tensor split",))
    if metric == "input_tokens_per_s_per_node":
        _need(r, "prompt_tokens", "chips")
        per_device = r.get("tokens_per_device") or SGL_TOKENS_PER_DEVICE
        b_p = B or per_device * r["chips"] / I
        return dict(load="fixed", prompt=I, output=1, context=I, batch=b_p, scale=GPUS_PER_NODE / r["chips"],
                    rules={"attention_sharding": "batch"},
                    assumptions=(f"prefill pool of {r['chips']} chips, {b_p:.0f} prompts of {I} tokens per "
                                 f"prefill ({per_device} tokens per device)",
                                 "attention data-parallel (batch-sharded attention); communication not "
                                 "overlapped: two-batch overlap hides part of the dispatch, not all of it "
                                 "(with a full overlap the calibrated rate is 78% above the measured one)",
                                 "input tokens/s per node = prefill capacity x prompt / (chips / 8)"))
    if metric in ("tokens_per_s_per_user", "mean_inter_token_latency", "per_token_latency"):
        _need(r, "batch", "prompt_tokens")
        out = O or 1
        ctx = r["context_tokens"] or I + out / 2
        return dict(load="fixed", prompt=I, output=out, context=ctx,
                    assumptions=(f"decode at batch {B}, mean context {ctx:g}",))
    if metric in ("prefill_latency", "ttft"):
        _need(r, "prompt_tokens")
        return dict(load="static" if metric == "ttft" else "fixed", prompt=I, output=max(O or 1, 1),
                    context=I, batch=B or 1,
                    assumptions=(f"a static batch of {B or 1}: the prefill of {I} prompt tokens each",))
    if phase == "e2e" or metric == "e2e_latency":
        _need(r, "batch", "prompt_tokens", "generated_tokens")
        return dict(load="static", prompt=I, output=O,
                    assumptions=(f"static batch {B}: prefill of {B} x {I} tokens, then {O - 1} decode steps",))
    _need(r, "prompt_tokens", "generated_tokens")
    return dict(load="max", prompt=I, output=O, batch=B,
                assumptions=("offline: every request queued, continuous batching with chunked prefill at the "
                             "largest batch that fits at context I + O/2" + (f", capped at {B}" if B else ""),))


def case_from_record(r: dict[str, Any]) -> Case:
    """Map one checked raw record to a :class:`Case` (raises :class:`ConfigError` naming it if it cannot)."""
    m = _mapping(r)
    metric = _RECORD_METRIC[r["metric"]]
    prompt, output = float(m["prompt"]), float(m["output"])
    context = float(m.get("context", prompt + output / 2))
    tp, pp, ep = r["tp"] or 1, r.get("pp") or 1, r.get("ep") or 1
    replicas = r.get("replicas") or max(1, (r["chips"] or tp * pp * ep) // (tp * pp * ep))
    parallel = m.get("parallel", Parallel(tp=tp, pp=pp, ep=ep, replicas=replicas))
    source = _source_key(r["source"])
    engine = r.get("engine") or ENGINE_OF_SOURCE.get(source, DEFAULT_ENGINE)
    rules = dict(m.get("rules", {}))
    notes = list(m["assumptions"])
    if r.get("layout"):
        layout_rules, note = _layout_rules(r["layout"])
        rules |= layout_rules
        notes.append(note)
    if r["kv_dtype"] is None:
        notes.append("KV precision not stated: bf16")
    scale = float(m.get("scale", 1.0))
    if r["metric"] == "output_tokens_per_s_per_chip":
        scale = 1.0 / parallel.chips_per_replica / parallel.replicas
    batch = m.get("batch", r["batch"])
    if m["load"] == "static" and metric == "system_tokens_per_s":
        metric = "static_tokens_per_s"
    try:
        Rules(**rules)
        return Case(
            id=r["id"], source=source, model=m.get("model", r["model"]), hardware=r["hardware"],
            parallel=parallel, precision=Precision(weights=_dtype(r["weights_dtype"]), kv=_dtype(r["kv_dtype"])),
            metric=metric, measured=float(r["value"]), load=m["load"],
            batch=None if batch is None else float(batch),
            prompt=prompt, output=output, context=context,
            request_rate_per_s=float(m.get("request_rate_per_s", 0.0)),
            rules=tuple(sorted(rules.items())), engine=engine, scale=scale, assumptions=tuple(notes),
        )
    except CostModelError as e:
        raise ConfigError(f"measurement record {r['id']}: {e}") from None


def load_cases(path: str | Path | None = None) -> list[Case]:
    """Every record of a measurement file (default: the packaged one) as a :class:`Case`, in file order."""
    return [case_from_record(r) for r in load_records(path)]
