"""Fuzz the command line: valid and adversarial arguments, malformed config and profile files.

Every subcommand runs in-process (``main(argv)``) on arguments drawn by Hypothesis (``predict`` with
and without the request-level serving flags: lengths, loads, pools, speculation). Whatever the
input, an answer must be an exit status of 0 or 2, no traceback, one line on stderr for an error,
no NaN or infinity in the answer (text or JSON), no MFU above 1, and no example may run longer
than the time limit. The CI run draws a few dozen to a few hundred examples per command (about a
minute in all); ``pytest tests/test_fuzz.py --fuzz-long`` draws 10,000+ per command and
prints the count of each kind of failure instead of stopping at the first.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel import list_hardware, list_models
from costmodel.cli import common, main
from helpers import env_with_cache

#: examples per command in CI (the long run multiplies them to at least LONG_EXAMPLES).
CI_EXAMPLES = {"predict": 150, "optimize": 25, "optimize-serving": 8, "search": 15, "sweep": 15, "plot": 8,
               "report": 2, "list": 30, "hf-config": 120, "profile": 80, "measurements": 60, "plan": 40,
               "lengths": 40, "cache": 6}
LONG_EXAMPLES = 10_000
TIME_LIMIT_S = 60  # CPU seconds of this process per example (a hang, not a slow machine)

NONFINITE = re.compile(r"(?<![\w.-])[-+]?(nan|inf|infinity)(?![\w-])", re.I)


# ---------------------------------------------------------------- running one command line

class _Timeout(BaseException):
    """Raised by the alarm inside a command that ran past the limit (not an Exception: nothing catches it)."""


@dataclass
class Outcome:
    argv: list[str]
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    traceback: str = ""
    timed_out: bool = False
    nonfinite_json: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        """What is wrong with this outcome (empty when it is a correct answer or a clean refusal)."""
        bad = []
        if self.timed_out:
            bad.append(f"ran over {TIME_LIMIT_S} s")
        if self.traceback:
            bad.append("traceback: " + self.traceback.strip().splitlines()[-1])
        if self.code not in (0, 2, None) and not self.timed_out and not self.traceback:
            bad.append(f"exit status {self.code}")
        if self.code == 2 and self.stderr.strip() and len(self.stderr.strip().splitlines()) != 1:
            bad.append(f"error of {len(self.stderr.strip().splitlines())} lines: {self.stderr[:300]!r}")
        if self.nonfinite_json:
            bad.append(f"non-finite numbers in JSON at {', '.join(self.nonfinite_json[:5])}")
        if self.code == 0 and NONFINITE.search(self.stdout):
            bad.append(f"non-finite number in the output: {NONFINITE.search(self.stdout).group(0)!r}")
        if self.code == 0 and self.stdout.lstrip().startswith("{"):
            bad += _json_invariants(json.loads(self.stdout))
        return bad


def _json_invariants(d: dict) -> list[str]:
    """Physical sanity of a predict or optimize answer."""
    bad = []
    if d.get("mfu") is not None and d["mfu"] > 1 + 1e-9:
        bad.append(f"MFU {d['mfu']:.3g} > 1")
    for k in ("step_time_s", "usd_per_mtok", "tokens_per_s"):
        if isinstance(d.get(k), (int, float)) and not d[k] > 0:
            bad.append(f"{k} = {d[k]!r} is not positive")
    return bad


def _walk(obj, path: str, out: list[str]) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        out.append(path or "/")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{path}/{i}", out)


@contextlib.contextmanager
def _alarm(seconds: float):
    def fire(*_):
        raise _Timeout()

    # the process's CPU time (ITIMER_PROF), not the wall clock: another job on the cores does not count
    old = signal.signal(signal.SIGPROF, fire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def run(argv: list[str]) -> Outcome:
    """Run ``costmodel ARGV`` in this process as the shell would (float32 JAX), and record what happened."""
    o = Outcome(list(argv))
    out, err = io.StringIO(), io.StringIO()
    real_finite = common._finite

    def spy(obj):  # print_json's filter: record a non-finite number before it becomes null
        _walk(obj, "", o.nonfinite_json)
        return real_finite(obj)

    t0 = time.perf_counter()
    common._finite = spy
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), jax.enable_x64(False), \
                _alarm(TIME_LIMIT_S):
            try:
                o.code = main(list(argv))
            except SystemExit as e:  # argparse: --help (0) or a usage error (2)
                o.code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except _Timeout:
        o.timed_out = True
    except Exception:  # noqa: BLE001 - any escaping exception is what this test looks for
        o.traceback = traceback.format_exc()
    finally:
        common._finite = real_finite
        o.seconds = time.perf_counter() - t0
    o.stdout, o.stderr = out.getvalue(), err.getvalue()
    return o


# ---------------------------------------------------------------- strategies

ODD_TEXT = ["", " ", "-", "--", "0", "-1", "1e308", "-1e308", "5e-324", "1e-45", "1e300", "nan", "NaN", "inf",
            "-inf", "Infinity", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
            "1" + "0" * 400, "1" + "0" * 5000, "1.5", "0.5", "abc", "0x10", "1_000", "1,2", "1:2", "1:2:log3", "x" * 300,
            "\u00e9\u6f22", "1e9", "1e-9", "2.0", "3", "7", "1024", "65536", "1e6", "None", "null", "[]", "{}"]

odd = st.one_of(st.sampled_from(ODD_TEXT), st.integers(-10**20, 10**20).map(str),
                st.floats(allow_nan=True, allow_infinity=True).map(repr),
                st.text(max_size=12).filter(lambda s: "\x00" not in s))


def number(*valid: str):
    """A flag value: mostly a valid one, often an odd one."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), odd)


