"""Engine schedulers (docs/serving.md §19.9): the presets equal their cited defaults, and their KV
reservation and caps bind in ``serve``, offline and the serving optimiser as hand arithmetic says."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from costmodel.engines import SCHEDULERS, UNBOUNDED, Scheduler, engine, scheduler_of
from tests.cli_run import run_cli

I, O = 1024, 1024
TP4 = cm.Parallel(tp=4)


@pytest.mark.parametrize("name,chip,expected", [
    # vLLM 0.11.0 arg_utils: >= 70 GiB and not an A100 -> 1024 / 8192, else 256 / 2048 (vllm serve)
    ("vllm", "h100-sxm", ("growing", 1024, 8192, True)),
    ("vllm", "b200", ("growing", 1024, 8192, True)),
    ("vllm", "a100-80gb", ("growing", 256, 2048, True)),
    ("vllm", "l40s", ("growing", 256, 2048, True)),
    # TensorRT-LLM BuildConfig 2048 / 8192, GUARANTEED_NO_EVICT, chunked prefill off
    ("trtllm", "h100-sxm", ("peak", 2048, 8192, False)),
    # SGLang 0.5.3 server_args: chunked_prefill_size by GPU memory
    ("sglang", "h100-sxm", ("growing", None, 8192, True)),
    ("sglang", "h200", ("growing", None, 8192, True)),
    ("sglang", "b200", ("growing", None, 16384, True)),
    ("sglang", "l40s", ("growing", None, 4096, True)),
])
def test_presets_are_the_cited_defaults(name, chip, expected):
    s = engine(name).scheduler(chip)
    assert (s.kv_reservation, s.max_seqs, s.max_batched_tokens, s.chunked_prefill) == expected
    assert s.source and s.name == name
    assert scheduler_of(name, chip) == s


def test_every_preset_cites_a_version():
    for rules in SCHEDULERS.values():
        for _, _, s in rules:
            assert any(v in s.source for v in ("0.11.0", "1.x", "0.5.3"))


def test_peak_reservation_holds_input_plus_output():
    """TensorRT-LLM reserves I + O per sequence at admission; pages that grow hold I + O/2 on average:
    the same KV budget holds (I + O/2)/(I + O) as many sequences."""
    grow = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(I, O), cm.Load.offline(), parallel=TP4,
                    efficiency="calibrated", scheduler=Scheduler("growing"))
    peak = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(I, O), cm.Load.offline(), parallel=TP4,
                    efficiency="calibrated", scheduler=Scheduler("peak"))
    assert grow.details["bound_by"] == peak.details["bound_by"] == "kv_capacity"
    # the KV budget is the same to within the activations of the two batches (0.1%)
    assert peak.decode_batch == pytest.approx(grow.decode_batch * (I + O / 2) / (I + O), rel=1e-3)
    assert peak.details["kv_context_tokens"] == I + O and grow.details["kv_context_tokens"] == I + O / 2


def test_sequence_cap_binds_offline():
    """vLLM's 1024 sequences on a B200, where 1,100 would fit."""
    free = cm.serve("llama-3.1-70b", "b200", cm.Requests(I, O), cm.Load.offline(), parallel=TP4,
                    efficiency="calibrated")
    vllm = cm.serve("llama-3.1-70b", "b200", cm.Requests(I, O), cm.Load.offline(), parallel=TP4,
                    efficiency="calibrated", scheduler="vllm")
    assert free.decode_batch > 1024 and free.details["bound_by"] == "kv_capacity"
    assert vllm.decode_batch == pytest.approx(1024) and vllm.to_dict()["bound_by"] == "max_seqs"
    assert vllm.output_tokens_per_s <= free.output_tokens_per_s


