"""Figures: each returns a Figure with labelled axes (units), a legend and a title, and saves to a
non-trivial PNG; the CLI writes PNG and SVG and rejects other formats with a one-line error."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402

import costmodel as cm  # noqa: E402
import pytest  # noqa: E402

from costmodel import derive  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.plot import KINDS, Setup  # noqa: E402
from costmodel.plot._data import batch_grid, regions, sweep  # noqa: E402

SETUP = Setup("llama-3-70b", "h100-sxm", context=8192, tp=8, efficiency=cm.IDEAL)
UNITS = ("(", "USD", "FLOP")


@pytest.fixture(scope="module")
def figures():
    kw = {"pareto": {"price_tiers": {"standard": 0.8, "fast": 4.8}}}
    return {k: f(SETUP, **kw.get(k, {})) for k, f in KINDS.items()}


@pytest.mark.parametrize("kind", list(KINDS))
def test_figure_is_labelled(figures, kind):
    fig = figures[kind]
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert axes
    assert any(ax.get_title() for ax in fig.axes)
    for ax in axes:
        assert ax.get_ylabel()
        if kind != "sensitivity":  # there the y axis lists the hardware numbers (categories)
            assert any(u in ax.get_ylabel() for u in UNITS), ax.get_ylabel()
        assert ax.get_legend() is not None and ax.get_legend().get_texts()
    bottom = axes[-1]
    assert bottom.get_xlabel() and any(u in bottom.get_xlabel() for u in UNITS), bottom.get_xlabel()


@pytest.mark.parametrize("kind", list(KINDS))
def test_png_is_non_trivial(figures, kind, tmp_path):
    path = tmp_path / f"{kind}.png"
    figures[kind].savefig(path, dpi=60)
    assert path.stat().st_size > 10_000
    img = mpimg.imread(path)[..., :3]
    assert img.std() > 0.05                                     # not a blank canvas
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50      # lines, text and fills


def test_regions_match_derived_capacity():
    b = batch_grid()
    spans = regions(b, sweep(SETUP, b))
    cap = derive.max_batch("llama-3-70b").value("llama-3-70b", "h100-sxm", tp=8, context=8192)
    start = [lo for label, lo, _ in spans if label == "does not fit"][0]
    step = b[1] / b[0]
    assert cap < start <= cap * step * step
    # beyond the context wall nothing is compute-bound (docs/theory.md §7.3: 8,192 > 1,476)
    assert "compute-bound" not in {label for label, _, _ in spans}


def test_pareto_frontier_is_lower_envelope(figures):
    ax = figures["pareto"].axes[0]
    line = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto frontier"][0]
    cost = line.get_ydata()
    assert np.all(np.diff(cost) <= 0)  # cost never rises as latency is relaxed
    assert len([t for t in ax.get_legend().get_texts() if "price tier" in t.get_text()]) == 2


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_cli_writes_figure(tmp_path, capsys, suffix, magic):
    out = tmp_path / f"fig{suffix}"
    assert main(["plot", "breakdown", "--model", "llama-3-70b", "--hardware", "h100-sxm", "--out", str(out)]) == 0
    assert out.read_bytes()[:5].startswith(magic)


def test_cli_bad_output_is_one_line(tmp_path, capsys):
    assert main(["plot", "batch", "--out", str(tmp_path / "fig.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".png or .svg" in err


def test_chip_frontiers_draw_one_lower_envelope_per_chip(tmp_path, capsys):
    """``plot chips`` compares chips: one curve each, cost against tokens/s per user; each curve is that chip's
    lower envelope of cm.predict over the batch grid and 1-8 chips (no point of the sweep is both faster and
    cheaper than the curve), and the cheapest point of the curve is the sweep's cheapest configuration."""
    from costmodel.plot import chip_frontiers
    from costmodel.symbolic import fits_in_memory

    chips = ("h100-sxm", "h200", "mi300x")
    fig = chip_frontiers([Setup("llama-3-70b", h, context=8192, efficiency=cm.IDEAL) for h in chips])
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(chips)
    assert "tokens/s per user" in ax.get_xlabel() and "USD" in ax.get_ylabel()
    for line, h in zip(ax.get_lines(), chips):
        speed, cost = (np.asarray(v, float) for v in line.get_data())
        order = np.argsort(speed)
        assert np.all(np.diff(cost[order]) >= 0)  # faster never cheaper along a frontier
        pts = []
        for n in (1, 2, 4, 8):
            try:
                out = sweep(Setup("llama-3-70b", h, context=8192, efficiency=cm.IDEAL), batch_grid(), tp=n)
            except cm.CostModelError:
                continue
            ok = fits_in_memory(out)
            pts.append(np.stack([out["tokens_per_s_per_user"][ok], out["usd_per_mtok"][ok]], 1))
        pts = np.concatenate(pts)
        assert cost.min() == pytest.approx(pts[:, 1].min(), rel=1e-12)
        # no sweep point is strictly faster and cheaper than the curve at that speed
        at = np.interp(pts[:, 0], speed[order], cost[order], left=cost.min(), right=np.inf)
        assert np.all(pts[:, 1] >= at * (1 - 1e-9))
    assert main(["plot", "chips", "--hardware", "h100-sxm,b200", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["plot", "pareto", "--hardware", "h100-sxm,b200", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "plot chips" in err and len(err.strip().splitlines()) == 1