MODELS = list_models()
HARDWARE = list_hardware()
PRECISIONS = ["bf16", "fp16", "fp8", "int8", "int4", "fp4", "fp32"]
models = st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), odd)
chips = st.one_of(st.sampled_from(HARDWARE), st.sampled_from(HARDWARE), odd)
precisions = st.one_of(st.sampled_from(PRECISIONS), odd)
efficiencies = st.one_of(st.sampled_from(["ideal", "calibrated"]), odd)

SPEC = {"--model": models, "--hardware": chips, "--price": number("0.5", "2", "10", "1e-6", "1e6"),
        "--math": precisions, "--weights": precisions, "--kv": precisions, "--efficiency": efficiencies}
PARALLEL = {"--tp": number("1", "2", "4", "8"), "--pp": number("1", "2", "4"), "--ep": number("1", "2", "8"),
            "--replicas": number("1", "2")}
PREDICT = SPEC | PARALLEL | {
    "--batch": number("1", "8", "64", "512", "1e8"), "--context": number("128", "2048", "32768", "1e9"),
    "--prompt": number("1", "512", "8192", "131072"), "--phase": st.sampled_from(["decode", "prefill", "x"]),
    "--combine": st.sampled_from(["max", "sum", "scaling-book", "x"]),
    "--overlap": st.sampled_from(["none", "full"]), "--expert-fetch": st.sampled_from(["expected", "all"]),
    "--layout": st.sampled_from(["1d-ws", "2d-ws", "wg-x", "wg-xy", "wg-xyz"]),
    "--attention-sharding": st.sampled_from(["heads", "batch"]),
    "--mesh": st.one_of(st.sampled_from(["2x2x2", "4x2", "8", "1x1x1"]), odd), "--json": None,
    # power and electricity (docs/theory.md §21)
    "--usd-per-kwh": number("0.08", "0.5", "1e-3", "10"), "--pue": number("1", "1.56", "3"),
    "--price-basis": st.sampled_from(["rental", "owned", "x"]), "--max-power-w": number("300", "700", "1e5"),
    "--idle-power-w": number("0", "75", "900"), "--host-power-w": number("0", "575"),
}
SERVE_MODELS = ["llama-3-8b", "llama-3-70b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-120b", "qwen3-32b"]
#: serving flag -> its valid values (None: a switch); an example is "clean" (valid values only) or mixed with odd ones
SERVE_BASE = {"--model": SERVE_MODELS, "--hardware": ["h100-sxm", "h200", "b200", "tpu-v5e"],
              "--efficiency": ["ideal", "calibrated"], "--tp": ["1", "2", "8"], "--ep": ["1", "8"],
              "--replicas": ["1", "2"], "--price": ["2", "1e-6"], "--kv": ["bf16", "fp8"], "--batch": ["1", "64"],
              "--combine": ["max", "sum", "scaling-book"], "--attention-sharding": ["heads", "batch"],
              "--price-basis": ["rental", "owned"], "--pue": ["1.2", "3"], "--max-power-w": ["900", "1e5"]}
