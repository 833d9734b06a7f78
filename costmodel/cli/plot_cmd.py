"""``costmodel plot KIND``: write one figure (PNG or SVG)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import ConfigError
from ..plot.kinds import COMPARE_FIGURES, FIGURES, SERVING_FIGURES
from .common import add_efficiency_argument, add_spec_arguments, precision_from, ranged

KINDS = tuple(FIGURES) + tuple(SERVING_FIGURES) + tuple(COMPARE_FIGURES)
HELP = f"draw a figure: {', '.join(KINDS[:-1])} or {KINDS[-1]} (PNG or SVG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="which figure")
    add_spec_arguments(p, model="llama-3-70b", hardware="h100-sxm")
    p.add_argument("--tp", type=ranged("tp", integer=True), default=8, help="tensor-parallel degree (default 8)")
    p.add_argument("--context", type=ranged("context"), default=8192, help="cached tokens per sequence (default 8192)")
    p.add_argument("--batch", type=ranged("batch"), default=64, help="batch for the sensitivity figure (default 64)")
    p.add_argument("--weights", default=None, help="weight precision (default: the model's)")
    p.add_argument("--kv", default=None, help="KV-cache precision (default bf16)")
    p.add_argument("--price-tier", action="append", default=[], metavar="NAME=USD",
                   help="pareto: a price tier in USD per million tokens, e.g. fast=4.8 (repeatable)")
    add_efficiency_argument(p)
    p.add_argument("--isl", type=ranged("input_tokens"), default=1024,
                   help="serving-load, serving-throughput: input tokens per request (default 1024)")
    p.add_argument("--osl", type=ranged("output_tokens"), default=1024,
                   help="serving-load, serving-throughput: output tokens per request (default 1024)")
    p.add_argument("--load", choices=("concurrency", "rate"), default="concurrency",
                   help="serving-load: the load axis, requests in flight or requests/s (default concurrency)")
    p.add_argument("--out", required=True, help="output file, .png or .svg")


def _tiers(items: list[str]) -> dict[str, float]:
    tiers = {}
    for item in items:
        name, _, price = item.partition("=")
        try:
            tiers[name] = float(price)
        except ValueError:
            raise ConfigError(f"--price-tier must look like NAME=USD (e.g. fast=4.8), got {item!r}") from None
        if not (name and math.isfinite(tiers[name]) and 0 < tiers[name] <= 1e6):
            raise ConfigError(f"--price-tier needs a name and a price in (0, 1e6] USD per million tokens, "
                              f"got {item!r}")
    return tiers


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--out must end in .png or .svg, got {args.out!r}")
    from ..plot import KINDS, SERVING_KINDS, Setup

    chips = [h.strip() for h in args.hardware.split(",")] if isinstance(args.hardware, str) else [args.hardware]
    if len(chips) > 1 and args.kind not in COMPARE_FIGURES:
        raise ConfigError(f"--hardware lists {len(chips)} chips: `costmodel plot chips` draws one curve per chip "
                          f"(cost against tokens/s per user); {args.kind} takes one chip")
    if len(set(chips)) < len(chips) or not all(chips):
        raise ConfigError(f"--hardware must list distinct chips separated by commas, got {args.hardware!r}")
    setups = [Setup(args.model, h, context=args.context, tp=args.tp, precision=precision_from(args),
                    usd_per_chip_hour=args.price, efficiency=args.efficiency) for h in chips]
    for s in setups:
        s.scenario()  # an unknown chip or a bad split is refused before any drawing
    if args.kind in COMPARE_FIGURES:
        from ..plot import chip_frontiers

        fig = chip_frontiers(setups)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        print(out)
        return 0
    setup = setups[0]
    kw = {"pareto": {"price_tiers": _tiers(args.price_tier)}, "sensitivity": {"batch": args.batch},
          "serving-load": {"isl": args.isl, "osl": args.osl, "load": args.load},
          "serving-throughput": {"isl": args.isl, "osl": args.osl}}.get(args.kind, {})
    fig = {**KINDS, **SERVING_KINDS}[args.kind](setup, **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(out)
    return 0
