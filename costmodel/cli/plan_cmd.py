"""``costmodel plan FLEET.toml``: the cheapest fleet for several models on several capped chip types.

The fleet file format is in docs/fleet.md; ``docs/examples/fleet.toml`` is a working example.
A malformed file is a one-line error with exit status 2; an infeasible fleet is an answer (exit 0).
"""

from __future__ import annotations

import argparse

from ..symbolic import Rules
from ..symbolic.rules import STEPS
from .common import add_efficiency_argument, fmt_seconds, print_json

HELP = "plan a fleet: each model's chip type, mode, configuration and replicas at the lowest USD per hour"
#: costmodel.fleet.plan.METHODS, spelled out: importing the planner loads JAX (tested equal).
METHODS = ("gradient", "exhaustive")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fleet", metavar="FLEET.toml", help="the fleet file: models, traffic, targets, chip caps and prices "
                                                       "(docs/fleet.md)")
    add_efficiency_argument(p)
    p.add_argument("--method", choices=METHODS, default="gradient",
                   help="the serving optimiser's search method for each (model, chip type) (default gradient)")
    p.add_argument("--step", choices=STEPS, default=Rules.step,
                   help="price every deployment's steps as one roofline (default) or by its kernels (operators, "
                        "with --efficiency kernels; docs/optimizer.md)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(_words=str)  # errors name the file's keys (usd_per_chip_hour), not another command's flags


def run(args: argparse.Namespace) -> int:
    from ..fleet.plan import plan
    from ..fleet.spec import load_fleet

    fleet = load_fleet(args.fleet)  # a malformed file is refused before anything is compiled
    p = plan(fleet, efficiency=args.efficiency, method=args.method, step=args.step)
    if args.json:
        print_json(p.to_dict())
    else:
        print(render(p.to_dict(), args))
    return 0


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]


def render(d: dict, args: argparse.Namespace) -> str:
    """A readable plan: the answer, a row per model, a row per chip type."""
    lines = [f"fleet: {args.fleet}, {len(d['models'])} models, {len(d['chips'])} chip types, "
             f"{args.efficiency} efficiency"
             + (f", {args.step} step" if args.step != Rules.step else ""),
             ("answer: " if d["feasible"] else "INFEASIBLE: ") + d["message"], ""]
    rows = []
    for m in d["models"]:
        if m["hardware"] is None:
            rows.append([m["name"], m["model"], "not served", "", "", "", "", "", "", "", ""])
            continue
        rows.append([m["name"], m["model"], m["hardware"], str(m["chips"]), m["mode"] or "",
                     _money(m["usd_per_hour"]), _money(m["usd_per_mtok_output"]),
                     "-" if m["ttft_s"] is None else fmt_seconds(m["ttft_s"]),
                     "-" if m["tpot_s"] is None else fmt_seconds(m["tpot_s"]), m["binding"] or "-",
                     "-" if m["power_kw"] is None else f"{m['power_kw']:.3g}"])
    lines += _table(["model", "serves", "chip", "chips", "mode", "USD/h", "USD/Mtok out", "TTFT", "TPOT", "binds",
                     "kW"], rows)
    lines.append("")
    rows = []
    for c in d["chips"]:
        extra = (_money(c["usd_per_hour_per_extra_chip"]) + "/h" if d["feasible"]
                 else ("-" if c["extra_chips_needed"] is None else f"+{c['extra_chips_needed']} serves all"))
        binds = (f"yes ({', '.join(c['wanted_by'])})" if c["wanted_by"] else "yes") if c["binding"] else "no"
        rows.append([c["hardware"], str(c["available"]), str(c["used"]), _money(c["usd_per_chip_hour"]), binds, extra,
                     "infeasible" if c["usd_per_hour_without_cap"] is None else _money(c["usd_per_hour_without_cap"]) + "/h"])
    lines += _table(["chip", "available", "used", "USD/chip-h", "cap binds",
                     "one more chip saves" if d["feasible"] else "fix", "without the cap"], rows)
    lines += ["", f"total {_money(d['usd_per_hour'])}/h" + ("" if d["feasible"] else " (the models served)")
              + _power(d["power"]),
              f"solved in {d['wall_time_s']:.3g} s: {len(d['candidates'])} serving "
              f"optimisation{'' if len(d['candidates']) == 1 else 's'} ({d['method']}) "
              f"in {d['candidates_time_s']:.3g} s, the assignment programs in {d['milp_time_s'] * 1e3:.0f} ms"]
    return "\n".join(lines)


def _power(w: dict) -> str:
    """The site's power: what the plan draws, the cap, whether it binds and what one more kW saves."""
    if w["used_kw"] is None:
        return ""
    text = f", {w['used_kw']:.3g} kW of IT power"
    if w["cap_kw"] is None:
        return text
    text += f" of the site's {w['cap_kw']:.4g} kW cap"
    if not w["binding"]:
        return text + " (does not bind)"
    saves = w["usd_per_hour_per_extra_kw"]
    return text + (" (binds" + ("" if saves is None else f"; one more kW saves {_money(saves)}/h") + ")")