SERVE_LOAD = {"--static-batch": ["1", "8", "64", "1e8"], "--concurrency": ["1", "16", "442", "1e8"],
              "--rate": ["0.1", "2", "50", "1e-9", "1e9"], "--offline": None}
SERVE_EXTRA = {"--prefix-hit": ["0", "0.5", "0.9", "0.999"], "--chunk": ["512", "8192", "1", "1e9"],
               "--max-batch": ["1", "32", "256", "1e8"]}
POOL = {f"--{pool}-{k}": v for pool in ("prefill", "decode")
        for k, v in (("tp", ["1", "2", "8"]), ("ep", ["1", "8"]), ("replicas", ["1", "2", "3"]))}
SPEC_FLAGS = {"--spec-draft": ["mtp", "mtp", "llama-3.1-8b", "llama-2-7b"], "--spec-len": ["1", "2", "3", "8", "1024"],
              "--spec-accept": ["0", "0.5", "0.8", "0.99"], "--spec-accept-len": ["1", "1.5", "2.5", "4"]}


@st.composite
def serving_argv(draw):
    """``predict --isl ...``: request lengths, one load, chunk and cap, pools and speculation.

    Half the examples use valid values only (so that the serving model itself runs on many
    combinations); the others mix in odd values, missing parts and conflicting flags.
    """
    clean = draw(st.booleans())
    value = (lambda valid: draw(st.sampled_from(valid))) if clean else (lambda valid: draw(number(*valid)))

    def flags(table, most):
        chosen = draw(st.lists(st.sampled_from(sorted(table)), unique=True, max_size=most))
        return [x for f in chosen for x in ([f] if table[f] is None else [f, value(table[f])])]

    argv = ["predict", *flags(SERVE_BASE, 4)]
    if not clean and draw(st.booleans()):
        argv += flags({"--phase": ["decode", "prefill"], "--mesh": ["2x2x2", "8"], "--pp": ["1", "2"]}, 2)
    for flag, valid in (("--isl", ["1", "128", "1024", "32768", "1e9"]), ("--osl", ["1", "2", "256", "1024", "1e9"])):
        if clean or draw(st.integers(0, 9)):  # mostly given; its absence is an error to report
            argv += [flag, value(valid)]
    argv += flags(SERVE_LOAD, 1 if clean else 2)  # two loads: refused
    argv += flags(SERVE_EXTRA, 3)
    if draw(st.booleans()):
        argv += ["--disagg"] if clean or draw(st.integers(0, 5)) else []  # pools without --disagg: refused
        sizes = ["--prefill-tp", "--decode-tp"] if clean else []
        argv += [x for f in sizes for x in (f, value(POOL[f]))] + flags({k: POOL[k] for k in POOL if k not in sizes}, 4)
    if draw(st.booleans()):
        accept = draw(st.sampled_from(["--spec-accept", "--spec-accept-len"]))
        for flag in ("--spec-draft", "--spec-len", accept):
            if clean or draw(st.integers(0, 7)):  # mostly complete; a missing part is an error to report
                argv += [flag, value(SPEC_FLAGS[flag])]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


#: ``optimize --isl ...`` (the serving deployment problem): flag -> valid values (None: a switch)
OPT_SERVE = {"--model": ["llama-3-8b", "llama-3-8b", "mixtral-8x7b"], "--hardware": ["h100-sxm", "b200"],
             "--efficiency": ["ideal", "calibrated"], "--max-chips": ["1", "4", "16"],
             "--ttft-ms": ["1", "200", "5000"], "--tpot-ms": ["1", "20", "200"], "--mode": ["agg", "disagg", "auto"],
             "--prefix-hit": ["0", "0.5", "0.999"], "--objective": ["output", "total"],
             "--method": ["gradient", "exhaustive"], "--weights": ["bf16", "bf16,fp8"], "--verify": None,
             "--json": None}
OPT_SERVE_LOAD = {"--rate": ["0.01", "2", "50", "1e-9", "1e9"], "--demand-tps": ["100", "1e5", "1e-6"]}


