"""Energy per token of a 70B model against batch on four chips, and against published measurements.

    python experiments/energy.py              # the table and docs/figures/energy.png
    python experiments/energy.py --compare    # cm.serve against the ML.ENERGY Leaderboard (docs/theory.md §21)
    python experiments/energy.py --fit        # the memory power share fitted on one of its series

The first prints joules per output token of Llama 3.1 70B decoding at a fixed batch on four chips
each (tensor parallel 4, bf16, 2,048 tokens of context) for H100, H200, B200 and MI300X, and draws
them against the batch: the boards' energy only, so that chips with and without a published host
figure compare alike (``cm.predict`` adds the host's share where the catalog has one).

The second serves each point of the ML.ENERGY Leaderboard v3.0's Llama 3.1 runs
(``experiments/data/ml_energy_llama31_chat.json``) in ``cm.serve`` as it was measured (the boards
only, vLLM's scheduler capped at ``max_num_seqs`` requests in flight, every joule over the output
tokens) and prints the errors; the third fits ``MEMORY_POWER_SHARE`` (costmodel/specs/hardware.py) on
the 70B on four H100s, the other series held out.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import costmodel as cm

MODEL = "llama-3.1-70b"
CHIPS = ("h100-sxm", "h200", "b200", "mi300x")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTEXT = 2048
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "energy.png"

DATA = Path(__file__).resolve().parent / "data" / "ml_energy_llama31_chat.json"
#: the series the memory power share is fitted on; the others are held out
FIT = ("llama-3.1-70b", "H100", 4)
CHIP_OF = {"H100": "h100-sxm", "B200": "b200"}
#: prompt tokens per request: the leaderboard publishes output lengths only; LM Arena chat prompts are
#: a few hundred tokens (an assumption, stated in docs/theory.md §21)
ISL = 600


def measured() -> list[dict]:
    """The leaderboard's series: ``model``, ``gpu``, ``num_gpus`` and their ``points``."""
    return json.loads(DATA.read_text())["series"]


def served(series: dict, point: dict, share: float | None = None):
    """``cm.serve`` of one leaderboard point: its chips (boards only: no host, as NVML measures), tensor
    parallel over its GPUs, vLLM's scheduler capped at its ``max_num_seqs`` requests in flight."""
    from costmodel.engines import engine

    hw = cm.load_hardware(CHIP_OF[series["gpu"]]).replace(host_power_w=0.0)
    if share is not None:
        hw = hw.replace(memory_power_share=share)
    n = point["max_num_seqs"]
    return cm.serve(series["model"], hw, cm.Requests(ISL, round(point["avg_output_len"])), cm.Load.concurrency(n),
                    parallel=cm.Parallel(tp=series["num_gpus"]), scheduler=engine("vllm").scheduler(hw).with_overrides(max_seqs=n))


def errors(series: dict, share: float | None = None) -> list[tuple[int, float, float, float]]:
    """Per point: ``(max_num_seqs, power error, J/token error, throughput error)``, predicted over measured - 1;
    every joule over the output tokens, as the leaderboard counts them."""
    rows = []
    for pt in series["points"]:
        s = served(series, pt, share)
        watts = series["num_gpus"] * s.power_w_per_chip
        rows.append((pt["max_num_seqs"], watts / pt["avg_power_watts"] - 1,
                     watts / s.output_tokens_per_s / pt["energy_per_token_joules"] - 1,
                     s.output_tokens_per_s / pt["output_throughput_tokens_per_sec"] - 1))
    return rows


def fit() -> float:
    """The memory power share that minimises the squared log error of the board power on the :data:`FIT`
    series (scipy's bounded Brent search over [0, 1])."""
    from scipy.optimize import minimize_scalar

    series = next(s for s in measured() if (s["model"], s["gpu"], s["num_gpus"]) == FIT)

    def loss(share: float) -> float:
        return sum(math.log1p(p) ** 2 for _, p, _, _ in errors(series, share))

    return float(minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-3}).x)


def compare() -> str:
    """The fitted series point by point, then every series' median errors (fitted and held out)."""
    data = measured()
    lines = ["| requests in flight | J/token predicted | measured | error | W (all GPUs) predicted | measured | error |",
             "|---|---|---|---|---|---|---|"]
    fitted = next(s for s in data if (s["model"], s["gpu"], s["num_gpus"]) == FIT)
    for pt, (n, pe, je, _) in zip(fitted["points"], errors(fitted)):
        j, w = pt["energy_per_token_joules"], pt["avg_power_watts"]
        lines.append(f"| {n} | {j * (1 + je):.3g} | {j:.3g} | {je:+.0%} | {w * (1 + pe):,.0f} | {w:,.0f} | {pe:+.0%} |")
    lines += ["", "| series | role | power error, median (range) | J/token error, median | throughput error, median |",
              "|---|---|---|---|---|"]
    for s in data:
        e = errors(s)
        role = "fitted" if s is fitted else "held out"
        pe = [x[1] for x in e]
        lines.append(f"| {s['model']} on {s['num_gpus']} {s['gpu']} | {role} | {statistics.median(pe):+.0%} "
                     f"({min(pe):+.0%} to {max(pe):+.0%}) | {statistics.median(x[2] for x in e):+.0%} | "
                     f"{statistics.median(x[3] for x in e):+.0%} |")
    return "\n".join(lines)


def by_batch() -> dict[str, list[tuple[int, float, float]]]:
    """Per chip: ``(batch, joules per output token of the boards, board watts per chip)`` for every batch
    that fits."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    for chip in CHIPS:
        hw = cm.load_hardware(chip).replace(host_power_w=0.0)
        rows = []
        for b in BATCHES:
            p = cm.predict(MODEL, hw, cm.Workload(batch=b, context=CONTEXT), parallel=cm.Parallel(tp=4))
            if p.fits:
                d = p.to_dict()
                rows.append((b, d["joules_per_output_token"], d["power_w_per_chip"]))
        out[chip] = rows
    return out


def _table(data: dict[str, list[tuple[int, float, float]]]) -> str:
    lines = ["| batch | " + " | ".join(f"{c}: J/token (W/chip)" for c in CHIPS) + " |",
             "|---|" + "---|" * len(CHIPS)]
    for b in BATCHES:
        cells = []
        for c in CHIPS:
            row = next((r for r in data[c] if r[0] == b), None)
            cells.append("does not fit" if row is None else f"{row[1]:.3g} ({row[2]:,.0f})")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(data: dict[str, list[tuple[int, float, float]]], path: Path = FIGURE) -> Path:
    """Joules per output token against batch, one line per chip (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for chip, rows in data.items():
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label=chip)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch (sequences per replica)")
    ax.set_ylabel("J per output token (boards)")
    ax.set_title(f"{MODEL}, 4 chips (tp4), bf16, context {CONTEXT}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", action="store_true", help="cm.serve against the ML.ENERGY Leaderboard's runs")
    ap.add_argument("--fit", action="store_true", help="fit the memory power share on the H100 Llama 3.1 70B runs")
    ap.add_argument("--no-figure", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    if args.fit:
        print(f"memory_power_share = {fit():.3f}")
        return
    if args.compare:
        print(compare())
        return
    data = by_batch()
    print(_table(data))
    if not args.no_figure:
        print(f"\nfigure: {figure(data).relative_to(FIGURE.parent.parent.parent)}")


if __name__ == "__main__":
    main()
