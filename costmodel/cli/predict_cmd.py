"""``costmodel predict``: one configuration in, the answer out with its breakdown."""

from __future__ import annotations

import argparse
import re

from ..config import Workload
from ..errors import ConfigError
from ..symbolic import Rules
from ..symbolic.rules import ATTENTION_SHARDINGS, COMBINES, COMM_OVERLAPS, EXPERT_FETCHES, LAYOUTS, STEPS
from . import serve_args
from .common import (add_efficiency_argument, add_electricity_arguments, add_parallel_arguments, add_spec_arguments,
                     electricity_from, energy_line, fmt_bytes, fmt_seconds, hardware_from, parallel_from,
                     precision_from, print_json, ranged)

HELP = "predict latency, throughput, memory and cost of one serving configuration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, model="llama-3-8b", hardware="h100-sxm")
    add_parallel_arguments(p)
    p.add_argument("--batch", type=ranged("batch"), default=1, help="sequences per replica (default 1)")
    p.add_argument("--context", type=ranged("context"), default=2048,
                   help="cached tokens per sequence at each decode step (default 2048)")
    p.add_argument("--prompt", type=ranged("prompt"), default=None,
                   help="prompt tokens for prefill and TTFT (default: --context)")
    p.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    p.add_argument("--weights", default=None, help="weight precision: bf16, fp8, int8, int4, fp4 (default: the model's)")
    p.add_argument("--kv", default=None, help="KV-cache precision (default bf16)")
    p.add_argument("--combine", choices=COMBINES, default="max", help="how compute and memory combine (default max)")
    p.add_argument("--overlap", choices=COMM_OVERLAPS, default="none",
                   help="whether communication overlaps compute (default none)")
    p.add_argument("--expert-fetch", choices=EXPERT_FETCHES, default="expected",
                   help="MoE: stream the experts a step touches on average, or all (default expected)")
    p.add_argument("--layout", choices=LAYOUTS, default="1d-ws",
                   help="tensor-parallel layout (Pope et al. 2022): 1d-ws (Megatron, default), 2d-ws "
                        "(2D weight-stationary), wg-x / wg-xy / wg-xyz (weight-gathered)")
    p.add_argument("--attention-sharding", choices=ATTENTION_SHARDINGS, default="heads",
                   help="shard attention and the KV cache over heads (default; KV replicated past the KV "
                        "heads) or over the batch (no replication, two all-to-alls per layer)")
    p.add_argument("--mesh", type=mesh_type, default=None,
                   help="tensor-parallel mesh XxYxZ with X*Y*Z = tp, e.g. 4x4x4 "
                        "(default: balanced over the chip's torus axes)")
    p.add_argument("--step", choices=STEPS, default=None,
                   help="price the step as one roofline (default) or as the sum of the kernels an engine runs, "
                        "each its own roofline (operators; docs/theory.md §20)")
    p.add_argument("--ops", action="store_true",
                   help="print the step's operators (name, count, time, bound, FLOPs, bytes; with --efficiency kernels, "
                        "the profile fitted to measured kernels); implies --step "
                        "operators; --json carries them as key 'ops'")
    add_efficiency_argument(p)
    add_electricity_arguments(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    serve_args.add_arguments(p)


def step_rule(args: argparse.Namespace) -> str:
    """The step rule the flags ask for: ``--ops`` implies ``operators``; ``--ops --step roofline`` is refused."""
    if args.ops and args.step == "roofline":
        raise ConfigError("--ops lists the operators of the operator-level step; drop --step roofline "
                          "(or drop --ops for the single-roofline step)")
    return "operators" if args.ops else (args.step or "roofline")


def mesh_type(text: str) -> tuple[int, ...]:
    """argparse type: ``4x4x4`` -> ``(4, 4, 4)`` (1 to 3 whole numbers >= 1)."""
    if not re.fullmatch(r"[1-9][0-9]*(x[1-9][0-9]*){0,2}", text):
        raise argparse.ArgumentTypeError(f"expected 1 to 3 whole numbers >= 1 joined by 'x' (e.g. 4x4x4), got {text!r}")
    return tuple(int(a) for a in text.split("x"))


def run(args: argparse.Namespace) -> int:
    if serve_args.wanted(args):
        if args.ops:
            raise ConfigError("--ops lists the operators of one step; drop the request flags (--isl, --osl, "
                              "--rate, ...) to see them, or use --step operators for the serving answer")
        return serve_args.run(args)
    from ..prediction import predict  # imports JAX: only when a prediction runs, not for `costmodel list`

    pred = predict(
        args.model, hardware_from(args, args.hardware),
        Workload(batch=args.batch, context=args.context, prompt=args.prompt, phase=args.phase),
        parallel=parallel_from(args),
        precision=precision_from(args),
        efficiency=args.efficiency,
        usd_per_chip_hour=args.price,
        rules=Rules(args.phase, args.combine, args.overlap, args.expert_fetch, layout=args.layout,
                    attention_sharding=args.attention_sharding, step=step_rule(args)),
        electricity=electricity_from(args),
    )
    d = pred.to_dict()
    if args.json:
        print_json(d)
    else:
        print(render(d))
        if args.ops:
            print(render_ops(d["ops"], d["step_time_s"]))
        if not pred.fits:
            print(f"warning: {pred.memory_message()}")
    return 0


def render(d: dict) -> str:
    """A readable table of a prediction's dict."""
    par, prec = d["parallel"], d["precision"]
    unit = "output" if d["phase"] == "decode" else "prompt"
    rows = [
        ("model / chip", f"{d['model']} on {d['hardware']}"),
        ("split", f"tp={par['tp']} pp={par['pp']} ep={par['ep']} x {par['replicas']} replica(s) = {d['chips']} chips"),
        ("per chip", holding(d["model"], par)),
        ("layout", f"{par['layout']} on mesh {'x'.join(map(str, par['mesh']))}, attention over "
                   f"{par['attention_sharding']} (KV x{par['kv_replication']:g})"),
        ("precision", f"weights {prec['weights']}, KV {prec['kv']}, math {prec['math']}"),
        ("workload", f"{d['phase']}, batch {d['workload']['batch']:g}, context {d['workload']['context']:g}, "
                     f"prompt {d['workload']['prompt']:g}"),
        ("step time", fmt_seconds(d["step_time_s"]) + f"  ({d['bound']}-bound)"),
        ("throughput", f"{d['tokens_per_s']:,.0f} tok/s total, {d['tokens_per_s_per_user']:,.1f} tok/s per user"),
        ("cost", f"${d['usd_per_mtok']:.4g} per million {unit} tokens at ${d['usd_per_chip_hour']:g}/chip-h"),
        ("energy", energy_line(d)),
        ("MFU", f"{d['mfu']:.1%}"),
        ("memory / chip", f"{fmt_bytes(d['memory_bytes_per_chip'])} of {fmt_bytes(d['usable_bytes_per_chip'])}"
                          + ("" if d["fits"] else "  DOES NOT FIT")),
        ("capacity", f"max batch {d['max_batch']:,.0f} at this context, max context {d['max_context']:,.0f} "
                     "at this batch"),
    ]
    rows += [(f"  {k}", fmt_seconds(v)) for k, v in d["breakdown_s"].items()]
    comm = par["communication_s"]
    if d["breakdown_s"]["communication"] > 0:
        rows += [(f"    {k}", fmt_seconds(v)) for k, v in comm.items() if v > 0]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def holding(model: str, par: dict) -> str:
    """What one chip holds: its share of the query heads, layers and routed experts. Chips multiply as
    tp·pp·ep here, where engines run expert parallelism on the tensor-parallel GPUs (docs/sharding.md)."""
    from ..specs import load_model

    m = load_model(model)
    parts = [f"{m.n_heads / par['tp']:g} of {m.n_heads} query heads", f"{m.n_layers / par['pp']:g} of {m.n_layers} layers"]
    if m.mlp == "moe":
        placed = m.n_experts + par.get("redundant_experts", 0)
        parts.append(f"{placed / par['ep']:g} of {placed} routed experts")
    return ", ".join(parts)


def render_ops(ops: list[dict], step_time_s: float) -> str:
    """The per-operator table of an operator-level step: one row per operator, then the total."""
    head = ("operator", "count", "time", "share", "bound", "GFLOP", "MB")
    rows = [(o["name"], f"{o['count']:g}", fmt_seconds(o["time_s"]), f"{o['time_s'] / step_time_s:.1%}", o["bound"],
             f"{o['flops'] / 1e9:,.3g}", f"{o['bytes'] / 1e6:,.4g}") for o in ops if o["count"] > 0]
    rows.append(("total", "", fmt_seconds(sum(o["time_s"] for o in ops)), "100.0%", "", "", ""))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), *map(line, rows)])