@st.composite
def optimize_serving_argv(draw):
    """``optimize --isl ...``: lengths, one demand, targets, modes and speculation; clean or mixed with odd
    values, missing parts and conflicting flags."""
    clean = draw(st.booleans())
    value = (lambda valid: draw(st.sampled_from(valid))) if clean else (lambda valid: draw(number(*valid)))

    def flags(table, most):
        chosen = draw(st.lists(st.sampled_from(sorted(table)), unique=True, max_size=most))
        return [x for f in chosen for x in ([f] if table[f] is None else [f, value(table[f])])]

    argv = ["optimize", "--model", "llama-3-8b", *flags(OPT_SERVE, 5)]
    for flag, valid in (("--isl", ["1", "128", "1024", "32768", "1e9"]), ("--osl", ["1", "64", "256", "4096"])):
        if clean or draw(st.integers(0, 9)):
            argv += [flag, value(valid)]
    argv += flags(OPT_SERVE_LOAD, 1 if clean else 2)
    if draw(st.integers(0, 3)) == 0:
        for flag, valid in (("--spec-draft", ["mtp", "llama-3.1-8b"]), ("--spec-len", ["1", "2", "4"]),
                            ("--spec-accept", ["0", "0.7", "0.9"])):
            if clean or draw(st.integers(0, 7)):
                argv += [flag, value(valid)]
    if "--max-chips" not in argv:
        argv += ["--max-chips", "8"]
    return argv


OPTIMIZE = SPEC | {
    "--context": number("512", "8192", "131072"), "--prompt": number("512", "8192"),
    "--tpot-ms": number("1", "20", "50", "200"), "--ttft-ms": number("100", "1000", "10000"),
    "--max-chips": number("1", "8", "16", "64", "256"), "--demand-tps": number("100", "10000", "1e6"),
    "--weights": st.one_of(st.sampled_from(["bf16,fp8", "fp8,int4", "bf16"]), precisions),
    "--verify": None, "--json": None,
}
AXIS = st.one_of(st.sampled_from(["1,8,64", "1:64:log4", "512,2048", "1,2", "2:8:3", "0.5:1:2"]), odd)
SWEEP = {"--model": st.one_of(st.sampled_from(MODELS + ["llama-3-8b,mixtral-8x7b"]), odd),
         "--hardware": st.one_of(st.sampled_from(HARDWARE + ["h100-sxm,b200"]), odd),
         "--phase": st.sampled_from(["decode", "prefill"]), "--batch": AXIS, "--context": AXIS,
         "--tp": st.one_of(st.sampled_from(["1,2", "1,2,4,8", "3"]), odd), "--price": AXIS,
         "--hbm-bytes-per-s": st.one_of(st.sampled_from(["1e12,3.35e12", "1e6:1e18:log3"]), odd),
         "--samples": number("1", "10", "50"), "--pareto": st.sampled_from(["cost-latency",
                                                                              "throughput-interactivity"]),
         "--float64": None, "--efficiency": efficiencies}
PLOT = {"--model": models, "--hardware": chips, "--tp": number("1", "2", "8"), "--context": number("2048", "8192"),
        "--batch": number("1", "64"), "--weights": precisions, "--kv": precisions, "--efficiency": efficiencies,
        "--price": number("1", "3"), "--price-tier": st.one_of(st.sampled_from(["fast=4.8", "x=1e400"]), odd)}
REPORT = {"--model": models, "--hardware": chips, "--tp": number("1", "8"), "--context": number("2048", "8192"),
          "--tpot-ms": number("20", "50"), "--max-chips": number("8", "64"), "--format": st.sampled_from(["md", "tex"]),
          "--efficiency": efficiencies, "--figure-format": st.sampled_from(["png", "svg"])}
LIST = {"--json": None}


@st.composite
def argv_for(draw, command: str, flags: dict, positional=None, fixed: tuple[str, ...] = ()):
    """``[command, *positional, *flags]``: a random subset of ``flags`` with drawn values."""
    names = draw(st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=min(6, len(flags))))
    argv = [command]
    if positional is not None:
        argv.append(draw(positional))
    for name in names:
        argv.append(name)
        if flags[name] is not None:
            argv.append(draw(flags[name]))
    return argv + list(fixed)


# ---------------------------------------------------------------- malformed files

LLAMA = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256, "torch_dtype": "bfloat16"}
DEEPSEEK = {"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
            "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
            "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
            "first_k_dense_replace": 3, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
            "v_head_dim": 128, "qk_nope_head_dim": 128, "vocab_size": 129280,
            "quantization_config": {"fmt": "e4m3", "quant_method": "fp8"}}
MIXTRAL = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
           "num_key_value_heads": 8, "num_hidden_layers": 32, "num_local_experts": 8, "num_experts_per_tok": 2,
           "vocab_size": 32000}
