"""Regressions of reported faults: lost files, degenerate answers, the flags people type, the Python API."""

from __future__ import annotations

import errno
import json
import math
import os
from fractions import Fraction
from pathlib import Path

import pytest

import costmodel as cm
from costmodel.files import write_text_atomic
from tests.cli_run import run_cli

def _one_record_file(tmp_path: Path) -> Path:
    """The packaged measurements cut to one record (GF-06)."""
    from importlib import resources

    d = json.loads((resources.files("costmodel.calibrate") / "data" / "measurements.json").read_text())
    d["records"] = [r for r in d["records"] if r["id"] == "GF-06"]
    assert len(d["records"]) == 1
    path = tmp_path / "one.json"
    path.write_text(json.dumps(d))
    return path


def test_calibrate_refuses_to_overwrite_its_measurements(tmp_path, capsys):
    m = _one_record_file(tmp_path)
    before = m.read_text()
    code, out, err = run_cli(capsys, "calibrate", str(m), "--out", str(m), "--iterations", "5")
    assert code == 2 and "measurements file itself" in err and err.count("\n") == 1
    assert m.read_text() == before


def test_one_record_fits_to_a_valid_profile(tmp_path, capsys):
    """One source has no leave-one-source-out error: null in the profile, never NaN (not JSON)."""
    m, out = _one_record_file(tmp_path), tmp_path / "p.json"
    code, _, err = run_cli(capsys, "calibrate", str(m), "--out", str(out), "--iterations", "20")
    assert code == 0, err
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    assert d["fit"]["leave_one_source_out"] == {"median_ape": None, "worst_ape": None}
    assert all(math.isfinite(p["value"]) for p in d["parameters"])
    code, _, err = run_cli(capsys, "predict", "--model", "llama-3-8b", "--efficiency", str(out))
    assert code == 0, err


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "profile.json"
    target.write_text("old")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(cm.CostModelError, match="profile.json"):
        write_text_atomic(target, "new" * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # no temporary file left behind


@pytest.mark.parametrize("argv", [
    ("--model", "llama-3-8b", "--isl", "128", "--osl", "2", "--rate", "1e-9"),
    ("--model", "deepseek-v3", "--hardware", "h200", "--tp", "8", "--isl", "128", "--osl", "3", "--rate", "1e-9",
     "--spec-draft", "mtp", "--spec-len", "1", "--spec-accept", "0.85"),
])
def test_a_vanishing_rate_prices_finite(argv, capsys):
    code, out, err = run_cli(capsys, "predict", *argv, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["usd_per_mtok_output"] > 0 and math.isfinite(d["usd_per_mtok_output"])
    assert d["requests_per_s"] == pytest.approx(1e-9, rel=1e-6)


def test_flags_are_never_abbreviated(capsys):
    code, out, err = run_cli(capsys, "optimize", "--tp", "8")
    assert code == 2 and "--tp" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "optimize", "--tpot", "30")
    assert code == 2 and "--tpot" in err


def test_python_api_errors_are_one_liners():
    assert cm.Requests(128, 128, Fraction(1, 3)).prefix_hit == pytest.approx(1 / 3)
    assert isinstance(cm.Requests(128, 128, Fraction(1, 3)).prefix_hit, float)
    with pytest.raises(cm.CostModelError, match="rules must be"):
        cm.serve("llama-3-8b", "h100-sxm", rules="x")
    with pytest.raises(cm.CostModelError, match="did you mean 'chunk_tokens'"):
        cm.serve("llama-3-8b", "h100-sxm", chunk=512)
    with pytest.raises(cm.CostModelError, match="did you mean 'parallel'"):
        cm.predict("llama-3-8b", "h100-sxm", paralel=cm.Parallel())
    with pytest.raises(cm.CostModelError, match="did you mean 'tpot_s'"):
        cm.optimize_serving("llama-3-8b", "h100-sxm", rate_per_s=1.0, tpot=0.05)


@pytest.mark.parametrize("load", [cm.Load.rate(50.0), cm.Load.static(4), cm.Load.concurrency(8), cm.Load.offline()])
def test_one_output_token_has_no_tpot_and_a_price(load):
    """TPOT is 0 in both modes for a request of one output token; its token costs the prefill's last
    position (docs/serving.md §19.7): a positive, finite price."""
    req = cm.Requests(2, 1)
    agg = cm.serve("llama-3-8b", "h100-sxm", req, load)
    dis = cm.serve("llama-3-8b", "h100-sxm", req, load,
                   disagg=cm.Disaggregated(cm.Pool(cm.Parallel()), cm.Pool(cm.Parallel())))
    for s in (agg, dis):
        d = s.to_dict()
        assert s.tpot_s == 0.0 and d["tokens_per_s_per_user"] is None
        assert 0 < d["usd_per_mtok_output"] < math.inf and 0 < d["usd_per_mtok_input"] < math.inf


def test_python_and_the_command_line_share_one_default_efficiency(capsys):
    """The same question costs the same in a script and in a shell: both default to the calibrated profile."""
    assert cm.DEFAULT_EFFICIENCY == "calibrated"
    code, out, _ = run_cli(capsys, "optimize", "--json")
    assert code == 0
    s = cm.optimize("llama-3-70b", "h100-sxm")
    assert s.usd_per_mtok == pytest.approx(json.loads(out)["usd_per_mtok"], rel=1e-9)
    ideal = cm.optimize("llama-3-70b", "h100-sxm", efficiency=cm.IDEAL)
    assert ideal.usd_per_mtok < s.usd_per_mtok  # the bound is asked for by name, and is lower
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-8b", "--isl", "1024", "--osl", "256", "--rate", "2",
                           "--json")
    served = cm.serve("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), cm.Load.rate(2.0))
    assert served.usd_per_mtok_output == pytest.approx(json.loads(out)["usd_per_mtok_output"], rel=1e-9)


def test_refitting_the_packaged_profile_needs_its_path_named(capsys):
    """``python -m costmodel.calibrate`` rewrote a tracked file by default; now ``--out`` is required."""
    from costmodel.calibrate.run import PACKAGED_PROFILE, main

    before = PACKAGED_PROFILE.read_bytes()
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    assert PACKAGED_PROFILE.read_bytes() == before


def test_serve_and_optimize_serving_share_their_default_requests():
    import inspect

    def default(f):
        return inspect.signature(f).parameters["requests"].default

    assert default(cm.serve) == default(cm.optimize_serving) == cm.Requests()


def test_the_smallest_deployment_says_how_much_headroom_it_has():
    import re

    s = cm.optimize_serving("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), rate_per_s=2.0, tpot_s=0.05,
                            max_chips=4, mode="agg")
    m = re.search(r"smallest deployment, and it meets the targets with headroom \(up to ([0-9.e+]+) req/s", s.message)
    assert s.feasible and s.binding is None and m and float(m.group(1)) > 2.0


def test_a_tie_in_cost_goes_to_the_lower_end_to_end_latency():
    """Equal cost: the mode with six times the TTFT no longer wins on a slightly lower TPOT."""
    from types import SimpleNamespace

    from costmodel.optimizer.serving.answer import tie_break

    problem = SimpleNamespace(requests=cm.Requests(1024, 256), objective="output")
    agg = SimpleNamespace(usd_per_mtok=1.0, ttft_s=0.10, tpot_s=0.020, joules_per_request=50.0)  # 0.10 + 255 x 0.020
    disagg = SimpleNamespace(usd_per_mtok=1.0, ttft_s=0.60, tpot_s=0.019, joules_per_request=40.0)  # = 5.20 s; 5.445 s
    assert min((disagg, agg), key=lambda a: tie_break(problem, a)) is agg
    cheaper = SimpleNamespace(usd_per_mtok=0.9, ttft_s=5.0, tpot_s=0.05, joules_per_request=60.0)
    assert min((agg, cheaper), key=lambda a: tie_break(problem, a)) is cheaper  # cost first
    # minimising energy: the joules first, then the cost, then the latency
    problem.objective = "energy"
    assert min((agg, disagg, cheaper), key=lambda a: tie_break(problem, a)) is disagg
    assert min((agg, SimpleNamespace(**{**vars(disagg), "joules_per_request": 50.0})),
               key=lambda a: tie_break(problem, a)) is agg
