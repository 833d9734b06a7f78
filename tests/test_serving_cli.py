"""``costmodel predict --isl ...``: the request-level JSON contract and one-line errors with exit status 2."""

import json

import pytest

from cli_run import run_cli
from costmodel.serving.prediction import CONTRACT_KEYS




BASE = ("predict", "--model", "llama-3-8b", "--isl", "1024", "--osl", "128")


@pytest.mark.parametrize("load", [("--concurrency", "16"), ("--static-batch", "4"), ("--rate", "2"), ("--offline",)])
def test_json_contract(capsys, load):
    code, out, _ = run_cli(capsys, *BASE, *load, "--json")
    assert code == 0
    d = json.loads(out)
    assert list(d)[: len(CONTRACT_KEYS)] == list(CONTRACT_KEYS)
    assert d["mode"] == "aggregated" and d["tpot_s"] > 0 and d["usd_per_mtok_input"] > 0


def test_saturated_rate_is_null_not_infinity(capsys):
    code, out, _ = run_cli(capsys, *BASE, "--rate", "1e6", "--json")
    assert code == 0
    assert "Infinity" not in out and "NaN" not in out
    d = json.loads(out)
    assert d["ttft_s"] is None and d["saturated"] is True and d["max_rate_per_s"] > 0


def test_disaggregated_and_speculative_flags(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-70b", "--isl", "1024", "--osl", "256",
                           "--concurrency", "32", "--disagg", "--prefill-tp", "4", "--prefill-replicas", "2",
                           "--decode-tp", "8", "--spec-draft", "mtp", "--spec-len", "2", "--spec-accept-len", "2.2",
                           "--json")
    assert code == 0
    d = json.loads(out)
    assert d["mode"] == "disaggregated" and d["chips"] == 16


def test_efficiency_applies(capsys):
    _, ideal, _ = run_cli(capsys, *BASE, "--concurrency", "8", "--efficiency", "ideal", "--json")
    _, cal, _ = run_cli(capsys, *BASE, "--concurrency", "8", "--json")
    assert json.loads(cal)["tpot_s"] > json.loads(ideal)["tpot_s"]


def test_table(capsys):
    code, out, _ = run_cli(capsys, *BASE, "--rate", "1")
    assert code == 0 and "TTFT" in out and "utilisation" in out and "$" in out


@pytest.mark.parametrize("argv,message", [
    (("--disagg",), "--disagg needs the pool sizes"),
    (("--disagg", "--prefill-tp", "2"), "--decode-tp"),
    (("--prefill-tp", "2"), "need --disagg"),
    (("--rate", "2", "--concurrency", "3"), "not allowed with"),
    (("--offline", "--static-batch", "3"), "not allowed with"),
    (("--spec-draft", "mtp", "--spec-len", "3", "--spec-accept", "1"), "[0, 1)"),
    (("--spec-draft", "mtp", "--spec-len", "3", "--spec-accept", "-0.2"), "[0, 1)"),
    (("--spec-draft", "mtp", "--spec-len", "2", "--spec-accept-len", "3.5"), "accepted length"),
    (("--spec-draft", "mtp"), "--spec-len"),
    (("--spec-len", "2"), "--spec-draft"),
    (("--prefix-hit", "1"), "[0, 1)"),
    (("--osl", "0"), "--osl"),
    (("--isl", "-5"), "--isl"),
    (("--spec-draft", "no-such-model", "--spec-len", "2", "--spec-accept", "0.5"), "unknown model"),
])
def test_bad_combinations_are_one_line_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *BASE, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_serving_flags_need_isl(capsys):
    code, _, err = run_cli(capsys, "predict", "--concurrency", "4")
    assert code == 2 and "need --isl" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "predict", "--isl", "128")
    assert code == 2 and "--osl" in err


def test_percentiles_in_the_json_and_the_table(capsys):
    code, out, _ = run_cli(capsys, *BASE, "--rate", "2", "--isl-cv", "1", "--osl-cv", "0.5", "--json")
    assert code == 0
    d = json.loads(out)
    keys = [f"{m}_p{q}_s" for m in ("ttft", "tpot", "e2e") for q in (50, 90, 99)]
    assert all(d[k] > 0 for k in keys) and d["ttft_p50_s"] <= d["ttft_p90_s"] <= d["ttft_p99_s"]
    code, out, _ = run_cli(capsys, *BASE, "--rate", "2", "--isl-cv", "1")
    assert code == 0 and "lognormal, CV 1 in, 0 out" in out and "P99" in out


def test_lengths_file(capsys, tmp_path):
    p = tmp_path / "trace.csv"
    p.write_text("input_tokens,output_tokens\n100,20\n300,60\n")
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-8b", "--lengths", str(p), "--rate", "2")
    assert code == 0 and "200 in, 40 out on average (2 classes" in out
    code, _, err = run_cli(capsys, "predict", "--model", "llama-3-8b", "--lengths", str(p), "--isl", "5",
                           "--osl", "5", "--rate", "2")
    assert code == 2 and "leave out --isl" in err


@pytest.mark.parametrize("argv, match", [
    ((*BASE, "--isl-cv", "-1"), "must be a number in"),
    (("predict", "--model", "llama-3-8b", "--lengths", "/no/such/file.csv"), "cannot read"),
    (("predict", "--model", "llama-3-8b", "--isl-cv", "1"), "need --isl"),
])
def test_bad_length_flags_are_one_line(capsys, argv, match):
    code, _, err = run_cli(capsys, *argv, "--rate", "2")
    assert code == 2 and match in err and "Traceback" not in err


def test_optimize_with_percentile_targets(capsys):
    code, out, _ = run_cli(capsys, "optimize", "--model", "llama-3-8b", "--isl", "1024", "--osl", "256", "--rate", "20",
                           "--ttft-ms", "200", "--tpot-ms", "30", "--ttft-percentile", "99", "--max-chips", "8",
                           "--json")
    assert code == 0
    d = json.loads(out)
    assert d["feasible"] and d["serving"]["ttft_p99_s"] <= 0.2
    code, _, err = run_cli(capsys, "optimize", "--model", "llama-3-8b", "--isl", "1024", "--osl", "256", "--rate",
                           "20", "--ttft-ms", "200", "--ttft-percentile", "95")
    assert code == 2 and "invalid choice" in err


def test_pools_on_two_chips_from_the_command_line(capsys):
    argv = ("predict", "--model", "llama-3-70b", "--isl", "4096", "--osl", "512", "--rate", "2", "--disagg",
            "--prefill-tp", "8", "--decode-tp", "8", "--prefill-hardware", "b200", "--decode-hardware", "h200")
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "llama-3-70b on b200 (prefill) + h200 (decode), disaggregated, 16 chips" in out
    code, out, _ = run_cli(capsys, *argv, "--json")
    d = json.loads(out)
    assert (d["prefill_hardware"], d["decode_hardware"]) == ("b200", "h200")
    code, out, err = run_cli(capsys, *argv[:-4], "--prefill-hardware", "b201")
    assert code == 2 and "unknown hardware 'b201'" in err and len(err.strip().splitlines()) == 1
