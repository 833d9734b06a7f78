"""Each malformed or extreme input of issue-class reproducers is refused with the package's own error,
naming the field, the value and what is allowed; the answers that remain are finite and right."""

from __future__ import annotations

import contextlib
import json
import math
import sys

import pytest

import costmodel as cm
from cli_run import run_cli as cli
from costmodel.cli import build_parser
from costmodel.parallel import divisors

LLAMA = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256}
DEEPSEEK = {"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
            "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
            "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
            "first_k_dense_replace": 3, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
            "v_head_dim": 128, "qk_nope_head_dim": 128, "vocab_size": 129280}




# ---------------------------------------------------------------- Hugging Face config.json

#: Interpreted steps (lines and calls, ``sys.settrace`` events) a refusal or a factorisation may take: a few
#: thousand are enough; enumerating a huge size would take billions. Counted, not timed: the verdict does not
#: depend on the load.
STEP_BUDGET = 200_000


class _TooManySteps(Exception):
    pass


@contextlib.contextmanager
def within_steps(budget: int):
    """Fail as soon as the block executes more than ``budget`` interpreted steps."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        count += 1
        if count > budget:
            raise _TooManySteps(f"more than {budget} interpreted steps")
        return trace

    old = sys.gettrace()
    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(old)


@pytest.mark.parametrize("base, change, match", [
    (LLAMA, {"hidden_size": [4096]}, r"hidden_size must be a whole number in \[1, 10,000,000\], got \[4096\]"),
    (LLAMA, {"num_hidden_layers": {"a": 1}}, "num_hidden_layers must be a whole number"),
    (LLAMA, {"intermediate_size": float("nan")}, "intermediate_size must be a whole number .* got nan"),
    (LLAMA, {"vocab_size": "128256"}, "vocab_size must be a whole number .* got '128256'"),
    (LLAMA, {"num_attention_heads": 0}, r"num_attention_heads must be a whole number in \[1, "),
    (LLAMA, {"num_hidden_layers": 2**63}, r"num_hidden_layers must be a whole number in \[1, 100,000\]"),
    (LLAMA, {"num_attention_heads": 10**8}, "num_attention_heads must be a whole number"),
    (LLAMA, {"tie_word_embeddings": "false"}, "tie_word_embeddings must be true or false"),
    (LLAMA, {"num_local_experts": 7.5}, "num_local_experts must be a whole number .* got 7.5"),
    (LLAMA, {"num_local_experts": 10**8}, "num_local_experts must be a whole number"),
    (DEEPSEEK, {"qk_nope_head_dim": None}, "sets kv_lora_rank .* but lacks qk_nope_head_dim"),
    (DEEPSEEK, {"first_k_dense_replace": 100}, "first_k_dense_replace=100 leaves no MoE layer"),
    (DEEPSEEK, {"num_experts_per_tok": 300}, "num_experts_per_tok=300 exceeds the 256 experts"),
    (LLAMA, {"num_key_value_heads": 5}, "num_key_value_heads=5 must divide num_attention_heads=32"),
])
def test_malformed_hf_config_names_its_key(tmp_path, base, change, match):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in (base | change).items() if v is not None}))
    with pytest.raises(cm.SpecError, match=match), within_steps(STEP_BUDGET):  # huge sizes refused, never enumerated
        cm.load_model(str(path))


@pytest.mark.parametrize("content, match", [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b"[1, 2]", "must hold a JSON object of model fields, got a list"),
    (b'"config"', "must hold a JSON object of model fields, got a str"),
])
def test_hf_config_that_is_not_a_config(tmp_path, content, match):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(cm.SpecError, match=match):
        cm.load_model(str(path))


def test_a_directory_or_an_overlong_name_is_named_as_such(tmp_path, capsys):
    code, _, err = cli(capsys, "predict", "--model", str(tmp_path))
    assert code == 2 and "is a directory; pass the config.json file inside it" in err
    code, _, err = cli(capsys, "predict", "--model", "m" * 300)
    assert code == 2 and "unknown model" in err and "cannot write" not in err
    code, _, err = cli(capsys, "predict", "--efficiency", "p" * 300)
    assert code == 2 and "unknown efficiency profile" in err and "cannot write" not in err


def test_config_without_name_is_named_by_its_path(tmp_path):
    path = tmp_path / "cfgs" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(LLAMA))
    assert cm.load_model(str(path)).name == str(path)
    path.write_text(json.dumps(LLAMA | {"_name_or_path": "meta-llama/Meta-Llama-3-8B"}))
    assert cm.load_model(str(path)).name == "meta-llama-3-8b"


def test_divisors_factorise_instead_of_scanning():
    assert divisors(1) == [1]
    assert divisors(64) == [1, 2, 4, 8, 16, 32, 64]
    assert divisors(61) == [1, 61]
    assert divisors(360) == [d for d in range(1, 361) if 360 % d == 0]
    import sympy  # noqa: F401  (loaded outside the count: importing the library is not the work counted)

    with within_steps(STEP_BUDGET):  # a Mersenne prime: scanning would take 2^30 steps at least
        assert divisors(2**61 - 1) == [1, 2**61 - 1]


# ---------------------------------------------------------------- efficiency profiles

@pytest.mark.parametrize("profile, match", [
    ([], "must hold a JSON object with 'name' and 'parameters', got a list"),
    ({"name": "p", "parameters": [{"field": "hbm_efficiency", "family": "*", "phase": "*", "value": "0.8"}]},
     r"parameters\[0\]: value of hbm_efficiency must be a finite number, got '0.8'"),
    ({"name": "p", "parameters": [{"field": "hbm_efficiency", "family": "*", "phase": 1, "value": 0.8}]},
     r"parameters\[0\]: phase must be 'decode', 'prefill' or '\*', got 1"),
    ({"name": "p", "parameters": [{"field": "speed", "family": "*", "phase": "*", "value": 0.8}]},
     r"parameters\[0\]: field must be one of flops_efficiency"),
    ({"name": "p", "parameters": {}}, "'parameters' must be a list"),
    ({"name": "p", "fixed": {"memory_fraction": "x"}, "parameters": []}, "'fixed' must map input names to finite"),
    ({"name": "p", "parameters": [{"field": "hbm_efficiency", "family": "*", "phase": "*", "value": 5}]},
     r"hbm_efficiency is a fraction of peak and must be in \[0.001, 1\], got 5"),
    ({"name": "p", "parameters": [{"field": "flops_efficiency", "family": "*", "phase": "*", "value": 5e-324}]},
     r"flops_efficiency is a fraction of peak and must be in \[0.001, 1\], got 5e-324"),
])
def test_malformed_profile_names_the_entry(tmp_path, capsys, profile, match):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(cm.ConfigError, match=match):
        cm.predict("llama-3-8b", "h100-sxm", efficiency=str(path))
    code, _, err = cli(capsys, "predict", "--efficiency", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- measurement files (costmodel calibrate)

def _measurements():
    from costmodel.calibrate import load_records

    return [r for r in load_records() if r["id"] in ("GF-01", "TRTV05-03")]


@pytest.mark.parametrize("change, match", [
    (lambda rs: rs[1].pop("hardware"), r"measurement record 1 \(TRTV05-03\): missing field 'hardware'"),
    (lambda rs: rs[0].update(model="gpt-7"), r"measurement record 0 \(GF-01\): unknown model 'gpt-7'"),
    (lambda rs: rs[1].update(hardware="l40"), r"measurement record 1 \(TRTV05-03\): unknown hardware 'l40'"),
    (lambda rs: rs[0].update(value=float("nan")), r"record 0 \(GF-01\): value must be a positive finite number"),
    (lambda rs: rs[0].update(batch=0), r"record 0 \(GF-01\): batch must be null or a number from 1 to 1e9, got 0"),
    (lambda rs: rs[1].update(id="GF-01"), "record id 'GF-01' appears more than once"),
    (lambda rs: rs[1].update(engine="tgi"), r"record 1 \(TRTV05-03\): engine 'tgi' must be one of vllm"),
    (lambda rs: rs[1].update(prompt_tokens=None), "measurement record TRTV05-03: prompt_tokens is null"),
])
def test_malformed_measurements_name_the_record(tmp_path, capsys, change, match):
    from costmodel.calibrate import load_cases

    records = _measurements()
    change(records)
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"records": records}))
    with pytest.raises(cm.ConfigError, match=match):
        load_cases(path)
    code, out, err = cli(capsys, "calibrate", str(path), "--out", str(tmp_path / "p.json"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- extreme numbers on the command line

@pytest.mark.parametrize("argv, message", [
    (["optimize", "--max-chips", "9223372036854775807"], "--max-chips: must be a whole number in [1, 1048576] chips"),
    (["predict", "--context", "1e308"], "--context: must be a number in [1, 1e+09] tokens, got 1e308"),
    (["search", "--context", "1e308"], "--context: must be a number in [1, 1e+09] tokens"),
    (["predict", "--batch", "1e308"], "--batch: must be a number in [1, 1e+08] sequences"),
    (["predict", "--batch", "5e-324"], "--batch: must be a number in [1, 1e+08] sequences, got 5e-324"),
    (["predict", "--price", "1e300"], "--price: must be a number in [1e-06, 1000000] USD per chip-hour"),
    (["predict", "--price", "1e-45"], "--price: must be a number in [1e-06, 1000000] USD per chip-hour"),
    (["optimize", "--tpot-ms", "nan"], "--tpot-ms: must be a number in [0.0001, 8.64e+07] ms"),
    (["report", "--tpot-ms", "inf"], "--tpot-ms: must be a number"),
    (["plot", "pareto", "--price-tier", "fast=inf", "--out", "x.png"], "--price-tier needs a name and a price"),
    (["optimize", "--isl", "1e308", "--osl", "2", "--rate", "1"], "--isl: must be a number in [1, 1e+09] tokens"),
    (["optimize", "--isl", "1024", "--osl", "256", "--rate", "1e10"],
     "--rate: must be a number in [1e-09, 1e+09] requests/s"),
    (["optimize", "--isl", "1024", "--osl", "256", "--rate", "1", "--spec-draft", "mtp", "--spec-len", "1",
      "--spec-accept", "1"], "--spec-accept: must be a number in [0, 1)"),
    (["optimize", "--isl", "1024", "--osl", "256", "--rate", "1", "--prefix-hit", "inf"],
     "--prefix-hit: must be a number in [0, 1)"),
    (["optimize", "--isl", "1024", "--osl", "1", "--demand-tps", "1e-12"], "--demand-tps: must be a number"),
])
def test_out_of_range_numbers_are_refused(capsys, argv, message):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_extremes_of_the_ranges_give_finite_answers(capsys):
    code, out, _ = cli(capsys, "predict", "--batch", "1e8", "--context", "1e9", "--price", "1e-6", "--json")
    d = json.loads(out)
    assert code == 0 and d["usd_per_mtok"] > 0 and math.isfinite(d["step_time_s"]) and not d["fits"]
    code, out, _ = cli(capsys, "predict", "--price", "1e6", "--json")
    assert code == 0 and math.isfinite(json.loads(out)["usd_per_mtok"])


def test_feasibility_does_not_depend_on_the_price():
    # the reproducer priced at 1e300 (now out of range) said infeasible while exhaustive found an answer
    for price in (None, 1e6):
        kw = dict(tpot_s=0.2, max_chips=16, usd_per_chip_hour=price, efficiency="calibrated")
        g = cm.optimize("llama-2-70b", "h100-sxm", **kw)
        e = cm.optimize("llama-2-70b", "h100-sxm", method="exhaustive", **kw)
        assert g.feasible and e.feasible
        assert g.usd_per_mtok == pytest.approx(e.usd_per_mtok, rel=1e-3)


# ---------------------------------------------------------------- answers that were wrong

def test_scaling_book_prefill_keeps_attention_flops():
    # prefill of a 131,072-token prompt is compute-bound; the step cannot be shorter than its FLOPs
    p = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(prompt=131072, phase="prefill"),
                   rules=cm.Rules(phase="prefill", combine="scaling-book"))
    assert p.step_time_s >= p.compute_s * (1 - 1e-12)
    assert p.mfu <= 1 + 1e-12
    assert p.step_time_s == pytest.approx(p.compute_s + p.overhead_s, rel=1e-9)  # attention + matmul FLOPs


def test_default_precision_falls_back_to_a_math_the_chip_runs(capsys):
    # DeepSeek-V3 ships fp8 weights; TPU v5e has no fp8 math: the weights are dequantised to bf16
    code, out, err = cli(capsys, "optimize", "--model", "deepseek-v3", "--hardware", "tpu-v5e", "--max-chips", "256",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["config"]["weights"] == "fp8"
    p = cm.predict("deepseek-v3", "tpu-v5e", parallel=cm.Parallel(ep=64))
    assert (p.scenario.weights, p.scenario.math) == ("fp8", "bf16")
    with pytest.raises(cm.PrecisionError, match="tpu-v5e has no fp8 math"):  # asked for explicitly: refused
        cm.predict("deepseek-v3", "tpu-v5e", parallel=cm.Parallel(ep=64), precision=cm.Precision(weights="fp8"))


def test_json_numbers_are_float64_and_counts_are_whole(capsys):
    import jax

    with jax.enable_x64(False):  # as from the shell: JAX's default float32
        code, out, _ = cli(capsys, "predict", "--batch", "64", "--json")
    d = json.loads(out)
    reference = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=64), efficiency="calibrated")  # float64
    for k in ("step_time_s", "usd_per_mtok", "memory_bytes_per_chip", "usable_bytes_per_chip", "mfu"):
        assert d[k] == pytest.approx(reference.values[k], rel=1e-13), k  # float32 would differ at 1e-7
    assert d["usable_bytes_per_chip"] == 0.9 * cm.load_hardware("h100-sxm").hbm_bytes  # calibrated fraction
    assert d["workload"]["batch"] == 64 and isinstance(d["workload"]["batch"], int)


def test_demand_pricing_is_reported_both_ways(capsys):
    code, out, _ = cli(capsys, "optimize", "--model", "llama-3-8b", "--demand-tps", "5000", "--tpot-ms", "30",
                       "--json")
    d = json.loads(out)
    assert code == 0 and d["pricing"] == "demand"
    chips, price, tps = d["config"]["chips"], d["problem"]["usd_per_chip_hour"], d["tokens_per_s"]
    assert d["usd_per_mtok"] == pytest.approx(1e6 * chips * price / (3600 * 5000), rel=1e-5)
    assert d["usd_per_mtok_at_capacity"] == pytest.approx(1e6 * chips * price / (3600 * tps), rel=1e-5)
    assert d["usd_per_mtok"] >= d["usd_per_mtok_at_capacity"]
    code, out, _ = cli(capsys, "optimize", "--model", "llama-3-8b", "--tpot-ms", "30", "--json")
    d = json.loads(out)
    assert d["pricing"] == "capacity" and d["usd_per_mtok"] == pytest.approx(d["usd_per_mtok_at_capacity"], rel=1e-5)


def test_shadow_price_is_negative_when_the_latency_target_binds():
    s = cm.optimize("llama-3-70b", "h100-sxm", context=8192, tpot_s=0.02, max_chips=32)
    assert s.binding in ("tpot", "ttft") and s.shadow_price_usd_per_mtok_per_ms < 0


# ---------------------------------------------------------------- the Python API

@pytest.mark.parametrize("call, match", [
    (lambda: cm.predict("llama-3-8b", "h100-sxm", {"batch": 8}), "workload must be a Workload"),
    (lambda: cm.predict("llama-3-8b", "h100-sxm", "decode"), "workload must be a Workload"),
    (lambda: cm.predict("llama-3-8b", "h100-sxm", parallel={"tp": 2}), "parallel must be a Parallel"),
    (lambda: cm.predict("llama-3-8b", "h100-sxm", precision="fp8"), "precision must be a Precision"),
    (lambda: cm.predict("llama-3-8b", "h100-sxm", rules="max"), "rules must be a Rules"),
    (lambda: cm.optimize("llama-3-8b", "h100-sxm", rules={"combine": "sum"}), "rules must be a Rules"),
    (lambda: cm.Parallel(mesh=8), "mesh must be 1 to 3 whole numbers"),
    (lambda: cm.optimize("llama-3-8b", "h100-sxm", weights=7), "weights must be a precision name"),
    (lambda: cm.Workload(batch=10**400), r"batch must be a number in \[1, 1e\+08\] sequences, got an integer of about 401 digits"),
    (lambda: cm.predict("llama-3-8b", "h100-sxm", usd_per_chip_hour=math.inf), "usd_per_chip_hour must be a number in"),
    (lambda: cm.Parallel(tp=2.0), r"tp must be a whole number in \[1, 1048576\] chips, got 2.0"),
    (lambda: cm.optimize("llama-3-8b", "h100-sxm", max_chips=2**63), "max_chips must be a whole number"),
    (lambda: cm.Precision(weights=["fp8"]), "unknown weights precision"),
    (lambda: cm.load_model(42), "model must be a catalog name, a config.json path or a ModelSpec"),
    (lambda: cm.load_hardware(["h100-sxm"]), "unknown hardware"),
])
def test_python_api_raises_its_own_errors(call, match):
    with pytest.raises(cm.CostModelError, match=match):
        call()


def test_optimize_accepts_rules_none_like_predict():
    assert cm.optimize("llama-3-8b", "h100-sxm", context=4096, tpot_s=0.02, max_chips=8, rules=None).feasible


# ---------------------------------------------------------------- one command-line vocabulary

def _options(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return {s: a for a in sub.choices[command]._actions for s in a.option_strings}


@pytest.mark.parametrize("command", ["predict", "optimize", "search", "sweep", "plot", "report", "plan"])
def test_every_evaluating_command_takes_the_same_efficiency(command):
    assert _options(command)["--efficiency"].default == "calibrated"


def test_latency_flags_carry_their_unit():
    assert "--tpot-ms" in _options("report") and "--tpot" not in _options("report")
    assert "--tpot-ms" in _options("optimize") and "--ttft-ms" in _options("optimize")


def test_optimize_math_is_used():
    s = cm.optimize("llama-3-8b", "h100-sxm", context=4096, tpot_s=0.05, max_chips=8, weights="fp8", math="bf16")
    assert s.prediction.scenario.math == "bf16"
    with pytest.raises(cm.ConfigError, match="a100-80gb cannot compute in fp8 math"):
        cm.optimize("llama-3-8b", "a100-80gb", math="fp8")


def test_library_errors_speak_parameter_names_and_the_cli_translates(capsys):
    s = cm.optimize("llama-3.1-405b", "h100-sxm", context=8192, tpot_s=0.05, max_chips=1)
    assert not s.feasible and "max_chips" in s.message and "--" not in s.message
    code, out, _ = cli(capsys, "optimize", "--model", "llama-3.1-405b", "--max-chips", "1")
    assert code == 0 and "--max-chips" in out and "max_chips" not in out


@pytest.mark.slow  # builds a 10^7-value axis before refusing it
def test_sweep_to_csv_is_bounded_and_axes_keep_their_flag(capsys):
    code, out, err = cli(capsys, "sweep", "--batch", "1:2:10000000", "--context", "1,2", "--no-progress")
    assert code == 2 and out == "" and "20,000,000 rows, more than 2,000,000 for CSV" in err
    code, _, err = cli(capsys, "sweep", "--price", "1e300", "--no-progress")
    assert code == 2 and "error: --price must be a number in [1e-06, 1000000] USD per chip-hour, got 1e+300" in err


def test_an_error_echoing_a_line_break_stays_on_one_line(capsys):
    for argv in (["list", "-y\nz"], ["predict", "--model", "a\nb"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "\\n" in err


def test_numbers_beyond_python_int_conversion_are_refused(tmp_path, capsys):
    huge = "1" + "0" * 5000  # more digits than Python converts between int and str
    path = tmp_path / "config.json"
    path.write_text('{"num_hidden_layers": ' + huge + "}")
    with pytest.raises(cm.SpecError, match="cannot be read as a config.json"):
        cm.load_model(str(path))
    with pytest.raises(cm.ConfigError, match="cannot be read"):
        cm.predict("llama-3-8b", "h100-sxm", efficiency=str(path))
    with pytest.raises(cm.ConfigError, match="got an integer of about 5001 digits"):
        cm.Workload(batch=10**5000)
    code, _, err = cli(capsys, "predict", "--tp", huge)
    assert code == 2 and "characters)" in err and len(err) < 200


# ---------------------------------------------------------------- the serving inputs

_POOLS = (cm.Pool(cm.Parallel(tp=8)), cm.Pool(cm.Parallel(tp=8)))


@pytest.mark.parametrize("call, match", [
    (lambda: cm.Requests("1024", 1024), r"input_tokens must be a number in \[1, 1e\+09\] tokens, got '1024'"),
    (lambda: cm.Requests({"n": 1}, 1024), "input_tokens must be a number"),
    (lambda: cm.Requests(True, 1024), "input_tokens must be a number .* got True"),
    (lambda: cm.Requests(1024, math.nan), "output_tokens must be a number .* got nan"),
    (lambda: cm.Requests(1024, math.inf), "output_tokens must be a number .* got inf"),
    (lambda: cm.Requests(10**400, 1024), "input_tokens must be a number .* got an integer of about 401 digits"),
    (lambda: cm.Requests(1e10, 1024), r"input_tokens must be a number in \[1, 1e\+09\]"),
    (lambda: cm.Requests(1024, 1024, prefix_hit="0.5"), "prefix_hit must be a finite number >= 0 and < 1"),
    (lambda: cm.Requests(1024, 1024, prefix_hit=math.nan), "prefix_hit must be a finite number"),
    (lambda: cm.Requests(2, 1024, prefix_hit=0.9), "at least 1 must be"),
    (lambda: cm.Requests(1024, 1024, classes=((0.5, 1024, 1024),)), "class weights must sum to 1"),
    (lambda: cm.Requests.mix([(10**400, 1024, 1024)]), "class weight must be a number in"),
    (lambda: cm.Requests.mix([(1, 1024, 1024), (1e-300, 8, 8)]), "class weight must be a number in"),
    (lambda: cm.Requests.mix([(1, "8", 8)]), "class input_tokens must be a number"),
    (lambda: cm.Requests.mix({"a": 1}), "classes must be a non-empty list"),
    (lambda: cm.Requests.mix("abc"), "classes must be a non-empty list"),
    (lambda: cm.Load.static("8"), "static batch must be a number in"),
    (lambda: cm.Load.concurrency(10**400), "concurrency must be a number .* got an integer of about 401 digits"),
    (lambda: cm.Load.concurrency(0.5), r"concurrency must be a number in \[1, 1e\+08\] requests"),
    (lambda: cm.Load.rate(1e-300), r"rate \(requests/s\) must be a number in \[1e-09, 1e\+09\]"),
    (lambda: cm.Load.rate(math.inf), r"rate \(requests/s\) must be a number"),
    (lambda: cm.Load.offline(max_batch=True), "max_batch must be a number"),
    (lambda: cm.Load.concurrency(8, max_batch=1e9), r"max_batch must be a number in \[1, 1e\+08\]"),
    (lambda: cm.Load({"kind": 1}, 8), "load kind .* is not allowed"),
    (lambda: cm.Pool(cm.Parallel(), batch=math.nan), "pool batch must be a number"),
    (lambda: cm.Disaggregated(*_POOLS, link="fast"), "link .* must be a number in"),
    (lambda: cm.Disaggregated(*_POOLS, link=math.nan), "link .* must be a number in"),
    (lambda: cm.Disaggregated(*_POOLS, link=1e-3), r"link .* \[1000000, 1e\+18\] bytes/s"),
    (lambda: cm.Disaggregated(*_POOLS, link=10**400), "link .* got an integer of about 401 digits"),
    (lambda: cm.Disaggregated(*_POOLS, overlap="yes"), "overlap must be True or False"),
    (lambda: cm.Speculative("mtp", 10**400, accept=0.5), r"speculative length must be a whole number in \[1, 1024\]"),
    (lambda: cm.Speculative("mtp", 2.0, accept=0.5), "speculative length must be a whole number"),
    (lambda: cm.Speculative("mtp", 2, accept="0.5"), "speculative acceptance must be a finite number"),
    (lambda: cm.Speculative("mtp", 2, accept=math.nan), "speculative acceptance must be a finite number"),
    (lambda: cm.Speculative("mtp", 2, accepted_length=math.inf), "speculative accepted length must be a number"),
    (lambda: cm.Speculative("no-such-model", 2, accept=0.5), "speculative draft must be 'mtp' or a model: unknown"),
    (lambda: cm.Speculative({"name": "mtp"}, 2, accept=0.5), "draft must be 'mtp' or a model"),
    (lambda: cm.serve("llama-3-8b", "h100-sxm", chunk_tokens="8192"), "chunk_tokens must be a number in"),
    (lambda: cm.serve("llama-3-8b", "h100-sxm", chunk_tokens=10**400), "chunk_tokens must be a number in"),
])
def test_serving_inputs_are_checked_at_construction(call, match):
    with pytest.raises(cm.ConfigError, match=match):
        call()


def test_a_free_link_and_the_range_ends_of_the_serving_inputs_are_accepted():
    assert cm.Disaggregated(*_POOLS, link=math.inf).link == math.inf
    s = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1, 1), cm.Load.rate(1e-9), chunk_tokens=1)
    assert all(math.isfinite(v) for v in (s.ttft_s, s.tpot_s, s.e2e_latency_s, s.usd_per_request))
    for load in (cm.Load.concurrency(1e8), cm.Load.rate(1e9), cm.Load.offline(max_batch=1e8), cm.Load.static(1e8)):
        d = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1e9, 1e9), load, chunk_tokens=1e9).to_dict()
        assert json.dumps(d, allow_nan=False)  # no NaN or infinity, whatever the load


@pytest.mark.parametrize("argv, message", [
    (["--isl", "1e308", "--osl", "8"], "--isl: must be a number in [1, 1e+09] tokens, got 1e308"),
    (["--isl", "8", "--osl", "nan"], "--osl: must be a number in [1, 1e+09] tokens, got nan"),
    (["--isl", "8", "--osl", "8", "--rate", "1e-300"], "--rate: must be a number in [1e-09, 1e+09] requests/s"),
    (["--isl", "8", "--osl", "8", "--concurrency", "1" + "0" * 400], "--concurrency: must be a number in [1, 1e+08]"),
    (["--isl", "8", "--osl", "8", "--static-batch", "inf"], "--static-batch: must be a number in [1, 1e+08]"),
    (["--isl", "8", "--osl", "8", "--chunk", "0.5"], "--chunk: must be a number in [1, 1e+09] tokens"),
    (["--isl", "8", "--osl", "8", "--max-batch", "1e9"], "--max-batch: must be a number in [1, 1e+08] sequences"),
    (["--isl", "8", "--osl", "8", "--prefix-hit", "nan"], "--prefix-hit: must be a number in [0, 1), got nan"),
    (["--isl", "8", "--osl", "8", "--disagg", "--prefill-tp", "2.5", "--decode-tp", "1"],
     "--prefill-tp: expected a whole"),
    (["--isl", "8", "--osl", "8", "--disagg", "--prefill-tp", "1", "--decode-replicas", "9223372036854775807",
      "--decode-tp", "1"], "--decode-replicas: must be a whole number in [1, 1048576] replicas"),
    (["--isl", "8", "--osl", "8", "--spec-draft", "mtp", "--spec-len", "4096", "--spec-accept", "0.5"],
     "--spec-len: must be a whole number in [1, 1024] draft tokens"),
    (["--isl", "8", "--osl", "8", "--spec-draft", "mtp", "--spec-len", "2", "--spec-accept-len", "1e308"],
     "--spec-accept-len: must be a number in [1, 1025] tokens per step"),
])
def test_serving_flags_out_of_range_are_one_line_errors(capsys, argv, message):
    code, out, err = cli(capsys, "predict", "--model", "llama-3-8b", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_one_output_token_has_no_tpot_rate_in_text_or_json(capsys):
    argv = ["predict", "--model", "llama-3-8b", "--isl", "1", "--osl", "1", "--disagg", "--prefill-tp", "1",
            "--decode-tp", "1"]
    code, out, err = cli(capsys, *argv)
    assert code == 0 and "TPOT" in out and "tok/s per user" not in out, err
    code, out, _ = cli(capsys, *argv, "--json")
    assert code == 0 and json.loads(out)["tokens_per_s_per_user"] is None


@pytest.mark.parametrize("req, rate, chunk", [(cm.Requests(1, 256), 50.0, 8192), (cm.Requests(128, 1), 0.1, 1e9),
                                              (cm.Requests(1024, 1024, prefix_hit=0.9), 1e9, 1e9)])
def test_open_loop_with_a_huge_chunk_budget_of_small_prompts_is_quick(req, rate, chunk, monkeypatch):
    """The prompt queue's chain once priced every step size up to C/P units (10^7 here): minutes. It
    prices at most ``Q_LIMIT + 1`` step sizes (counted, not timed: the count does not depend on the load)."""
    from costmodel.serving import aggregated
    from costmodel.serving.queueing import Q_LIMIT

    sizes = []
    real = aggregated._chain_steps

    def counted(*args, **kwargs):
        step_s, mix = real(*args, **kwargs)
        sizes.append(len(step_s))
        return step_s, mix

    monkeypatch.setattr(aggregated, "_chain_steps", counted)
    s = cm.serve("llama-3-8b", "h100-sxm", req, cm.Load.rate(rate), chunk_tokens=chunk)
    assert sizes and max(sizes) <= Q_LIMIT + 1
    assert math.isfinite(s.tpot_s) and (s.saturated or math.isfinite(s.ttft_s))


def test_open_loop_prompt_of_millions_of_chunks_is_refused_not_run_out_of_memory(capsys):
    code, out, err = cli(capsys, "predict", "--model", "llama-3-8b", "--isl", "1e9", "--osl", "2", "--rate", "1e-9",
                         "--chunk", "512")
    assert code == 2 and "needs 1953125 chunk steps" in err and "at least 3906250" in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""


# ---------------------------------------------------------------- fleet files (costmodel plan)

FLEET_OK = """
[chips.h100-sxm]
available = 16

