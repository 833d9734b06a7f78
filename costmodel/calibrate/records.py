"""Published measurements, each mapped to one full configuration of the model.

``data/measurements.json`` is a copy of the project's measurement set (each
record names its source). :func:`load_cases` turns every record into a
:class:`Case`: model, chip, split, precision, phase, load and the metric the
source measured, in SI units. Fields a source left unstated are filled here
with a stated assumption (``Case.assumptions``), never silently.

Not every record is a step-level measurement: whole requests of a static batch
(phase ``e2e``), times to first token, serving-stack throughput with a
scheduler-chosen batch, formats the model does not name and models of another
structure than the fitted one are left out of the fit, each with its reason
(:func:`excluded_records`); a serving model calibrates on them later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..config import Parallel, Precision
from ..errors import SpecError
from ..specs import load_model
from ..specs.model import ModelStructure
from ..specs.precision import BYTES_PER_ELEMENT

__all__ = ["Case", "METRICS", "load_records", "load_cases", "case_from_record", "SOURCES",
           "FITTED_STRUCTURE", "exclusion_reason", "excluded_records"]

#: metric kind -> (unit, meaning). Every record maps to one of these.
METRICS: dict[str, tuple[str, str]] = {
    "step_s": ("s", "decode step time = inter-token latency"),
    "user_tokens_per_s": ("tokens/s", "output tokens per second of one stream, prefill included"),
    "prefill_s": ("s", "time to prefill the whole batch of prompts"),
    "system_tokens_per_s": ("tokens/s", "output tokens per second of the whole system at its load"),
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

#: The model structure every fitted case shares (the vectorised evaluator runs one compiled structure).
FITTED_STRUCTURE = ModelStructure("gqa", "dense")

#: Records whose figure is the output of a serving stack rather than of a stated configuration.
_SERVING_STACK = {
    "TRTQ3-01": "serving-stack figure: trtllm-bench max-throughput run with a scheduler-chosen batch, "
                "attention data parallelism and an unstated expert-parallel size and KV precision",
    "TRTQ3-02": "serving-stack figure: trtllm-bench max-throughput run with a scheduler-chosen batch, "
                "attention data parallelism and an unstated expert-parallel size and KV precision",
}

_RECORD_METRIC = {
    "tokens_per_s_per_user": "user_tokens_per_s",
    "mean_inter_token_latency": "step_s",
    "per_token_latency": "step_s",
    "prefill_latency": "prefill_s",
    "output_tokens_per_s_system": "system_tokens_per_s",
    "tokens_per_s_system": "system_tokens_per_s",
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


@dataclass(frozen=True)
class Case:
    """One measurement as a configuration the model can evaluate.

    Attributes:
        id, source: the record id and its short source key (a cross-validation fold).
        model, hardware: catalog names.
        parallel, precision: the split and numeric formats.
        metric: a key of :data:`METRICS`; ``measured`` is its value in SI units.
        load: ``"fixed"`` (``batch`` given), ``"max"`` (largest batch that fits in
            memory) or ``"rate"`` (``request_rate_per_s`` requests per second).
        batch: sequences per replica when ``load="fixed"``.
        prompt, output: tokens per request; ``context`` is the mean cached context
            a decode step reads (prompt + output/2 unless the source states it).
        rules: :class:`~costmodel.symbolic.Rules` settings other than the phase, as
            ``(name, value)`` pairs (communication overlap, layout, attention sharding).
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
    assumptions: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_time(self) -> bool:
        """Whether the metric is a time (the ideal model must not exceed it) or a rate."""
        return METRICS[self.metric][0] == "s"


def load_records() -> list[dict[str, Any]]:
    """The raw records of the packaged measurement file."""
    text = (resources.files(__package__) / "data" / "measurements.json").read_text()
    return json.loads(text)["records"]


def exclusion_reason(r: dict[str, Any]) -> str | None:
    """Why record ``r`` is left out of the step-level fit, or ``None`` if it is fitted.

    The checks run in a fixed order and the first that applies names the reason:
    whole-request phase, time to first token, a metric without a step-level
    mapping, a precision string the model does not name, a serving-stack
    figure, a model structure other than :data:`FITTED_STRUCTURE`.
    """
    if r.get("phase") == "e2e":
        return ("phase 'e2e': whole requests of a static batch (prefill plus every decode step, "
                "batching policy of the stack); needs the serving model")
    if r["metric"] == "ttft":
        return ("metric 'ttft': time to first token (prefill, first decode step and the stack's scheduling) "
                "has no step-level mapping; needs the serving model")
    if r["metric"] not in _RECORD_METRIC:
        return f"metric {r['metric']!r} has no step-level mapping (mapped: {', '.join(sorted(_RECORD_METRIC))})"
    for field in ("weights_dtype", "kv_dtype"):
        v = r.get(field)
        if v is not None and v not in BYTES_PER_ELEMENT:
            return f"{field} {v!r} is not a precision the model names (allowed: {', '.join(BYTES_PER_ELEMENT)})"
    if r["id"] in _SERVING_STACK:
        return _SERVING_STACK[r["id"]]
    st = load_model(r["model"]).structure
    if st != FITTED_STRUCTURE:
        return (f"model structure {st.attention}/{st.mlp} differs from the fitted "
                f"{FITTED_STRUCTURE.attention}/{FITTED_STRUCTURE.mlp} structure (one compiled structure per fit)")
    return None


