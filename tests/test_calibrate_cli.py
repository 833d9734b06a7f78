"""``costmodel calibrate``: refit from a user's measurements file; malformed files are one-line errors."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from costmodel.calibrate import load_records
from costmodel.calibrate.records import REQUIRED_FIELDS, load_cases
from cli_run import run_cli as _cli




def _user_file(tmp_path, records):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"records": records}))
    return str(path)


def _my_cluster():
    """Three single-stream decode runs of one's own cluster (here: gpt-fast's published A100 figures)."""
    rs = [dict(r, source="my cluster", generated_tokens=200)  # gpt-fast's default run length, stated
          for r in load_records() if r["id"] in ("GF-01", "GF2-01", "GF2-03")]
    rs[2]["source"] = "my other cluster"
    return rs


def test_refit_from_a_user_file_round_trips(tmp_path, capsys):
    """fit, save, load, predict: the written profile predicts what the fit predicted."""
    out = tmp_path / "profile.json"
    code, stdout, err = _cli(capsys, "calibrate", _user_file(tmp_path, _my_cluster()), "--out", str(out),
                             "--iterations", "300", "--name", "my-a100s")
    assert code == 0, err
    assert f"wrote {out}" in stdout and "leave-one-source-out median APE" in stdout
    prof = json.loads(out.read_text())
    assert prof["name"] == "my-a100s" and prof["fit"]["records"] == ["GF-01", "GF2-01", "GF2-03"]
    for p in prof["parameters"]:
        assert p["lower"] <= p["value"] <= p["upper"]
    # load the profile and predict the first record: the same number as the fit's in-sample prediction
    from costmodel.calibrate.evaluate import CaseSet
    from costmodel.calibrate.fit import Param, values_for

    loaded = cm.load_profile(str(out))
    params = tuple(Param(p["field"], p["family"], p["phase"], p["lower"], p["upper"], p["typical"], p["meaning"])
                   for p in loaded.parameters)
    cs = CaseSet(load_cases(_user_file(tmp_path, _my_cluster())))
    fitted = cs.predict(values_for(cs, params, [p["value"] for p in loaded.parameters]))
    c = cs.cases[0]
    w = dict(context=c.context, prompt=c.prompt)
    pre = cm.predict(c.model, c.hardware, cm.Workload(batch=1, phase="prefill", **w), parallel=c.parallel,
                     precision=c.precision, efficiency=str(out))
    dec = cm.predict(c.model, c.hardware, cm.Workload(batch=1, **w), parallel=c.parallel,
                     precision=c.precision, efficiency=str(out))
    assert c.output / (pre.step_time_s + c.output * dec.step_time_s) == pytest.approx(float(fitted[0]), rel=1e-6)
    assert abs(float(fitted[0]) / c.measured - 1) < 0.1  # the refit explains the user's own measurement
    # and the command line takes it
    code, stdout, _ = _cli(capsys, "predict", "--model", "llama-2-7b", "--hardware", "a100-80gb", "--batch", "1",
                           "--efficiency", str(out), "--json")
    assert code == 0 and json.loads(stdout)["efficiency"] == "my-a100s"


@pytest.mark.parametrize("change, match", [
    (lambda r: r.pop("metric"), r"measurement record 1 \(GF2-01\): missing field 'metric'"),
    (lambda r: r.pop("value"), r"measurement record 1 \(GF2-01\): missing field 'value'"),
    (lambda r: r.update(model="llama-9-1t"), r"measurement record 1 \(GF2-01\): unknown model 'llama-9-1t'"),
    (lambda r: r.update(hardware="h900"), r"measurement record 1 \(GF2-01\): unknown hardware 'h900'"),
    (lambda r: r.update(value=-3), r"measurement record 1 \(GF2-01\): value must be a positive finite number"),
    (lambda r: r.update(metric="joules"), r"measurement record 1 \(GF2-01\): metric 'joules' is not one"),
    (lambda r: r.update(weights_dtype="int3"), r"record 1 \(GF2-01\): weights_dtype 'int3' is not a precision"),
    (lambda r: r.update(batch=None), r"measurement record GF2-01: batch is null, and metric"),
    (lambda r: r.update(tp=3), r"measurement record GF2-01: tp=3 must divide 32 heads"),
])
def test_a_malformed_record_is_one_line_naming_it(tmp_path, capsys, change, match):
    records = _my_cluster()
    change(records[1])
    code, out, err = _cli(capsys, "calibrate", _user_file(tmp_path, records), "--out", str(tmp_path / "p.json"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    import re
    assert re.search(match, err), err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("content, match", [
    ("{", "is not valid JSON"),
    ('{"records": []}', "must hold"),
    ("[1, 2]", "must hold"),
    ('{"records": [3]}', "measurement record 0 must be a JSON object"),
])
def test_a_malformed_file_is_one_line(tmp_path, capsys, content, match):
    path = tmp_path / "m.json"
    path.write_text(content)
    code, _, err = _cli(capsys, "calibrate", str(path))
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_missing_file_and_bad_iterations(tmp_path, capsys):
    code, _, err = _cli(capsys, "calibrate", str(tmp_path / "none.json"))
    assert code == 2 and "cannot read measurements file" in err
    code, _, err = _cli(capsys, "calibrate", _user_file(tmp_path, _my_cluster()), "--iterations", "0")
    assert code == 2 and "--iterations must be a whole number from 1 to 100000, got 0" in err


def test_required_fields_are_the_packaged_schema():
    for r in load_records():
        assert set(REQUIRED_FIELDS) <= set(r)
