"""`costmodel optimize` and `costmodel search` on the command line."""

import json
import subprocess
import sys

import pytest

from costmodel.cli import main

CONTRACT = {"feasible", "config", "usd_per_mtok", "step_time_s", "ttft_s", "tokens_per_s", "binding", "method",
            "wall_time_s"}


def test_default_problem_json(capsys):
    assert main(["optimize", "--json", "--verify"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert CONTRACT | {"exhaustive_usd_per_mtok", "gap"} <= set(d)
    assert set(d["config"]) == {"batch", "tp", "pp", "ep", "replicas", "chips", "weights", "kv"}
    assert d["feasible"] and d["step_time_s"] <= 0.05
    assert abs(d["gap"]) <= 1e-3


def test_table_output(capsys):
    assert main(["optimize", "--model", "llama-3-8b", "--context", "4096", "--tpot-ms", "10", "--max-chips", "8"]) == 0
    out = capsys.readouterr().out
    assert "answer:" in out and "$" in out and "binds" in out


def test_infeasible_exit_0(capsys):
    assert main(["optimize", "--tpot-ms", "1", "--max-chips", "8", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is False and "fastest possible is" in d["message"]


def test_verify_gap_is_null_unless_both_feasible(capsys):
    assert main(["optimize", "--tpot-ms", "1", "--max-chips", "8", "--verify", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is False and d["gap"] is None


def test_unwritable_output_is_one_line(tmp_path):
    target = tmp_path / "missing-dir" / "x.csv"
    proc = subprocess.run([sys.executable, "-m", "costmodel", "sweep", "--batch", "1,2", "--out", str(target)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_json_has_no_nan_or_infinity(capsys):
    assert main(["predict", "--batch", "1e8", "--context", "1e9", "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out)  # strict JSON: NaN/Infinity would not appear as null
    assert "NaN" not in out and "Infinity" not in out and d["fits"] is False


def test_search_is_exhaustive(capsys):
    assert main(["search", "--model", "llama-3-8b", "--context", "4096", "--tpot-ms", "10", "--max-chips", "8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "exhaustive"


@pytest.mark.parametrize("argv, message", [
    (["--tpot-ms", "0"], "--tpot-ms"),
    (["--max-chips", "-1"], "--max-chips"),
    (["--weights", "fp4"], "h100-sxm cannot compute in fp4"),
    (["--model", "gpt-5"], "unknown model 'gpt-5'"),
])
def test_bad_input_exit_2(argv, message):
    proc = subprocess.run([sys.executable, "-m", "costmodel", "optimize", *argv], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
