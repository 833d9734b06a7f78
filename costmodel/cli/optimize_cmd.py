"""``costmodel optimize``: the cheapest configuration that meets a latency target.

With no arguments it solves the default problem: Llama 3 70B on H100 SXM at
8k context, 50 ms per output token, at most 64 chips.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import optimize_serving_cmd as serving_cmd
from .common import (add_efficiency_argument, add_electricity_arguments, add_spec_arguments, cli_words,
                     electricity_from, energy_line, fmt_bytes, fmt_seconds, hardware_from, print_json, ranged)
from ..errors import ConfigError
from ..symbolic import Rules
from ..symbolic.rules import STEPS

if TYPE_CHECKING:
    from ..optimizer.solution import Solution

HELP = "find the cheapest serving configuration that meets a latency target"
#: costmodel.optimizer.METHODS, spelled out: importing the optimizer loads JAX (tested equal).
METHODS = ("gradient", "exhaustive")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, model="llama-3-70b", hardware="h100-sxm")
    p.add_argument("--context", type=ranged("context"), default=8192, help="cached tokens per sequence (default 8192)")
    p.add_argument("--prompt", type=ranged("prompt"), default=None, help="prompt tokens for TTFT (default: --context)")
    p.add_argument("--tpot-ms", type=ranged("tpot_s", scale=1e3, unit="ms"), default=50.0,
                   help="target time per output token, in ms (default 50)")
    p.add_argument("--ttft-ms", type=ranged("ttft_s", scale=1e3, unit="ms"), default=None,
                   help="target time to first token, in ms (default none)")
    p.add_argument("--max-chips", type=ranged("max_chips", integer=True), default=64,
                   help="chip budget over all replicas (default 64)")
    p.add_argument("--demand-tps", type=ranged("demand_tokens_per_s"), default=None,
                   help="output tokens/s to serve; sets the replicas, and the cost is then the provisioned "
                        "chips over the demanded tokens (JSON: usd_per_mtok; usd_per_mtok_at_capacity prices "
                        "full throughput as predict does) (default: one replica)")
    p.add_argument("--weights", default=None,
                   help="weight precision or a comma-separated set to choose from (default: the model's)")
    p.add_argument("--kv", default=None, help="KV precision or a comma-separated set (default bf16)")
    add_efficiency_argument(p)
    add_electricity_arguments(p)
    p.add_argument("--minimise", choices=("cost", "energy"), default=None,
                   help="what the search minimises: cost (default: USD per million output tokens, the "
                        "electricity included with --price-basis owned) or energy (joules per output token; "
                        "for the serving problem, joules per request)")
    p.add_argument("--maximise", choices=("rate",), default=None,
                   help="rate: the highest request rate (and output tokens/s) --max-chips chips serve within "
                        "--ttft-ms/--tpot-ms, per mode, with the deployment (needs --isl/--osl; no --rate)")
    p.add_argument("--step", choices=STEPS, default=Rules.step,
                   help="price every candidate's steps as one roofline (default) or as the sum of the kernels an "
                        "engine runs, each its own roofline (operators, with --efficiency kernels: the "
                        "efficiencies fitted to measured kernels; docs/theory.md §20)")
    p.add_argument("--method", choices=METHODS, default="gradient", help="search method (default gradient)")
    p.add_argument("--verify", action="store_true", help="also run the exhaustive search and report the gap")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    serving_cmd.add_arguments(p)
    p.add_argument("--emit", choices=("vllm", "sglang", "trtllm"), default=None,
                   help="print the launch commands of the answer for this engine (its own flags, for the version "
                        "the flag list states; docs/launch.md); with --json, as key 'launch'")


def solve(args: argparse.Namespace, method: str) -> Solution:
    from ..optimizer import optimize  # imports JAX: only when a search runs, not for `costmodel list`

    return optimize(
        args.model, hardware_from(args, args.hardware), context=args.context, prompt=args.prompt,
        tpot_s=args.tpot_ms / 1e3, ttft_s=None if args.ttft_ms is None else args.ttft_ms / 1e3, max_chips=args.max_chips,
        demand_tokens_per_s=args.demand_tps, weights=args.weights, kv=args.kv, usd_per_chip_hour=args.price,
        efficiency=args.efficiency, method=method, math=args.math, objective=args.minimise or "cost",
        electricity=electricity_from(args), rules=Rules(step=args.step),
    )


def run(args: argparse.Namespace) -> int:
    if args.maximise is not None:
        return serving_cmd.run_max_rate(args)
    if args.emit is not None:
        return run_emit(args)
    if "," in args.hardware:
        return run_across(args)
    if serving_cmd.wanted(args):
        return serving_cmd.run(args)
    d = answer(args)
    if args.json:
        print_json(d)
    else:
        print(render(d))
    return 0


def run_emit(args: argparse.Namespace) -> int:
    """``--emit ENGINE``: the answer's launch commands (a refusal when there is nothing to launch)."""
    if "," in args.hardware:
        raise ConfigError("--emit writes one deployment: give one chip in --hardware")
    sol = serving_cmd.solve(args, args.method) if serving_cmd.wanted(args) else solve(args, args.method)
    if not sol.feasible:
        raise ConfigError(f"nothing to launch: {sol.message}")
    text = sol.launch(args.emit)
    if args.json:
        print_json(sol.to_dict() | {"launch": text})
    else:
        print(text, end="")
    return 0