[models.chat]
model = "llama-3-8b"
isl = 1024
osl = 256
rate_per_s = 2.0
tpot_ms = 50
"""


def _fleet(**change: str) -> str:
    """FLEET_OK with a line replaced (``key="old line => new line"``) or appended (``extra=...``)."""
    text = FLEET_OK
    for old_new in change.values():
        old, _, new = old_new.partition(" => ")
        text = text.replace(old, new) if new or " => " in old_new else text + old + "\n"
    return text


@pytest.mark.parametrize("text, message", [
    ("[chips.h100-sxm\navailable = 16\n", "is not valid TOML: Expected ']' at the end of a table declaration (at line 1"),
    ("", "needs [models.NAME] tables"),
    (_fleet(a="tpot_ms = 50 => tpot = 50"), "models.chat.tpot: unknown key; did you mean 'tpot_ms'?"),
    (_fleet(a="[chips.h100-sxm] => price = 3\n[chips.h100-sxm]"), "price: unknown key Allowed keys: models, chips"),
    (_fleet(a="available = 16 => available = \"16\""), "chips.h100-sxm.available must be a whole number in [0, 1048575] chips, got '16'"),
    (_fleet(a="available = 16 => available = 16.0"), "chips.h100-sxm.available must be a whole number in [0, 1048575] chips, got 16.0"),
    (_fleet(a="available = 16 => available = -4"), "chips.h100-sxm.available must be a whole number in [0, 1048575] chips, got -4"),
    (_fleet(a="available = 16 => available = 16\nusd_per_chip_hour = -2"), "chips.h100-sxm.usd_per_chip_hour must be a number in [1e-06, 1000000] USD per chip-hour, got -2"),
    (_fleet(a="available = 16 => "), "chips.h100-sxm: needs available"),
    (_fleet(a="[chips.h100-sxm] => [chips.h100]"), "chips.h100: unknown hardware 'h100'; did you mean 'h100-sxm'?"),
    (_fleet(a="llama-3-8b => llama-9"), "models.chat.model: unknown model 'llama-9'"),
    (_fleet(a="llama-3-8b => missing/config.json"), "models.chat.model: model config file"),
    (_fleet(a="rate_per_s = 2.0 => "), "models.chat: needs exactly one of rate_per_s (requests/s) or output_tokens_per_s, got neither"),
    (_fleet(a="rate_per_s = 2.0 => rate_per_s = 2.0\noutput_tokens_per_s = 500"), "got rate_per_s and output_tokens_per_s"),
    (_fleet(a="rate_per_s = 2.0 => rate_per_s = 0"), "models.chat.rate_per_s must be a number in [1e-09, 1e+09] requests/s, got 0"),
    (_fleet(a="rate_per_s = 2.0 => rate_per_s = nan"), "models.chat.rate_per_s must be a number in [1e-09, 1e+09] requests/s, got nan"),
    (_fleet(a="rate_per_s = 2.0 => rate_per_s = true"), "models.chat.rate_per_s must be a number"),
    (_fleet(a="tpot_ms = 50 => tpot_ms = inf"), "models.chat.tpot_ms must be a number in [0.0001, 8.64e+07] ms, got inf"),
    (_fleet(a="osl = 256 => "), "models.chat: needs osl (input and output tokens per request) or mix"),
    (_fleet(a="osl = 256 => osl = 256\nmix = [[1, 128, 64]]"), "models.chat: give isl and osl, or mix, not both"),
    (_fleet(a="isl = 1024 => "), "models.chat: needs isl (input and output tokens per request) or mix"),
    (_fleet(a="isl = 1024\nosl = 256 => mix = [[1, 128]]"), "models.chat: classes must be a non-empty list"),
    (_fleet(a="isl = 1024 => isl = 1024\nprefix_hit = 1"), "models.chat.prefix_hit must be a number in [0, 1), got 1"),
    (_fleet(a="tpot_ms = 50 => mode = \"fast\""), "models.chat.mode must be one of 'auto', 'agg', 'disagg', got 'fast'"),
    (_fleet(a="tpot_ms = 50 => weights = [\"bf16\", \"fp9\"]"), "models.chat.weights: unknown precision 'fp9'"),
    (_fleet(a="tpot_ms = 50 => kv = []"), "models.chat.kv must be a name or a non-empty list of names, got []"),
    (_fleet(a="tpot_ms = 50 => hardware = [\"b200\"]"), "models.chat.hardware: 'b200' is not a chip type of this fleet; the fleet's chips: h100-sxm"),
    ("models = 3\n" + FLEET_OK, "is not valid TOML: Cannot overwrite a value (at line 6"),
    ("models = 3\n[chips.h100-sxm]\navailable = 1\n", "models must be a table, got int 3"),
    ("models = {}\n[chips.h100-sxm]\navailable = 1\n", "models: needs at least one model"),
])
def test_malformed_fleet_file_is_one_line_with_status_2(tmp_path, capsys, text, message):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(cm.CostModelError) as e:
        cm.load_fleet(path)
    assert message in str(e.value) and str(e.value).startswith(f"fleet file {path}"), str(e.value)
    code, out, err = cli(capsys, "plan", str(path))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err


def test_fleet_file_that_is_not_a_readable_toml_file(tmp_path, capsys):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[chips]")
    for path, message in ((tmp_path, "is a directory; pass a TOML file"), (tmp_path / "none.toml", "does not exist"),
                          (tmp_path / "bin.toml", "is not UTF-8 text (byte 0)")):
        code, out, err = cli(capsys, "plan", str(path))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_fleet_mapping_errors_and_options_are_checked_before_any_optimisation(tmp_path, capsys):
    with pytest.raises(cm.ConfigError, match=r"^fleet: chips.h100-sxm.available must be a whole number"):
        cm.load_fleet({"models": {"a": {"isl": 1, "osl": 1, "rate_per_s": 1}}, "chips": {"h100-sxm": {"available": 1.5}}})
    with pytest.raises(cm.ConfigError, match="a fleet is a TOML file path or a mapping, got int 3"):
        cm.plan(3)
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET_OK)
    with pytest.raises(cm.ConfigError, match="method must be one of gradient, exhaustive, got 'newton'"):
        cm.plan(path, method="newton")
    code, _, err = cli(capsys, "plan", str(path), "--efficiency", "nope")
    assert code == 2 and "unknown efficiency profile 'nope'" in err and len(err.strip().splitlines()) == 1, err


def test_a_model_label_is_its_catalog_name_by_default_and_config_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(LLAMA))
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET_OK.replace('model = "llama-3-8b"', 'model = "cfg/config.json"')
                    + '\n[models.llama-3-70b]\nisl = 128\nosl = 64\noutput_tokens_per_s = 100\n')
    f = cm.load_fleet(path)
    assert f.models[0].model == str(tmp_path / "cfg" / "config.json") and f.models[1].model == "llama-3-70b"
    assert f.models[1].rate_per_s is None and f.models[1].output_tokens_per_s == 100.0
    assert f.chips[0].usd_per_chip_hour == cm.load_hardware("h100-sxm").usd_per_chip_hour


@pytest.mark.parametrize("command", ["predict", "optimize"])
def test_a_draft_of_another_vocabulary_is_refused_at_once(capsys, command):
    """A 47B draft with a 32,000-token vocabulary cannot propose tokens that an 8B target of 128,256 verifies:
    refused in one line before any step is priced (it once ran for over a minute)."""
    code, out, err = cli(capsys, command, "--model", "llama-3-8b", "--spec-draft", "mixtral-8x7b", "--spec-len", "4",
                         "--spec-accept", "0.7", "--isl", "1024", "--osl", "256", "--rate", "2")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "vocabulary of 32,000 tokens" in err and "128,256" in err
    with pytest.raises(cm.ConfigError, match="same tokenizer"):
        cm.serve("llama-3-8b", "h100-sxm", cm.Requests(64, 64), cm.Load.rate(1.0),
                 spec=cm.Speculative("mixtral-8x7b", 2, accept=0.5))
    with pytest.raises(cm.ConfigError, match="same tokenizer"):
        cm.optimize_serving("llama-3-8b", "h100-sxm", cm.Requests(64, 64), rate_per_s=1.0, tpot_s=0.05,
                            spec=cm.Speculative("mixtral-8x7b", 2, accept=0.5))
