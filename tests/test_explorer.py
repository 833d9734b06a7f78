"""The explorer page in a real browser (headless Chromium through Playwright): it loads from file:// with no
console error and no network request, ``window.costmodel.evaluate`` equals ``cm.predict`` on random
configurations of every catalog model and chip under both profiles, its static batch equals ``cm.serve``,
and moving a control moves the readouts and the figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import costmodel as cm
from costmodel.explorer import write_explorer
from costmodel.explorer.page import chromium_path
from costmodel.explorer.data import CONTRACT, EP, PP, TP
from costmodel.parallel import check_parallel, mesh_of

ROOT = Path(__file__).resolve().parents[1]
HOW = ("the explorer's browser test needs Chromium and Playwright's Python package: apt-get install chromium "
       "(Debian) and pip install -e '.[test]'; or set COSTMODEL_CHROMIUM to a Chromium binary. .ci/run installs both")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason=HOW)
    exe = chromium_path()
    if exe is None:
        pytest.skip(HOW)
    out = tmp_path_factory.mktemp("explorer")
    write_explorer(out)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.problems, pg.requests = [], []
        pg.on("console", lambda m: pg.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
        pg.on("request", lambda r: pg.requests.append(r.url))
        pg.goto((out / "index.html").as_uri())
        pg.wait_for_load_state("load")
        pg.folder = out
        yield pg
        browser.close()


def js(pg, expression: str, arg=None):
    return pg.evaluate(expression, arg)


def test_the_page_loads_from_disk_with_no_error_and_no_network(page):
    assert page.problems == []
    folder = page.folder.as_uri() + "/"
    assert page.requests and all(u.startswith(folder) for u in page.requests), page.requests
    names = {u[len(folder):] for u in page.requests}
    assert names == {"index.html", "style.css", "costmodel-data.js", "model.js", "chart.js", "app.js"}
    size = sum(p.stat().st_size for p in page.folder.iterdir())
    assert size < 3e6  # a few MB at most


EVALUATE_ALL = """configs => configs.map(c => {
  try { return window.costmodel.evaluate(c); } catch (e) { return {error: e.name + ': ' + e.message}; }
})"""


def _random_configs(rng):
    """One configuration per (model, chip) pair, the profile alternating: every model and chip under both."""
    models, chips = cm.list_models(), cm.list_hardware()
    weights = [None, None, "bf16", "fp8", "int8", "int4", "fp4", "nvfp4", "mxfp4", "fp16"]
    kvs = [None, "bf16", "fp8", "fp16", "int8"]
    configs = []
    for i, (m, h) in enumerate((m, h) for m in models for h in chips):
        split = [int(rng.choice(TP[:5])), int(rng.choice(PP[:3])), int(rng.choice(EP[:5]))]
        c = {"model": m, "hardware": h, "tp": split[0], "pp": split[1], "ep": split[2],
             "batch": float(np.round(np.exp(rng.uniform(0, np.log(4096))), 3)),
             "context": float(np.round(np.exp(rng.uniform(np.log(128), np.log(1e6))))),
             "efficiency": ("ideal", "calibrated")[i % 2]}
        w, kv = weights[rng.integers(len(weights))], kvs[rng.integers(len(kvs))]
        if w is not None:
            c["weights"] = w
        if kv is not None:
            c["kv"] = kv
        if rng.random() < 0.3:
            c["prompt"] = float(rng.integers(1, 32768))
        configs.append(c)
    return configs


def _predict(c: dict):
    wl = cm.Workload(batch=c["batch"], context=c["context"], prompt=c.get("prompt"))
    return cm.predict(c["model"], c["hardware"], wl, parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"]),
                      precision=cm.Precision(weights=c.get("weights"), kv=c.get("kv")), efficiency=c["efficiency"])


def test_evaluate_equals_predict_on_random_configurations_of_every_model_and_chip(page):
    """Each (model, chip) pair once (380 configurations), random split, batch, context, prompt and formats,
    the ideal and calibrated profiles alternating: the page's numbers equal cm.predict's to 1e-9, and a
    configuration cm.predict refuses (a split the model does not allow, a format the chip has no math
    for), the page refuses too. A split the model does not allow is redrawn so that most configurations
    are priced."""
    rng = np.random.default_rng(7)
    configs = _random_configs(rng)
    expected = []
    for c in configs:
        for _ in range(20):  # redraw the split until the model allows it on the chip
            try:
                check_parallel(cm.load_model(c["model"]), cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"]), "1d-ws",
                               mesh_of(cm.Parallel(tp=c["tp"]), cm.load_hardware(c["hardware"])))
                break
            except cm.CostModelError:
                c.update(tp=int(rng.choice(TP[:5])), pp=int(rng.choice(PP[:3])), ep=int(rng.choice(EP[:5])))
        try:
            expected.append(_predict(c).to_dict())
        except cm.CostModelError as e:
            expected.append(e)
    got = js(page, EVALUATE_ALL, configs)
    priced = {"ideal": set(), "calibrated": set()}
    for c, want, have in zip(configs, expected, got):
        if isinstance(want, Exception):
            assert "error" in have and "ConfigError" in have["error"], (c, want, have)
            continue
        assert "error" not in have, (c, have)
        for k in CONTRACT:
            if k in ("fits", "bound") or want[k] is None:  # None: a chip without a published board power
                assert have[k] == want[k], (c, k, have[k], want[k])
            else:
                assert math.isclose(have[k], want[k], rel_tol=1e-9, abs_tol=0.0), (c, k, have[k], want[k])
        priced[c["efficiency"]].add((c["model"], c["hardware"]))
    n = sum(len(v) for v in priced.values())
    assert n >= 200, n
    for prof in priced:
        assert {m for m, _ in priced[prof]} == set(cm.list_models()), prof
        assert {h for _, h in priced[prof]} == set(cm.list_hardware()), prof


def test_keys_left_out_take_the_command_lines_defaults(page):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "costmodel", "predict", "--json"], capture_output=True, text=True,
                          env=env, check=True)
    want = json.loads(done.stdout)
    for config in ({}, {"model": want["model"]}, {"tp": 1, "kv": None}):
        have = js(page, "c => window.costmodel.evaluate(c)", config)
        for k in CONTRACT:
            assert have[k] == want[k] if k in ("fits", "bound") or want[k] is None else \
                math.isclose(have[k], want[k], rel_tol=1e-9), k


def test_a_bad_configuration_is_a_clear_error(page):
    for config, words in (({"model": "llama-9"}, "unknown model"), ({"tp": 3}, "tp must be one of"),
                          ({"batch": -1}, "batch must be a number"), ({"weights": "fp7"}, "unknown weight precision"),
                          ({"hardware": "tpu-v5e", "weights": "fp8"}, "has no fp8 math"),
                          ({"model": "llama-3-70b", "ep": 2}, "does not split"), ({"colour": 1}, "unknown key")):
        err = js(page, "c => { try { window.costmodel.evaluate(c); return null; } catch (e) { return e.name + ': ' + e.message; } }",
                 config)
        assert err and err.startswith("ConfigError") and words in err, (config, err)


@pytest.mark.parametrize("model, hardware, tp, batch, isl, osl", [
    ("llama-3-70b", "h100-sxm", 8, 16, 1024, 256), ("deepseek-v3", "h200", 8, 32, 2048, 128),
    ("qwen3-32b", "mi300x", 2, 4, 512, 1),
])
def test_static_batch_equals_serve(page, model, hardware, tp, batch, isl, osl):
    s = cm.serve(model, hardware, cm.Requests(isl, osl), cm.Load.static(batch), parallel=cm.Parallel(tp=tp))
    have = js(page, "([c, o]) => window.costmodel.staticBatch(c, o)",
              [{"model": model, "hardware": hardware, "tp": tp, "batch": batch, "context": isl, "prompt": isl}, osl])
    assert math.isclose(have["ttft_s"], s.ttft_s, rel_tol=1e-9)
    assert math.isclose(have["e2e_latency_s"], s.e2e_latency_s, rel_tol=1e-9)
    if osl > 1:
        assert math.isclose(have["tpot_s"], s.tpot_s, rel_tol=1e-9)


def test_moving_a_control_changes_the_readouts_and_the_figures(page):
    def state():
        return (page.inner_text("#readouts table"),
                {f: page.locator(f"#{f}").screenshot() for f in ("fig-frontier", "fig-breakdown", "fig-memory")})

    text0, shots0 = state()
    page.fill("#batch-value", "256")
    page.dispatch_event("#batch-value", "change")
    text1, shots1 = state()
    assert text1 != text0
    assert shots1["fig-frontier"] != shots0["fig-frontier"]  # the dot moves along its chip's curve
    assert shots1["fig-breakdown"] != shots0["fig-breakdown"]
    page.select_option("#hardware", "b200")
    text2, shots2 = state()
    assert text2 != text1 and all(shots2[f] != shots1[f] for f in ("fig-breakdown", "fig-memory"))
    page.select_option("#efficiency", "ideal")
    text3, _ = state()
    assert text3 != text2
    want = cm.predict("llama-3-8b", "b200", cm.Workload(batch=256, context=2048), efficiency="ideal").usd_per_mtok
    assert math.isclose(float(page.inner_text("#out-cost").lstrip("$")), want, rel_tol=1e-3)
    assert page.problems == []