def test_token_budget_binds_offline():
    """A step holds ``X·P`` prompt tokens and ``X·D`` decode tokens within ``T``: ``X = T/(P + D)``."""
    T, isl, osl = 2048, 1024, 64
    s = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(isl, osl), cm.Load.offline(), parallel=TP4,
                 efficiency="calibrated", scheduler=Scheduler(max_batched_tokens=T))
    D = osl - 1
    assert s.details["bound_by"] == "max_batched_tokens"
    assert s.decode_batch == pytest.approx(D * T / (isl + D), rel=1e-9)


def test_no_chunked_prefill_needs_prompts_within_the_budget():
    trt = engine("trtllm").scheduler("h100-sxm")
    with pytest.raises(cm.CostModelError, match="max_batched_tokens"):
        cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(16384, 128), cm.Load.rate(0.1), parallel=TP4,
                 scheduler=trt)
    s = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(4096, 128), cm.Load.rate(0.1), parallel=TP4, scheduler=trt)
    assert s.fits and s.ttft_s > 0


def test_caps_never_raise_the_rate_limit():
    """At the same chunk budget (a smaller budget alone can raise the limit: shorter bursts of prompt
    work make the steps more even)."""
    kw = dict(parallel=TP4, efficiency="calibrated", chunk_tokens=512)
    free = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(I, O), cm.Load.rate(1.0), **kw)
    for sch in (Scheduler(max_seqs=64), Scheduler(max_batched_tokens=512), Scheduler("peak")):
        capped = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(I, O), cm.Load.rate(1.0), scheduler=sch, **kw)
        assert capped.max_rate_per_s <= free.max_rate_per_s * (1 + 1e-6)
        assert capped.decode_batch <= (sch.max_seqs or float("inf")) * (1 + 1e-9)


def test_bad_schedulers_are_one_line_errors():
    for bad in (dict(kv_reservation="eager"), dict(max_seqs=0), dict(max_seqs=2.5), dict(max_batched_tokens=1e9),
                dict(chunked_prefill="yes")):
        with pytest.raises(cm.CostModelError):
            Scheduler(**bad)
    with pytest.raises(cm.CostModelError, match="engine"):
        scheduler_of("tgi")
    with pytest.raises(cm.CostModelError, match="Scheduler"):
        cm.serve("llama-3-8b", "h100-sxm", cm.Requests(128, 16), cm.Load.rate(1.0), scheduler=3)
    assert scheduler_of(None) is UNBOUNDED


def test_cli_flags_override_the_preset(capsys):
    code, out, err = run_cli(capsys, "predict", "--model", "llama-3.1-70b", "--hardware", "b200", "--tp", "4", "--isl",
                             "1024", "--osl", "1024", "--offline", "--engine", "vllm", "--max-seqs", "512", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["decode_batch"] == pytest.approx(512) and d["bound_by"] == "max_seqs"
    assert d["scheduler"]["max_seqs"] == 512 and d["scheduler"]["max_batched_tokens"] == 8192
    assert d["scheduler"]["kv_reservation"] == "growing"
    code, out, err = run_cli(capsys, "predict", "--model", "llama-3.1-70b", "--hardware", "b200", "--tp", "4", "--isl",
                             "1024", "--osl", "1024", "--offline", "--kv-reservation", "eager")
    assert code == 2 and "--kv-reservation" in err and "Traceback" not in err


def test_optimizer_respects_the_caps():
    """The serving optimiser under a sequence cap: every replica within it, gradient equal to exhaustive."""
    kw = dict(rate_per_s=4.0, ttft_s=1.0, tpot_s=0.05, max_chips=16, mode="agg", efficiency="calibrated",
              scheduler=Scheduler(max_seqs=16))
    answers = {m: cm.optimize_serving("llama-3.1-8b", "h100-sxm", cm.Requests(1024, 256), method=m, **kw)
               for m in ("gradient", "exhaustive")}
    assert answers["gradient"].chips == answers["exhaustive"].chips
    sol = answers["gradient"]
    assert sol.feasible and sol.config["batch"] <= 16 * (1 + 1e-9)