ODD_JSON = [0, -1, 1, 7.5, 1e308, -39, 2**63, 2**63 - 1, 10**8, 10**30, "12", "x", "", None, True, False, [],
            [1, 2], {}, {"a": 1}, float("nan"), float("inf")]
json_value = st.one_of(st.sampled_from(ODD_JSON), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))


@st.composite
def hf_config(draw):
    """A valid Hugging Face config with a few keys changed, deleted or added, or not a config at all."""
    kind = draw(st.sampled_from(["mutated"] * 6 + ["not-object", "not-utf8", "not-json", "directory", "empty"]))
    if kind == "not-object":
        return json.dumps(draw(st.sampled_from([[1, 2], "config", 3, None, []])))
    if kind == "not-utf8":
        return b"\xff\xfe{\x00"
    if kind == "not-json":
        return draw(st.sampled_from(["{", "{'a': 1}", "", "nan"]))
    if kind in ("directory", "empty"):
        return kind
    c = dict(draw(st.sampled_from([LLAMA, DEEPSEEK, MIXTRAL])))
    keys = sorted(set(LLAMA) | set(DEEPSEEK) | set(MIXTRAL) | {"head_dim", "_name_or_path", "tie_word_embeddings",
                                                               "shared_expert_intermediate_size", "num_experts"})
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        if draw(st.booleans()):
            c.pop(key, None)
        else:
            c[key] = draw(json_value)
    return json.dumps(c)  # NaN and Infinity as Python's json writes them


with open(Path(__file__).parents[1] / "costmodel" / "calibrate" / "profiles" / "calibrated.json") as f:
    PROFILE = json.load(f)


@st.composite
def profile_file(draw):
    """The packaged profile with one part replaced, or not a profile at all."""
    kind = draw(st.sampled_from(["param", "param", "top", "not-object", "not-utf8"]))
    if kind == "not-object":
        return json.dumps(draw(st.sampled_from([[], [PROFILE], "calibrated", 1])))
    if kind == "not-utf8":
        return b"\xff\xfe"
    p = json.loads(json.dumps(PROFILE))
    if kind == "top":
        key = draw(st.sampled_from(["name", "fixed", "parameters", "fallback_family"]))
        p[key] = draw(st.one_of(json_value, st.just({"memory_fraction": "x"})))
    else:
        i = draw(st.integers(0, len(p["parameters"]) - 1))
        key = draw(st.sampled_from(["value", "phase", "field", "family"]))
        p["parameters"][i][key] = draw(st.one_of(json_value, st.sampled_from(["decode", "prefill", "*", "tpu"])))
    return json.dumps(p)


with open(Path(__file__).parents[1] / "costmodel" / "calibrate" / "data" / "measurements.json") as f:
    RECORDS = json.load(f)["records"]
_NOT_A_NAME = st.one_of(st.text(max_size=12).filter(lambda t: t not in list_models() + list_hardware()),
                        st.integers(), st.none())


@st.composite
def measurements_file(draw):
    """One or two packaged records with a part that makes the file malformed, or not a file of records.

    Every draw is malformed (a fit of a valid file takes seconds to compile, too long for a fuzz
    example); the valid path is tests/test_calibrate_cli.py's round trip.
    """
    kind = draw(st.sampled_from(["drop", "model", "hardware", "value", "metric", "count", "top", "not-utf8"]))
    if kind == "not-utf8":
        return b"\xff\xfe"
    if kind == "top":
        return json.dumps(draw(st.sampled_from([[], {"records": []}, {"records": {}}, {"records": [1]}, "x", None])))
    rs = [dict(r) for r in draw(st.lists(st.sampled_from(RECORDS), min_size=1, max_size=2, unique_by=lambda r: r["id"]))]
    r = rs[draw(st.integers(0, len(rs) - 1))]
    if kind == "drop":
        r.pop(draw(st.sampled_from(["id", "model", "hardware", "chips", "tp", "batch", "phase", "metric", "value",
                                    "source", "prompt_tokens", "weights_dtype"])))
    elif kind in ("model", "hardware"):
        r[kind] = draw(_NOT_A_NAME)
    elif kind == "value":
        r["value"] = draw(st.sampled_from([0, -1.5, "12", None, [], True]))
    elif kind == "metric":
        r["metric"] = draw(st.one_of(st.text(max_size=10), st.integers(), st.none()))
    else:
        r[draw(st.sampled_from(["batch", "tp", "prompt_tokens", "chips"]))] = draw(
            st.sampled_from([0, -3, 1e12, "8", [8], 0.5]))
    return json.dumps({"records": rs})


