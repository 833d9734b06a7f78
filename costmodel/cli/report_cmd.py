"""``costmodel report``: a Markdown or LaTeX document with derivations, numbers and figures."""

from __future__ import annotations

import argparse

from .common import add_efficiency_argument, add_spec_arguments, precision_from, ranged

HELP = "write a report (Markdown or LaTeX): derivations, numbers substituted, the optimiser's answer, figures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, model="llama-3-70b", hardware="h100-sxm")
    p.add_argument("--format", choices=("md", "tex"), default="md", help="document format (default md)")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--tp", type=ranged("tp", integer=True), default=8, help="tensor-parallel degree (default 8)")
    p.add_argument("--context", type=ranged("context"), default=8192, help="cached tokens per sequence (default 8192)")
    p.add_argument("--tpot-ms", type=ranged("tpot_s", scale=1e3, unit="ms"), default=50.0,
                   help="target time per output token for the optimiser, in ms (default 50)")
    p.add_argument("--max-chips", type=ranged("max_chips", integer=True), default=64,
                   help="chip budget for the optimiser (default 64)")
    p.add_argument("--weights", default=None, help="weight precision (default: the model's)")
    p.add_argument("--kv", default=None, help="KV-cache precision (default bf16)")
    p.add_argument("--figure-format", choices=("png", "svg"), default="png", help="figure files (default png)")
    add_efficiency_argument(p)
    p.add_argument("--no-optimize", action="store_true", help="skip the optimiser's section")


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.model, args.hardware, args.out, fmt=args.format, context=args.context, tp=args.tp,
                        tpot_s=args.tpot_ms / 1e3, max_chips=args.max_chips, precision=precision_from(args),
                        usd_per_chip_hour=args.price, efficiency=args.efficiency, figure_format=args.figure_format,
                        optimise=not args.no_optimize)
    print(path)
    return 0
