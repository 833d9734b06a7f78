"""One command across chips: the same problem on each chip, ranked by cost (``--hardware a,b,c``)."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from tests.cli_run import run_cli

DECODE = ("optimize", "--model", "llama-3-8b", "--context", "4096", "--tpot-ms", "20", "--max-chips", "8",
          "--efficiency", "calibrated")
SERVING = ("optimize", "--model", "llama-3-8b", "--isl", "1024", "--osl", "256", "--rate", "4", "--ttft-ms", "500",
           "--tpot-ms", "30", "--max-chips", "8", "--mode", "agg", "--efficiency", "calibrated")


def _json(capsys, *argv) -> dict:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("argv,cost", [(DECODE, "usd_per_mtok"), (SERVING, "usd_per_mtok_output")])
def test_each_chip_answers_as_alone_and_the_cheapest_leads(capsys, argv, cost):
    chips = ["h200", "h100-sxm", "b200"]
    rows = _json(capsys, *argv, "--hardware", ",".join(chips))["by_hardware"]
    assert sorted(r["hardware"] for r in rows) == sorted(chips)
    feasible = [r[cost] for r in rows if r["feasible"]]
    assert feasible == sorted(feasible) and rows[0]["feasible"]
    for r in rows:
        alone = _json(capsys, *argv, "--hardware", r["hardware"])
        assert alone[cost] == pytest.approx(r[cost], rel=1e-12) and alone["feasible"] == r["feasible"]


def test_python_ranks_as_the_command_line(capsys):
    ranked = cm.compare_hardware(cm.optimize, "llama-3-8b", ["h200", "h100-sxm", "b200", "h200"], context=4096,
                                 tpot_s=0.02, max_chips=8, efficiency="calibrated")
    rows = _json(capsys, *DECODE, "--hardware", "h200,h100-sxm,b200")["by_hardware"]
    assert [chip for chip, _ in ranked] == [r["hardware"] for r in rows]  # each chip once, same order
    assert [s.usd_per_mtok for _, s in ranked] == pytest.approx([r["usd_per_mtok"] for r in rows], rel=1e-12)


def test_bad_chip_lists_are_one_line_errors(capsys):
    code, _, err = run_cli(capsys, "optimize", "--hardware", "h100-sxm,h2000")
    assert code == 2 and "h2000" in err and err.count("\n") == 1
    with pytest.raises(cm.CostModelError, match="no chip"):
        cm.compare_hardware(cm.optimize, "llama-3-8b", " , ")