def _write(folder: Path, content, name: str) -> str:
    path = folder / name
    if content == "directory":
        path.mkdir(exist_ok=True)
    elif content == "empty":
        path.write_text("")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


#: a small valid fleet, each value a TOML literal
FLEET = {"chips": {"h100-sxm": {"available": "8"}},
         "models": {"chat": {"model": '"llama-3-8b"', "isl": "128", "osl": "64", "rate_per_s": "1.0", "tpot_ms": "50"}},
         "site": {}}
FLEET_KEYS = {"chips": ["available", "usd_per_chip_hour", "price", "price_basis", "max_power_w", "idle_power_w",
                        "host_power_w"],
              "site": ["power_cap_kw", "usd_per_kwh", "pue", "power_cap"],
              "models": ["model", "isl", "osl", "mix", "prefix_hit", "rate_per_s", "output_tokens_per_s", "ttft_ms",
                         "tpot_ms", "mode", "weights", "kv", "hardware", "tpot"]}
toml_value = st.one_of(st.sampled_from(["0", "-1", "1", "7.5", "1e308", "-39", "9223372036854775807", "nan", "inf",
                                        "-inf", "true", '"12"', '"x"', '""', "[]", "[1, 2]", "{}", '{a = 1}',
                                        '"h100-sxm"', '["h200"]', '"llama-3-70b"', '"agg"', '"fp8"', '["bf16", "fp8"]',
                                        "[[1, 128, 64]]", "[[1, 128]]", "0.5", "0.999", "1e-9", "2048", "1970-01-01",
                                        '"owned"', '"rental"', "700.0", "1.56"]),
                       st.integers(-2**70, 2**70).map(str))


def _toml(fleet: dict) -> str:
    """A fleet of TOML literals as TOML text."""
    lines = []
    for table in ("chips", "models"):
        for name, body in fleet[table].items():
            lines += [f"[{table}.{name}]", *(f"{k} = {v}" for k, v in body.items())]
    if fleet.get("site"):  # the optional [site] table, when a key was drawn for it
        lines += ["[site]", *(f"{k} = {v}" for k, v in fleet["site"].items())]
    return "\n".join(lines) + "\n"


@st.composite
def fleet_file(draw):
    """The small valid fleet with a few keys changed, deleted or added, or not a fleet file at all."""
    kind = draw(st.sampled_from(["mutated"] * 6 + ["not-toml", "not-utf8", "directory", "empty", "valid"]))
    if kind == "not-toml":
        return draw(st.sampled_from(["[chips.h100-sxm", "models = 3\n[models.a]", "[[chips]]\nx = 1", "a = ",
                                     "[chips.h100-sxm]\navailable = 1\navailable = 2"]))
    if kind == "not-utf8":
        return b"\xff\xfe[chips]"
    if kind in ("directory", "empty"):
        return kind
    fleet = json.loads(json.dumps(FLEET))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            table = draw(st.sampled_from(["chips", "models", "site"]))
            body = fleet["site"] if table == "site" else next(iter(fleet[table].values()))
            key = draw(st.sampled_from(FLEET_KEYS[table]))
            if draw(st.integers(0, 3)) == 0:
                body.pop(key, None)
            else:
                body[key] = draw(toml_value)
        if draw(st.integers(0, 5)) == 0:
            fleet["chips"] = {draw(st.sampled_from(["h100", "mi300x", "x" * 50, "tpu-v5e"])): {"available": "4"}}
    return _toml(fleet)


