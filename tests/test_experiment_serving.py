"""experiments/serving.py maps each kind of published record to the serving workload it states, and the
ideal roofline stays a lower bound on time (an upper bound on throughput) for the records it maps."""

import importlib.util
import sys
from pathlib import Path

import pytest

import costmodel as cm

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "serving.py"
_spec = importlib.util.spec_from_file_location("serving_experiment", _PATH)
exp = importlib.util.module_from_spec(_spec)
sys.modules["serving_experiment"] = exp  # dataclasses look their module up while the class is built
_spec.loader.exec_module(exp)


def record(**kw):
    base = dict(chips=1, tp=1, pp=1, ep=None, weights_dtype="bf16", kv_dtype="bf16", batch=None,
                prompt_tokens=None, generated_tokens=None, context_tokens=None, phase="e2e", metric="e2e_latency",
                value=1.0, unit="s")
    return base | kw


# the published values and configurations of measurements.json (ids, values and units as recorded there)
VLLMCI_01 = record(id="VLLMCI-01", model="llama-3-70b", hardware="h200", chips=4, tp=4, batch=8, prompt_tokens=32,
                   generated_tokens=128, value=2.07753)
TRTV05_01 = record(id="TRTV05-01", model="llama-2-70b", hardware="h100-sxm", chips=4, tp=4, weights_dtype="fp8",
                   kv_dtype="fp8", batch=1, prompt_tokens=2048, generated_tokens=1, phase="prefill", metric="ttft",
                   value=0.109)
TRT_08 = record(id="TRT-08", model="llama-3.1-8b", hardware="h100-sxm", weights_dtype="fp8", kv_dtype="fp8",
                prompt_tokens=128, generated_tokens=128, phase="offline", metric="output_tokens_per_s_system",
                value=28312, unit="tok/s")
TRTV05_05 = record(id="TRTV05-05", model="llama-2-70b", hardware="h100-sxm", chips=2, tp=2, weights_dtype="fp8",
                   kv_dtype="fp8", batch=96, prompt_tokens=2048, generated_tokens=128,
                   metric="output_tokens_per_s_per_chip", value=306, unit="tok/s/GPU")


def test_mapping_of_each_kind():
    c = exp.to_case(VLLMCI_01)
    assert (c.load.kind, c.load.value, c.parallel.tp, c.attribute, c.is_time) == ("static", 8, 4, "e2e_latency_s", True)
    c = exp.to_case(TRTV05_01)
    assert (c.load.kind, c.load.value, c.requests.input_tokens, c.attribute) == ("static", 1, 2048, "ttft_s")
    c = exp.to_case(TRT_08)
    assert (c.load.kind, c.load.max_batch, c.is_time) == ("offline", None, False)
    c = exp.to_case(TRTV05_05)
    assert c.attribute == "output_tokens_per_s_per_chip" and not c.is_time


def test_unknown_catalog_entries_are_skipped_by_name():
    assert exp.missing(VLLMCI_01) is None
    assert exp.missing(VLLMCI_01 | {"hardware": "no-such-chip"}) == "unknown chip no-such-chip"
    assert exp.missing(VLLMCI_01 | {"model": "no-such-model"}) == "unknown model no-such-model"


@pytest.mark.parametrize("r", [VLLMCI_01, TRTV05_01, TRT_08, TRTV05_05], ids=lambda r: r["id"])
def test_ideal_is_a_bound(r):
    c = exp.to_case(r)
    ideal = exp.predict(c, "ideal")
    assert ideal <= r["value"] if c.is_time else ideal >= r["value"]


def test_static_record_is_prefill_plus_decode_sum():
    # VLLMCI-01: e2e latency of the static batch = prefill of 8 x 32 tokens + 127 decode steps
    c = exp.to_case(VLLMCI_01)
    s = cm.serve("llama-3-70b", "h200", c.requests, c.load, parallel=c.parallel, precision=c.precision,
                 efficiency=cm.IDEAL)
    from costmodel import derive

    want = derive.static_batch_latency("llama-3-70b").value("llama-3-70b", "h200", tp=4, batch=8, prompt=32,
                                                            output_tokens=128)
    assert exp.predict(c, "ideal") == s.e2e_latency_s == pytest.approx(want, rel=1e-6)