def answer(args: argparse.Namespace) -> dict:
    """The JSON answer of one chip (the decode problem, or the serving problem with ``--isl``)."""
    if serving_cmd.wanted(args):
        return serving_cmd.answer(args)
    sol = solve(args, args.method)
    d = sol.to_dict()
    if args.verify:
        ref = solve(args, "exhaustive")
        e = ref.to_dict()
        d["exhaustive_usd_per_mtok"] = ref.usd_per_mtok
        d["exhaustive_joules_per_output_token"] = e["joules_per_output_token"]
        d["exhaustive_feasible"] = ref.feasible
        # relative gap of the two answers in the objective; null unless both methods found a feasible one
        key = "usd_per_mtok" if d["objective"] == "cost" else "joules_per_output_token"
        d["gap"] = d[key] / e[key] - 1 if sol.feasible and ref.feasible else None
        d["exhaustive_wall_time_s"] = ref.wall_time_s
    return d


def run_across(args: argparse.Namespace) -> int:
    """``--hardware a,b,c``: the same problem on each chip, ranked cheapest first (JSON ``by_hardware``)."""
    import copy

    from ..optimizer.across import hardware_list, rank_key

    serving = serving_cmd.wanted(args)
    serving_cmd.check_pairs(args)
    cost = "usd_per_mtok_output" if serving else "usd_per_mtok"
    rows = []
    for chip in hardware_list(args.hardware):
        one = copy.copy(args)
        one.hardware = chip
        rows.append({"hardware": chip, **answer(one)})
    rows.sort(key=lambda d: rank_key(d["feasible"], d[cost], d.get("min_chips_needed")))
    if args.json:
        print_json({"by_hardware": rows})
        return 0
    lines = [f"{'chip':<14} {'feasible':<9} {'chips':>6} {'cost $/M output tok':>20} {'TPOT':>10} {'TTFT':>10}"]
    for d in rows:
        tpot = d.get("tpot_s", d.get("step_time_s"))
        chips = d["chips"] if serving else (d["config"] or {}).get("chips")
        lines.append(f"{d['hardware']:<14} {'yes' if d['feasible'] else 'NO':<9} {chips or '-':>6} "
                     f"{'-' if d[cost] is None else f'{d[cost]:.4g}':>20} "
                     f"{'-' if tpot is None else fmt_seconds(tpot):>10} "
                     f"{'-' if d.get('ttft_s') is None else fmt_seconds(d['ttft_s']):>10}")
    best = rows[0]
    lines.append(("cheapest: " + f"{best['hardware']}: " + cli_words(best["message"])) if best["feasible"]
                 else "INFEASIBLE on every chip: " + "; ".join(f"{d['hardware']}: {cli_words(d['message'])}" for d in rows))
    print("\n".join(lines))
    return 0


def render(d: dict) -> str:
    """A readable answer."""
    pr = d["problem"]
    lines = [f"problem: {pr['model']} on {pr['hardware']}, context {pr['context']:g}, "
             f"TPOT <= {pr['tpot_s'] * 1e3:g} ms" + (f", TTFT <= {pr['ttft_s'] * 1e3:g} ms" if pr["ttft_s"] else "")
             + f", <= {pr['max_chips']} chips" + (f", {pr['demand_tokens_per_s']:g} tok/s" if pr["demand_tokens_per_s"] else ""),
             ("answer: " if d["feasible"] else "INFEASIBLE: ") + cli_words(d["message"])]
    c = d["config"]
    if c:
        lines += [
            f"  config      tp={c['tp']} pp={c['pp']} ep={c['ep']} replicas={c['replicas']} ({c['chips']} chips), "
            f"batch {c['batch']}, weights {c['weights']}, KV {c['kv']}",
            f"  cost        ${d['usd_per_mtok']:.4g} per million output tokens"
            + (f" demanded (${d['usd_per_mtok_at_capacity']:.4g} at full throughput)" if d["pricing"] == "demand" else ""),
            f"  TPOT        {fmt_seconds(d['step_time_s'])} ({d['bound']}-bound)   TTFT {fmt_seconds(d['ttft_s'])}",
            f"  throughput  {d['tokens_per_s']:,.0f} tok/s   memory {fmt_bytes(d['memory_bytes_per_chip'])}/chip",
            f"  energy      {energy_line(d)}",
            "  breakdown   " + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in d["breakdown_s"].items()),
        ]
        if d["feasible"]:
            lines.append(f"  binds       {d['binding']}; shadow price "
                         f"{d['shadow_price_usd_per_mtok_per_ms']:.3g} $/Mtok per ms of latency target"
                         + (" (negative: a looser target is cheaper)" if d["shadow_price_usd_per_mtok_per_ms"] < 0 else ""))
    for a in d["alternatives"]:
        lines.append(f"  alternative tp={a['tp']} pp={a['pp']} ep={a['ep']} x{a['replicas']}, batch {a['batch']}, "
                     f"{a['weights']}/{a['kv']}: ${a['usd_per_mtok']:.4g}/Mtok, {fmt_seconds(a['step_time_s'])}"
                     + (f", {a['joules_per_output_token']:.3g} J/token" if d["objective"] == "energy" else ""))
    if "gap" in d:
        gap = "n/a" if d["gap"] is None else f"{d['gap']:.3%}"
        if d["objective"] == "energy":
            ref = d["exhaustive_joules_per_output_token"]
            shown = "none" if ref is None else f"{ref:.4g} J/token"
        else:
            ref = d["exhaustive_usd_per_mtok"]
            shown = "none" if ref is None else f"${ref:.4g}/Mtok"
        lines.append(f"  verify      exhaustive {shown}, gap {gap}")
    lines.append(f"  solved by {d['method']} in {d['wall_time_s'] * 1e3:.0f} ms")
    return "\n".join(lines)