# ---------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def fuzz(request):
    """``fuzz(name, strategy, to_argv)``: run the drawn command lines; return the failures (empty when none).

    A default run stops at the first failure; ``--fuzz-long`` runs every example and returns a summary.
    """
    long = request.config.getoption("--fuzz-long")
    tmp = Path(tempfile.mkdtemp(prefix="costmodel-fuzz-"))
    log = os.environ.get("COSTMODEL_FUZZ_LOG")

    def go(name: str, strategy, to_argv=lambda drawn, folder: drawn):
        n = (request.config.getoption("--fuzz-examples") or LONG_EXAMPLES) if long else CI_EXAMPLES[name]
        found: list[tuple[list[str], list[str], float]] = []
        counts = {"examples": 0, "tracebacks": 0, "nonfinite": 0, "over_time": 0, "other": 0, "slowest_s": 0.0}

        @settings(max_examples=n, deadline=None, derandomize=not long, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def one(drawn):
            folder = Path(tempfile.mkdtemp(dir=tmp))
            o = run(to_argv(drawn, folder))
            counts["examples"] += 1
            if o.seconds > counts["slowest_s"]:
                counts["slowest_s"], counts["slowest_argv"] = o.seconds, o.argv
            bad = o.problems()
            if bad:
                counts["tracebacks"] += bool(o.traceback)
                counts["over_time"] += o.timed_out
                counts["nonfinite"] += any("non-finite" in b for b in bad)
                counts["other"] += not (o.traceback or o.timed_out or any("non-finite" in b for b in bad))
                found.append((o.argv, bad, o.seconds))
                if not long:
                    raise AssertionError(f"costmodel {' '.join(map(repr, o.argv))}: {'; '.join(bad)}\n{o.traceback}")

        one()
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"command": name, **counts, "failures": [
                    {"argv": a, "problems": b, "seconds": s} for a, b, s in found[:200]]}) + "\n")
        return [f"{name}: {len(found)} of {counts['examples']} examples failed", *found[:3]] if found else []

    return go


def test_predict(fuzz):
    assert not fuzz("predict", st.one_of(argv_for("predict", PREDICT), serving_argv()))


def test_optimize(fuzz):
    assert not fuzz("optimize", argv_for("optimize", OPTIMIZE))


def test_optimize_serving(fuzz):
    assert not fuzz("optimize-serving", optimize_serving_argv())


def test_search(fuzz):
    assert not fuzz("search", argv_for("search", OPTIMIZE))


def test_sweep(fuzz):
    def with_out(argv, folder):
        return argv + ["--no-progress", "--out", str(folder / "s.csv")]

    assert not fuzz("sweep", argv_for("sweep", SWEEP), with_out)


def test_plot(fuzz):
    kinds = st.one_of(st.sampled_from(["roofline", "batch", "pareto", "breakdown", "sensitivity"]), odd)
    assert not fuzz("plot", st.tuples(argv_for("plot", PLOT, positional=kinds), st.sampled_from(["f.png", "f.svg", "f.jpg"])),
         lambda d, folder: d[0] + ["--out", str(folder / d[1])])


def test_report(fuzz):
    assert not fuzz("report", argv_for("report", REPORT), lambda argv, folder: argv + ["--out", str(folder / "r")])


def test_list(fuzz):
    assert not fuzz("list", argv_for("list", LIST, positional=st.one_of(st.sampled_from(["models", "hardware"]), odd)))


def test_hf_config_files(fuzz):
    def to_argv(d, folder):
        content, flags = d
        return ["predict", "--model", _write(folder, content, "config.json"), *flags]

    extra = st.lists(st.sampled_from(["--json", "--batch=64", "--tp=8", "--ep=8", "--phase=prefill"]), unique=True)
    assert not fuzz("hf-config", st.tuples(hf_config(), extra), to_argv)


def test_fleet_files(fuzz):
    def to_argv(d, folder):
        content, flags = d
        return ["plan", _write(folder, content, "fleet.toml"), *flags]

    extra = st.lists(st.sampled_from(["--json", "--efficiency=ideal", "--method=exhaustive"]), unique=True)
    folder = Path(tempfile.mkdtemp(prefix="costmodel-fleet-"))
    run(["plan", _write(folder, _toml(FLEET), "fleet.toml")])  # compile once: the limit is for each example
    assert not fuzz("plan", st.tuples(fleet_file(), extra), to_argv)


def test_profile_files(fuzz):
    def to_argv(d, folder):
        content, command = d
        return [command, "--efficiency", _write(folder, content, "profile.json"), "--model", "llama-3-8b",
                *(["--max-chips", "8"] if command == "optimize" else ["--json"])]

    assert not fuzz("profile", st.tuples(profile_file(), st.sampled_from(["predict", "predict", "predict", "optimize"])),
         to_argv)


def test_measurement_files(fuzz):
    def to_argv(content, folder):
        return ["calibrate", _write(folder, content, "m.json"), "--out", str(folder / "p.json"), "--iterations", "1"]

    assert not fuzz("measurements", measurements_file(), to_argv)


