"""Serving fidelity: request-level predictions against published whole-request measurements.

For every published record whose phase is ``e2e`` or ``offline`` or whose metric is
``ttft`` (and SGL-02, a disaggregated prefill pool), the record is mapped to a
:func:`costmodel.serve` workload with the assumptions printed next to it:

- ``e2e`` (vLLM ``benchmark_latency``, TensorRT-LLM gptSessionBenchmark, Optimum-Habana):
  a static batch of ``B`` requests, ``I`` prompt and ``O`` output tokens; end-to-end latency
  is prefill plus ``O - 1`` decode steps; output tokens/s = ``B·O/e2e`` (per replica);
- ``offline`` (trtllm-bench max throughput, MLPerf Offline): every request queued, the
  engine at the largest batch that fits (or the submission's batch cap);
- ``ttft``: a static batch of one request, TTFT = the prefill of its prompt;
- SGL-02: input tokens/s per node of a disaggregated prefill pool.

It prints measured, predicted (ideal roofline and calibrated efficiency), the signed error
(predicted/measured - 1), the median absolute error, and whether the ideal prediction is a
lower bound on time (an upper bound on throughput) for every record. Records whose chip,
model or precision the catalog lacks are listed as skipped.

It then compares the closed forms with the discrete-event simulation: means, P90 and P99 of TTFT,
TPOT and latency over a grid of scenarios and utilisations (``experiments/queueing_vs_simulation.py``;
docs/serving.md §19.10).

Run: ``python experiments/serving.py [--measurements PATH] [--no-simulation]`` (about four minutes on 2
CPU cores; one without the simulation).
The default measurement file is the packaged one when it holds these records, else
``../shared/data/measurements.json`` next to the repository.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import costmodel as cm
from costmodel.calibrate.records import MLPERF_OUTPUT_TOKENS, MLPERF_PROMPT_TOKENS
from costmodel.errors import CostModelError
from costmodel.specs.catalog import list_hardware, list_models
from costmodel.symbolic import Rules

#: metric -> (ServingPrediction attribute, is a time)
METRICS = {
    "e2e_latency": ("e2e_latency_s", True),
    "ttft": ("ttft_s", True),
    "output_tokens_per_s_system": ("output_tokens_per_s", False),
    "tokens_per_s_system": ("output_tokens_per_s", False),
    "output_tokens_per_s_per_chip": ("output_tokens_per_s_per_chip", False),
    "input_tokens_per_s_per_node": ("input_tokens_per_s_per_node", False),
}

#: SGLang large-scale EP blog (lm-sys.github.io blog/2025-05-05-large-scale-ep.md): 16,384 tokens per
#: device per prefill batch (stated for the 4K case); the same tokens per device is assumed at 2K.
SGL_TOKENS_PER_DEVICE = 16384
GPUS_PER_NODE = 8  # the record's unit: tok/s per node of 8 GPUs


@dataclass
class Case:
    """One record mapped to a serving workload."""

    record: dict
    requests: cm.Requests
    load: cm.Load
    parallel: cm.Parallel
    precision: cm.Precision
    attribute: str
    is_time: bool
    disagg: cm.Disaggregated | None = None
    rules: Rules | None = None
    assumptions: list[str] = field(default_factory=list)


def wanted(r: dict) -> bool:
    return r["phase"] in ("e2e", "offline") or r["metric"] == "ttft" or r["id"] == "SGL-02"


def load_records(path: str | None) -> list[dict]:
    if path:
        return json.loads(Path(path).read_text())["records"]
    packaged = json.loads((resources.files("costmodel.calibrate") / "data" / "measurements.json").read_text())
    if any(wanted(r) and r["phase"] == "e2e" for r in packaged["records"]):
        return packaged["records"]
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "measurements.json"
    return json.loads(shared.read_text())["records"]


def _dtype(v: str | None) -> str | None:
    """``"fp8 (block-scaled)"`` -> ``"fp8"``; ``None`` stays None (the default)."""
    return None if v is None else v.split()[0]


def missing(r: dict) -> str | None:
    """Why the catalog cannot serve this record yet (None if it can)."""
    if r["hardware"] not in list_hardware():
        return f"unknown chip {r['hardware']}"
    if r["model"] not in list_models():
        return f"unknown model {r['model']}"
    try:
        cm.Precision(weights=_dtype(r["weights_dtype"]), kv=_dtype(r.get("kv_dtype")))
    except CostModelError:
        return f"unknown precision {r['weights_dtype']} / {r.get('kv_dtype')}"
    return None


def to_case(r: dict) -> Case:
    """The serving workload of one record, with its assumptions."""
    tp, pp, ep = r["tp"] or 1, r.get("pp") or 1, r.get("ep") or 1
    replicas = r.get("replicas") or max(1, r["chips"] // (tp * pp * ep))
    par = cm.Parallel(tp=tp, pp=pp, ep=ep, replicas=replicas)
    prec = cm.Precision(weights=_dtype(r["weights_dtype"]), kv=_dtype(r.get("kv_dtype")))
    attr, is_time = METRICS[r["metric"]]
    notes = []
    if r.get("kv_dtype") is None:
        notes.append("KV precision not stated: bf16")
    I, O = r["prompt_tokens"], r["generated_tokens"]
    if r["id"] == "SGL-02":
        b_p = SGL_TOKENS_PER_DEVICE * r["chips"] / I
        pool = cm.Pool(cm.Parallel(tp=tp, ep=ep), batch=b_p)
        notes += [f"prefill pool of {r['chips']} chips (ep={ep}), {b_p:.0f} prompts of {I} tokens per prefill "
                  f"({SGL_TOKENS_PER_DEVICE} tokens per device, stated for 4K prompts)",
                  "attention data-parallel (batch-sharded attention); two-batch overlap (TBO, stated): "
                  "communication overlapped with compute",
                  "input tokens/s per node = prefill capacity x I / (chips / 8)"]
        return Case(r, cm.Requests(I, 1), cm.Load.offline(), par, prec, attr, is_time,
                    disagg=cm.Disaggregated(pool, cm.Pool(cm.Parallel(tp=tp, ep=ep))),
                    rules=Rules(attention_sharding="batch", comm_overlap="full"), assumptions=notes)
    if r["id"] == "MLP-01":
        I, O = MLPERF_PROMPT_TOKENS, MLPERF_OUTPUT_TOKENS
        notes += [f"mean prompt {I} tokens (not stated; half the 1024 cap), {O} output tokens (record note)",
                  f"offline at the submission's batch cap {r['batch']} per replica, {replicas} replicas"]
        return Case(r, cm.Requests(I, O), cm.Load.offline(max_batch=r["batch"]), par, prec, attr, is_time,
                    assumptions=notes)
    if r["metric"] == "ttft":
        notes.append(f"a static batch of {r['batch']}: TTFT = prefill of {I} prompt tokens")
        return Case(r, cm.Requests(I, max(O or 1, 1)), cm.Load.static(r["batch"]), par, prec, attr, is_time,
                    assumptions=notes)
    if r["phase"] == "e2e":
        notes.append(f"static batch {r['batch']}: prefill of {r['batch']} x {I} tokens, then {O - 1} decode steps"
                     + ("; output tokens/s = B x O / e2e" if not is_time else ""))
        return Case(r, cm.Requests(I, O), cm.Load.static(r["batch"]), par, prec, attr, is_time, assumptions=notes)
    notes.append("offline: every request queued, the largest batch that fits at context I + O/2")
    return Case(r, cm.Requests(I, O), cm.Load.offline(), par, prec, attr, is_time, assumptions=notes)


def predict(case: Case, efficiency: str) -> float:
    r = case.record
    kw = dict(precision=case.precision, efficiency=efficiency)
    if case.rules is not None:
        kw["rules"] = case.rules
    if case.disagg is not None:
        s = cm.serve(r["model"], r["hardware"], case.requests, case.load, disagg=case.disagg, **kw)
        if case.attribute == "input_tokens_per_s_per_node":
            nodes = r["chips"] / GPUS_PER_NODE
            return s.details["prefill_capacity_per_s"] * case.requests.input_tokens / nodes
        return getattr(s, case.attribute)
    s = cm.serve(r["model"], r["hardware"], case.requests, case.load, parallel=case.parallel, **kw)
    return getattr(s, case.attribute)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measurements", help="measurement JSON (default: packaged, else ../shared/data/)")
    ap.add_argument("--no-simulation", action="store_true",
                    help="leave out the comparison with the discrete-event simulation (means, P90, P99)")
    args = ap.parse_args(argv)
    records = [r for r in load_records(args.measurements) if wanted(r)]
    head = (f"{'record':10} {'model':16} {'chip':9} {'metric':28} {'unit':10} {'measured':>10} {'ideal':>10} "
            f"{'calib.':>10} {'err ideal':>9} {'err cal.':>9} bound")
    print(head)
    print("-" * len(head))
    rows, skipped, notes = [], [], []
    for r in records:
        why = missing(r)
        if why:
            skipped.append((r["id"], why))
            print(f"{r['id']:10} skipped: {why}")
            continue
        case = to_case(r)
        ideal, cal = predict(case, "ideal"), predict(case, "calibrated")
        m = r["value"]
        ok = ideal <= m if case.is_time else ideal >= m
        e_i, e_c = ideal / m - 1, cal / m - 1
        rows.append((r["id"], e_i, e_c, ok))
        notes.append((r["id"], case.assumptions))
        print(f"{r['id']:10} {r['model'][:16]:16} {r['hardware']:9} {r['metric'][:28]:28} {r['unit'][:10]:10} "
              f"{m:10.4g} {ideal:10.4g} {cal:10.4g} {100 * e_i:+8.1f}% {100 * e_c:+8.1f}% "
              f"{'ok' if ok else 'VIOLATED'}")
    print()
    print("assumptions:")
    for rid, a in notes:
        print(f"  {rid:10} " + "; ".join(a))
    print()
    broken = [rid for rid, _, _, ok in rows if not ok]
    print("bound check (ideal time <= measured time; ideal rate >= measured rate):")
    print("  every record respects the bound" if not broken else f"  VIOLATED by {', '.join(broken)}")
    print()
    print(f"records: {len(rows)} count")
    print(f"skipped: {len(skipped)} count")
    if rows:
        print(f"ideal_median_ape: {100 * statistics.median(abs(e) for _, e, _, _ in rows):.1f} %")
        print(f"calibrated_median_ape: {100 * statistics.median(abs(e) for _, _, e, _ in rows):.1f} %")
    if not args.no_simulation:
        print()
        print("the closed forms against the discrete-event simulation (experiments/queueing_vs_simulation.py):")
        _sibling("queueing_vs_simulation").main([])


def _sibling(name: str):
    """The experiment script ``name`` next to this one, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
