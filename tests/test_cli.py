"""The CLI: the JSON contract, readable tables, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from costmodel.cli import main

JSON_KEYS = {"chips", "step_time_s", "tokens_per_s", "tokens_per_s_per_user", "usd_per_mtok",
             "memory_bytes_per_chip", "fits", "bound", "breakdown_s"}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_json_contract(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-8b", "--hardware", "h100-sxm",
                           "--batch", "64", "--context", "4096", "--json")
    d = json.loads(out)
    assert code == 0
    assert JSON_KEYS <= set(d)
    assert set(d["breakdown_s"]) == {"compute", "weights", "kv", "communication", "overhead"}
    assert d["bound"] in ("compute", "memory", "communication")
    assert d["chips"] == 1 and d["fits"] is True
    # tokens/s = batch / step time; $/Mtok = chips · price · step / (3600 · batch) · 1e6
    assert d["tokens_per_s"] == pytest.approx(64 / d["step_time_s"], rel=1e-6)
    assert d["usd_per_mtok"] == pytest.approx(1e6 * d["usd_per_chip_hour"] * d["step_time_s"] / (3600 * 64), rel=1e-6)


def test_predict_table(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "mixtral-8x7b", "--tp", "2", "--batch", "8")
    assert code == 0
    assert "step time" in out and "memory-bound" in out and "$" in out


def test_prefill_phase(capsys):
    code, out, _ = run_cli(capsys, "predict", "--phase", "prefill", "--prompt", "8192", "--batch", "4", "--json")
    d = json.loads(out)
    assert code == 0 and d["phase"] == "prefill" and d["bound"] == "compute"


def test_not_fitting_is_reported(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-70b", "--batch", "4", "--json")
    d = json.loads(out)
    assert code == 0 and d["fits"] is False
    assert d["memory_bytes_per_chip"] > d["usable_bytes_per_chip"]
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-70b", "--batch", "4")
    assert "DOES NOT FIT" in out and "needs" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "llama-3-8bb"], "did you mean 'llama-3-8b'"),
    (["--hardware", "h1000"], "Valid hardware names"),
    (["--batch", "0"], "--batch: must be a number in [1, 1e+08] sequences, got 0"),
    (["--batch", "-3"], "--batch"),
    (["--context", "0"], "--context"),
    (["--tp", "0"], "--tp: must be a whole number in [1, 1048576] chips, got 0"),
    (["--tp", "3"], "tp=3 must divide 32 heads of llama-3-8b; valid: 1, 2, 4, 8, 16, 32"),
    (["--ep", "2"], "ep=2 must be 1 for a dense model"),
    (["--weights", "fp4"], "h100-sxm has no fp4 math"),
    (["--hardware", "a100-80gb", "--weights", "fp8"], "a100-80gb has no fp8 math"),
    (["--weights", "fp7"], "unknown weights precision 'fp7'"),
    (["--model", "missing/config.json"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message):
    proc = subprocess.run([sys.executable, "-m", "costmodel", "predict", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_malformed_config_json_exit_2(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{oops")
    proc = subprocess.run([sys.executable, "-m", "costmodel", "predict", "--model", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_model_from_config_path(tmp_path, capsys):
    from test_specs import LLAMA3_8B_CONFIG

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA3_8B_CONFIG))
    _, out_path, _ = run_cli(capsys, "predict", "--model", str(path), "--batch", "16", "--json")
    _, out_name, _ = run_cli(capsys, "predict", "--model", "llama-3-8b", "--batch", "16", "--json")
    assert json.loads(out_path)["step_time_s"] == json.loads(out_name)["step_time_s"]


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list", "hardware")
    assert code == 0 and "h100-sxm" in out and "tpu-v5e" in out