@st.composite
def lengths_file(draw):
    """A lengths CSV (``--lengths``): rows of two numbers, with bad cells, odd rows and headers mixed in."""
    cell = st.one_of(st.integers(-5, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(["", "x", "1e12", "1e-9", "0", "nan", "inf", " 5 ", "1,5", '"7"']))
    row = st.one_of(st.tuples(cell, cell).map(",".join), st.lists(cell, max_size=4).map(",".join))
    head = st.sampled_from(["", "input_tokens,output_tokens\n", "input,output\n", "in;out\n", "\ufeffinput,output\n"])
    rows = draw(st.lists(row, max_size=12))
    return draw(head) + "\n".join(rows) + draw(st.sampled_from(["", "\n", "\r\n"]))


def test_lengths_files(fuzz):
    def to_argv(d, folder):
        content, command = d
        path = _write(folder, content, "lengths.csv")
        if command == "predict":
            return ["predict", "--model", "llama-3-8b", "--lengths", path, "--rate", "2", "--json"]
        return ["optimize", "--model", "llama-3-8b", "--lengths", path, "--rate", "2", "--tpot-ms", "50",
                "--max-chips", "2", "--json"]

    assert not fuzz("lengths", st.tuples(lengths_file(), st.sampled_from(["predict", "predict", "optimize"])), to_argv)


# ---------------------------------------------------------------- the caches, damaged

CACHE_ARGV = ["optimize", "--model", "llama-3-8b", "--max-chips", "8", "--context", "4096"]


def _answer(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "solved by" not in ln]  # the wall time differs run to run


def _run_with_cache(folder: Path) -> subprocess.CompletedProcess:
    env = env_with_cache(folder)
    return subprocess.run([sys.executable, "-m", "costmodel", *CACHE_ARGV], capture_output=True, text=True, env=env,
                          cwd=folder)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache directory filled by one run (its answer is what every damaged run must print)."""
    folder = tmp_path_factory.mktemp("cache")
    done = _run_with_cache(folder)
    assert done.returncode == 0, done.stderr
    return folder, _answer(done.stdout)


@st.composite
def cache_damage(draw):
    """1-4 operations on the cache's files (drawn by index): truncate, overwrite with garbage, empty,
    replace by a directory, swap two entries, rotate the entries of one folder."""
    op = st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, 999), st.floats(0.0, 0.99)),
        st.tuples(st.just("garbage"), st.integers(0, 999), st.binary(min_size=0, max_size=64)),
        st.tuples(st.just("empty"), st.integers(0, 999)),
        st.tuples(st.just("directory"), st.integers(0, 999)),
        st.tuples(st.just("swap"), st.integers(0, 999), st.integers(0, 999)),
        st.tuples(st.just("rotate"), st.sampled_from(["xla", "export", "sympy"]), st.integers(1, 5)),
    )
    return draw(st.lists(op, min_size=1, max_size=4))


def _damage(folder: Path, ops) -> None:
    for op in ops:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            return
        kind, pick = op[0], files[op[1] % len(files)] if isinstance(op[1], int) else None
        if kind == "truncate":
            data = pick.read_bytes()
            pick.write_bytes(data[: int(len(data) * op[2])])
        elif kind == "garbage":
            pick.write_bytes(op[2])
        elif kind == "empty":
            pick.write_bytes(b"")
        elif kind == "directory":
            pick.unlink()
            pick.mkdir()
        elif kind == "swap":
            other = files[op[2] % len(files)]
            a, b = pick.read_bytes(), other.read_bytes()
            pick.write_bytes(b)
            other.write_bytes(a)
        elif kind == "rotate":
            group = sorted(p for p in (folder / op[1]).glob("*") if p.is_file() and not p.name.endswith("atime"))
            blobs = [p.read_bytes() for p in group]
            k = op[2] % max(len(blobs), 1)
            for p, b in zip(group, blobs[k:] + blobs[:k]):
                p.write_bytes(b)


def test_damaged_or_rotated_cache_entries_give_the_same_answer(warm_cache, tmp_path):
    """Whatever happens to the cache's files (truncated, garbage, empty, a directory in a file's place,
    entries swapped or rotated among themselves), the next run answers as the first did: a broken entry
    is rebuilt, an entry of another key is never run."""
    template, want = warm_cache

    @settings(max_examples=CI_EXAMPLES["cache"], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cache_damage())
    def one(ops):
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        shutil.copytree(template, folder, dirs_exist_ok=True)
        _damage(folder, ops)
        done = _run_with_cache(folder)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (ops, done.stderr[-1500:])
        assert _answer(done.stdout) == want, ops

    one()
