"""``costmodel report``: a Markdown or LaTeX document with derivations, numbers and figures."""

from __future__ import annotations

import argparse

from .common import add_spec_arguments, positive_float, positive_int, precision_from

HELP = "write a report (Markdown or LaTeX): derivations, numbers substituted, the optimiser's answer, figures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, model="llama-3-70b", hardware="h100-sxm")
    p.add_argument("--format", choices=("md", "tex"), default="md", help="document format (default md)")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--tp", type=positive_int, default=8, help="tensor-parallel degree (default 8)")
    p.add_argument("--context", type=positive_float, default=8192, help="cached tokens per sequence (default 8192)")
    p.add_argument("--tpot", type=positive_float, default=0.05, help="target seconds per output token (default 0.05)")
    p.add_argument("--max-chips", type=positive_int, default=64, help="chip budget for the optimiser (default 64)")
    p.add_argument("--weights", default=None, help="weight precision (default: the model's)")
    p.add_argument("--kv", default=None, help="KV-cache precision (default bf16)")
    p.add_argument("--figure-format", choices=("png", "svg"), default="png", help="figure files (default png)")
    p.add_argument("--no-optimize", action="store_true", help="skip the optimiser's section")


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.model, args.hardware, args.out, fmt=args.format, context=args.context, tp=args.tp,
                        tpot_s=args.tpot, max_chips=args.max_chips, precision=precision_from(args),
                        usd_per_chip_hour=args.price, figure_format=args.figure_format,
                        optimise=not args.no_optimize)
    print(path)
    return 0
