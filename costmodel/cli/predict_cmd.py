"""``costmodel predict``: one configuration in, the answer out with its breakdown."""

from __future__ import annotations

import argparse

from ..config import Parallel, Workload
from ..prediction import predict
from ..symbolic import Rules
from ..symbolic.rules import COMBINES, COMM_OVERLAPS, EXPERT_FETCHES
from .common import (add_parallel_arguments, add_spec_arguments, fmt_bytes, fmt_seconds, positive_float,
                     precision_from, print_json)

HELP = "predict latency, throughput, memory and cost of one serving configuration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, model="llama-3-8b", hardware="h100-sxm")
    add_parallel_arguments(p)
    p.add_argument("--batch", type=positive_float, default=1, help="sequences per replica (default 1)")
    p.add_argument("--context", type=positive_float, default=2048,
                   help="cached tokens per sequence at each decode step (default 2048)")
    p.add_argument("--prompt", type=positive_float, default=2048, help="prompt tokens for prefill (default 2048)")
    p.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    p.add_argument("--weights", default=None, help="weight precision: bf16, fp8, int8, int4, fp4 (default: the model's)")
    p.add_argument("--kv", default=None, help="KV-cache precision (default bf16)")
    p.add_argument("--combine", choices=COMBINES, default="max", help="how compute and memory combine (default max)")
    p.add_argument("--overlap", choices=COMM_OVERLAPS, default="none",
                   help="whether communication overlaps compute (default none)")
    p.add_argument("--expert-fetch", choices=EXPERT_FETCHES, default="expected",
                   help="MoE: stream the experts a step touches on average, or all (default expected)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def run(args: argparse.Namespace) -> int:
    pred = predict(
        args.model, args.hardware,
        Workload(batch=args.batch, context=args.context, prompt=args.prompt, phase=args.phase),
        parallel=Parallel(tp=args.tp, pp=args.pp, ep=args.ep, replicas=args.replicas),
        precision=precision_from(args),
        usd_per_chip_hour=args.price,
        rules=Rules(args.phase, args.combine, args.overlap, args.expert_fetch),
    )
    d = pred.to_dict()
    if args.json:
        print_json(d)
    else:
        print(render(d))
    return 0


def render(d: dict) -> str:
    """A readable table of a prediction's dict."""
    par, prec = d["parallel"], d["precision"]
    unit = "output" if d["phase"] == "decode" else "prompt"
    rows = [
        ("model / chip", f"{d['model']} on {d['hardware']}"),
        ("split", f"tp={par['tp']} pp={par['pp']} ep={par['ep']} x {par['replicas']} replica(s) = {d['chips']} chips"),
        ("precision", f"weights {prec['weights']}, KV {prec['kv']}, math {prec['math']}"),
        ("workload", f"{d['phase']}, batch {d['workload']['batch']:g}, context {d['workload']['context']:g}, "
                     f"prompt {d['workload']['prompt']:g}"),
        ("step time", fmt_seconds(d["step_time_s"]) + f"  ({d['bound']}-bound)"),
        ("throughput", f"{d['tokens_per_s']:,.0f} tok/s total, {d['tokens_per_s_per_user']:,.1f} tok/s per user"),
        ("cost", f"${d['usd_per_mtok']:.4g} per million {unit} tokens at ${d['usd_per_chip_hour']:g}/chip-h"),
        ("MFU", f"{d['mfu']:.1%}"),
        ("memory / chip", f"{fmt_bytes(d['memory_bytes_per_chip'])} of {fmt_bytes(d['usable_bytes_per_chip'])}"
                          + ("" if d["fits"] else "  DOES NOT FIT")),
    ]
    rows += [(f"  {k}", fmt_seconds(v)) for k, v in d["breakdown_s"].items()]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if not d["fits"]:
        mb = d["memory_breakdown_bytes"]
        lines.append(f"warning: needs {fmt_bytes(d['memory_bytes_per_chip'])} per chip (weights {fmt_bytes(mb['weight'])}, "
                     f"KV {fmt_bytes(mb['kv'])}) but {fmt_bytes(d['usable_bytes_per_chip'])} is usable; "
                     "use more chips (--tp/--pp), a smaller batch or context, or lower precision")
    return "\n".join(lines)
