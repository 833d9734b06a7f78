"""Serving figures: the curves are cm.serve's numbers, TTFT and TPOT rise with load, throughput per chip
stays under the offline bound and falls as interactivity rises; the CLI writes both kinds."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.errors import ConfigError  # noqa: E402
from costmodel.plot import SERVING_KINDS, Setup  # noqa: E402
from costmodel.plot.serving import load_sweep, serving_curve, throughput_interactivity  # noqa: E402

SETUP = Setup("llama-3-70b", "h100-sxm", tp=8)
CONC = (1, 8, 64, 256, 1024)


@pytest.fixture(scope="module")
def curves():
    return {m: serving_curve(SETUP, m, 1024, 1024, "concurrency", CONC) for m in ("aggregated", "disaggregated")}


def test_registered_as_figure_kinds():
    assert SERVING_KINDS["serving-load"] is load_sweep and SERVING_KINDS["serving-throughput"] is throughput_interactivity


def test_curve_is_serve(curves):
    s = cm.serve("llama-3-70b", "h100-sxm", cm.Requests(1024, 1024), cm.Load.concurrency(64),
                 parallel=cm.Parallel(tp=8, replicas=2))
    c = curves["aggregated"]
    i = CONC.index(64)
    assert (c.ttft_s[i], c.tpot_s[i], c.per_chip[i]) == (s.ttft_s, s.tpot_s, s.output_tokens_per_s_per_chip)
    assert c.chips == curves["disaggregated"].chips == 16  # the same chips for both deployments


def test_latency_rises_with_concurrency(curves):
    for c in curves.values():
        assert np.all(np.diff(c.tpot_s) > 0)
        assert np.all(np.diff(c.ttft_s) >= -1e-12)


def test_ttft_rises_with_rate():
    top = cm.serve("llama-3-70b", "h100-sxm", cm.Requests(1024, 1024), cm.Load.offline(),
                   parallel=cm.Parallel(tp=8, replicas=2)).requests_per_s
    rates = top * np.array([0.05, 0.3, 0.6, 0.9])
    c = serving_curve(SETUP, "aggregated", 1024, 1024, "rate", rates)
    assert np.all(np.isfinite(c.ttft_s)) and np.all(np.diff(c.ttft_s) > 0)
    past = serving_curve(SETUP, "aggregated", 1024, 1024, "rate", [top * 1.5])
    assert np.isnan(past.ttft_s[0])  # saturated: left out of the figure, never drawn as a number


def test_throughput_under_offline_bound_and_falls_with_interactivity(curves):
    for mode, kw in (("aggregated", {"parallel": cm.Parallel(tp=8, replicas=2)}),
                     ("disaggregated", {"disagg": cm.Disaggregated(cm.Pool(cm.Parallel(tp=8)),
                                                                   cm.Pool(cm.Parallel(tp=8)))})):
        bound = cm.serve("llama-3-70b", "h100-sxm", cm.Requests(1024, 1024), cm.Load.offline(),
                         **kw).output_tokens_per_s_per_chip
        c = curves[mode]
        assert np.all(c.per_chip <= bound * (1 + 1e-9))
        order = np.argsort(c.per_user)
        assert np.all(np.diff(c.per_chip[order]) <= 0)  # more tokens/s per user, fewer per chip


def test_figures_are_labelled():
    for fig in (load_sweep(SETUP, points=[1, 16, 256]), throughput_interactivity(SETUP, points=[1, 16, 256])):
        axes = [ax for ax in fig.axes if ax.has_data()]
        assert axes and axes[0].get_title()
        for ax in axes:
            assert "(ms)" in ax.get_ylabel() or "tokens/s per chip" in ax.get_ylabel()
            texts = [t.get_text() for t in ax.get_legend().get_texts()]
            assert any("aggregated" in t for t in texts) and any("disaggregated" in t for t in texts)
        assert "(" in axes[-1].get_xlabel()


def test_bad_load_axis():
    with pytest.raises(ConfigError, match="load must be one of concurrency, rate"):
        serving_curve(SETUP, "aggregated", 1024, 1024, "offline", [1])


@pytest.mark.parametrize("args", [["serving-load", "--load", "rate"], ["serving-throughput", "--isl", "512"]])
def test_cli_writes_serving_figures(tmp_path, args):
    out = tmp_path / "fig.png"
    assert main(["plot", *args, "--model", "llama-3-8b", "--hardware", "h100-sxm", "--tp", "1",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