def excluded_records() -> dict[str, str]:
    """Record id -> the reason it is left out of the fit, for every excluded packaged record."""
    return {r["id"]: why for r in load_records() if (why := exclusion_reason(r)) is not None}


def _mapping(r: dict[str, Any]) -> dict[str, Any]:
    """Record-specific choices: model variant, split, load, lengths and assumptions."""
    rid = r["id"]
    if rid.startswith(("GF-", "GF2-")):
        out = GPT_FAST_OUTPUT_TOKENS
        return dict(load="fixed", prompt=r["prompt_tokens"], output=out,
                    assumptions=(f"{out} generated tokens (gpt-fast's default max_new_tokens); "
                                 "mean context prompt + output/2",))
    if rid in ("TRT-11", "TRT-14"):
        return dict(load="rate", request_rate_per_s=LOW_LOAD_REQUESTS_PER_S,
                    prompt=r["prompt_tokens"], output=r["generated_tokens"],
                    assumptions=("2 requests/s; batch from Little's law (costmodel.serving.load_to_batch.low_load_batch)",))
    if rid in ("TRT-01", "TRT-08"):
        return dict(load="max", prompt=r["prompt_tokens"], output=r["generated_tokens"],
                    assumptions=("largest batch that fits at the mean context; prefill and decode "
                                 "share the chips (costmodel.serving.load_to_batch.offline_tokens_per_s)",))
    if rid == "MLP-01":
        return dict(load="fixed", prompt=MLPERF_PROMPT_TOKENS, output=MLPERF_OUTPUT_TOKENS,
                    parallel=Parallel(tp=r["tp"], replicas=r["replicas"]),
                    assumptions=(f"batch {r['batch']} per TP2 replica (submission config), 4 replicas",
                                 f"{MLPERF_OUTPUT_TOKENS} output tokens per sample (record note)",
                                 f"mean prompt {MLPERF_PROMPT_TOKENS} tokens: not stated; half the 1024 cap"))
    if rid.startswith("POPE-"):
        # heads padded 48 -> 64 for these experiments (record POPE-04, Pope et al. section 5);
        # 64-way split on the default 4x4x4 mesh, with the paper's layouts. Communication is
        # not overlapped (the default rule): the paper's looped CollectiveEinsum hides part of
        # it (1.4x over compiler scheduling, docs/theory.md §13.1), the rest is left to calibration.
        prompt = r["prompt_tokens"] or r["context_tokens"]
        context = r["context_tokens"] or prompt
        rules, layout_note = _pope_rules(r.get("layout", ""))
        return dict(load="fixed", model="palm-540b-padded64", parallel=Parallel(tp=r["chips"]),
                    prompt=prompt, output=1, context=context, rules=rules,
                    assumptions=("heads padded to 64 (palm-540b-padded64), 64-way tensor split",
                                 layout_note))
    raise SpecError(f"measurement {rid} has no mapping to a configuration; add one in {__name__}")


def _pope_rules(layout: str) -> tuple[dict[str, str], str]:
    """:class:`~costmodel.symbolic.Rules` settings for a Pope et al. layout description (docs/theory.md §13)."""
    ffn = "wg-xyz" if "XYZ weight-gathered" in layout else "2d-ws" if "2D weight-stationary" in layout else "1d-ws"
    rules = {"layout": ffn, "attention_sharding": "batch" if "batch-sharded" in layout else "heads"}
    return rules, f"paper layout '{layout}' as Rules(" + ", ".join(f"{k}={v}" for k, v in rules.items()) + ")"


def case_from_record(r: dict[str, Any]) -> Case:
    """Map one raw record to a :class:`Case` (raises :class:`SpecError` if it cannot)."""
    m = _mapping(r)
    metric = _RECORD_METRIC[r["metric"]]
    prompt, output = float(m["prompt"]), float(m["output"])
    context = float(m.get("context", prompt + output / 2))
    parallel = m.get("parallel", Parallel(tp=r["tp"] or 1))
    return Case(
        id=r["id"], source=SOURCES[r["source"]], model=m.get("model", r["model"]), hardware=r["hardware"],
        parallel=parallel, precision=Precision(weights=r["weights_dtype"], kv=r["kv_dtype"]),
        metric=metric, measured=float(r["value"]), load=m["load"],
        batch=None if r["batch"] is None else float(r["batch"]),
        prompt=prompt, output=output, context=context,
        request_rate_per_s=float(m.get("request_rate_per_s", 0.0)),
        rules=tuple(sorted(m.get("rules", {}).items())), assumptions=tuple(m["assumptions"]),
    )


def load_cases() -> list[Case]:
    """Every fitted packaged measurement as a :class:`Case`, in file order (see :func:`excluded_records`)."""
    return [case_from_record(r) for r in load_records() if exclusion_reason(r) is None]
