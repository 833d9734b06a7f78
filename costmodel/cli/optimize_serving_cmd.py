"""The serving flags of ``costmodel optimize`` (``--isl``/``--osl``/``--rate`` switch it to the deployment problem).

``costmodel optimize --isl 1024 --osl 256 --rate 4 --ttft-ms 500 --tpot-ms 50`` answers the cheapest
aggregated and disaggregated deployments side by side (:func:`costmodel.optimize_serving`).
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..serving.percentiles import PERCENTILES
from .common import (add_length_arguments, add_scheduler_arguments, electricity_from, fmt_seconds, fraction,
                     hardware_from, print_json, ranged, requests_from, scheduler_from)

__all__ = ["add_arguments", "wanted", "run", "render", "answer", "check_pairs", "run_max_rate", "render_max_rate",
           "max_rate_answer"]

MODES = ("agg", "disagg", "auto")
OBJECTIVES = ("output", "total")
_PAIR_FLAGS = ("prefill_hardware", "decode_hardware")
_FLAGS = ("isl", "osl", "prefix_hit", "isl_cv", "osl_cv", "lengths", "ttft_percentile", "tpot_percentile", "rate",
          "mode", "spec_draft", "spec_len", "spec_accept", "objective",
          "max_seqs", "max_batched_tokens", "kv_reservation") + _PAIR_FLAGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("serving deployment (--isl/--osl with --rate or --demand-tps: aggregated or "
                             "disaggregated, replicas for the demand, TTFT with queueing)")
    g.add_argument("--isl", type=ranged("input_tokens"), default=None, help="input (prompt) tokens per request")
    g.add_argument("--osl", type=ranged("output_tokens"), default=None, help="output tokens per request")
    g.add_argument("--prefix-hit", type=fraction, default=None,
                   help="fraction of the prompt served from the prefix cache, in [0, 1) (default 0)")
    add_length_arguments(g)
    for name in ("ttft", "tpot"):
        g.add_argument(f"--{name}-percentile", type=int, choices=PERCENTILES, default=None, metavar="Q",
                       help=f"hold --{name}-ms at this percentile of requests ({', '.join(map(str, PERCENTILES))}); "
                            "default: the mean")
    g.add_argument("--rate", type=ranged("rate_per_s"), default=None, metavar="R",
                   help="requests/s the deployment must sustain (or --demand-tps output tokens/s)")
    g.add_argument("--mode", choices=MODES, default=None,
                   help="agg, disagg or auto: both, each reported (default auto)")
    for pool in ("prefill", "decode"):
        g.add_argument(f"--{pool}-hardware", default=None, metavar="CHIP[,CHIP...]",
                       help=f"chips the disaggregated {pool} pool may run on (default --hardware); with either, "
                            "the disaggregated mode searches every (prefill chip, decode chip) pair, each pool at "
                            "its chip's price")
    g.add_argument("--spec-draft", default=None, metavar="MODEL|mtp",
                   help="consider speculative decoding with a catalog draft model, or mtp")
    g.add_argument("--spec-len", type=ranged("spec_length", integer=True), default=None, metavar="G",
                   help="draft tokens per step")
    g.add_argument("--spec-accept", type=fraction, default=None, metavar="A",
                   help="probability a draft token is accepted, in [0, 1)")
    add_scheduler_arguments(g)
    g.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="output: USD per million output tokens; total: per million tokens in and out (default output)")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the serving deployment problem is asked for (any serving flag)."""
    return any(getattr(args, f) is not None for f in _FLAGS)


def _check(args: argparse.Namespace, demand: bool = True):
    """The requests and speculation option of the serving flags; ``demand``: a rate or a demand is needed
    (the cheapest deployment), else none may be given (``--maximise rate``)."""
    import costmodel as cm

    if (args.isl is None or args.osl is None) and args.lengths is None:
        given = [f"--{f.replace('_', '-')}" for f in _FLAGS if getattr(args, f) is not None]
        if not demand:
            given = ["--maximise rate"] + given
        raise ConfigError(f"{', '.join(given)}: the serving problem needs --isl and --osl (tokens per request) or "
                          "--lengths FILE")
    if demand and (args.rate is None) == (args.demand_tps is None):
        raise ConfigError("the serving problem needs exactly one of --rate (requests/s) and --demand-tps "
                          "(output tokens/s)")
    if args.math is not None:
        raise ConfigError("--math does not apply to the serving problem; choose --weights (math follows them)")
    if getattr(args, "minimise", None) == "energy" and args.objective is not None:
        raise ConfigError(f"--objective {args.objective} chooses the tokens a cost is counted over; --minimise energy "
                          "minimises joules per request instead: give one of them")
    check_pairs(args)
    spec = None
    if args.spec_draft is not None:
        if args.spec_len is None or args.spec_accept is None:
            raise ConfigError("--spec-draft needs --spec-len G and --spec-accept A")
        spec = cm.Speculative(args.spec_draft, args.spec_len, accept=args.spec_accept)
    elif args.spec_len is not None or args.spec_accept is not None:
        raise ConfigError("--spec-len/--spec-accept need --spec-draft MODEL|mtp")
    return requests_from(args, "the serving problem"), spec


def check_pairs(args: argparse.Namespace) -> None:
    """``--prefill-hardware``/``--decode-hardware`` need the disaggregated mode and one chip in ``--hardware``."""
    pairs = [f"--{f.replace('_', '-')}" for f in _PAIR_FLAGS if getattr(args, f) is not None]
    if pairs and args.mode == "agg":
        raise ConfigError(f"{'/'.join(pairs)}: chips of the disaggregated pools, which --mode agg does not have "
                          "(use --mode disagg or auto)")
    power = [f"--{k}-power-w" for k in ("max", "idle", "host") if getattr(args, f"{k}_power_w", None) is not None]
    if pairs and power:
        raise ConfigError(f"{'/'.join(power)}: one chip's board power, which a search over chip pairs "
                          f"({'/'.join(pairs)}) cannot tell apart; drop one or the other")
    if pairs and "," in args.hardware:
        raise ConfigError(f"{'/'.join(pairs)}: a search over chip pairs takes one chip in --hardware (the aggregated "
                          "mode's); compare chips with --hardware a,b without them")


def solve(args: argparse.Namespace, method: str, verify: bool = False):
    from ..optimizer.serving import optimize_serving  # imports JAX: only when a search runs

    requests, spec = _check(args)
    return optimize_serving(
        args.model, hardware_from(args, args.hardware), requests, rate_per_s=args.rate, demand_tps=args.demand_tps,
        ttft_s=None if args.ttft_ms is None else args.ttft_ms / 1e3, tpot_s=args.tpot_ms / 1e3,
        max_chips=args.max_chips, mode=args.mode or "auto", weights=args.weights, kv=args.kv, spec=spec,
        efficiency=args.efficiency, usd_per_chip_hour=args.price, objective=_objective(args),
        method=method, verify=verify, scheduler=scheduler_from(args), ttft_percentile=args.ttft_percentile,
        tpot_percentile=args.tpot_percentile, prefill_hardware=args.prefill_hardware,
        decode_hardware=args.decode_hardware, electricity=electricity_from(args), step=args.step)


def _objective(args: argparse.Namespace) -> str:
    """``--minimise energy`` (joules per request), else ``--objective`` (default output)."""
    return "energy" if getattr(args, "minimise", None) == "energy" else args.objective or "output"


def answer(args: argparse.Namespace) -> dict:
    """The JSON answer of the serving problem on ``args.hardware``."""
    return solve(args, args.method, args.verify).to_dict()


def run(args: argparse.Namespace) -> int:
    d = answer(args)
    if args.json:
        print_json(d)
    else:
        print(render(d, args))
    return 0


def _fastest(m: dict) -> str:
    """An infeasible mode's fastest TTFT and TPOT and the chips each needs (``-`` for a feasible one)."""
    f = m["fastest"]
    return "-" if m["feasible"] or not f else (f"TTFT {_ms(f['ttft_s'])} ({f['ttft_chips']} chips), "
                                               f"TPOT {_ms(f['tpot_s'])} ({f['tpot_chips']} chips)")


def _targets_and_lengths(args: argparse.Namespace) -> tuple[str, str]:
    """The problem's targets (``TTFT P99 <= 500 ms, ...``) and request lengths, in words."""
    target = ", ".join(f"{k}{'' if q is None else f' P{q}'} <= {v:g} ms" for k, v, q in
                       (("TTFT", args.ttft_ms, args.ttft_percentile), ("TPOT", args.tpot_ms, args.tpot_percentile))
                       if v is not None)
    cv = "" if not (args.isl_cv or args.osl_cv) else f" (lognormal, CV {args.isl_cv or 0:g}/{args.osl_cv or 0:g})"
    lengths = f"lengths from {args.lengths}" if args.lengths is not None else f"ISL {args.isl:g} OSL {args.osl:g}{cv}"
    return target, lengths


def _ms(v) -> str:
    return "-" if v is None else fmt_seconds(v)


def _power(m: dict) -> str:
    """A mode's watts and joules per request (``-`` where infeasible or the chip has no board power)."""
    if m["watts"] is None:
        return "-"
    return f"{m['watts'] / 1e3:.3g} kW, {m['joules_per_request']:.4g} J/request"


def _config_lines(c: dict | None, chips: bool = False) -> list[str]:
    """The config in two lines; ``chips``: say each disaggregated pool's chip (a search over chip pairs)."""
    if not c:
        return ["-", "-"]
    spec = "" if not c.get("spec") else f", spec {c['spec']['draft']} x{c['spec']['length']}"
    if "prefill" in c:
        p, d = c["prefill"], c["decode"]
        on_p, on_d = (f" on {c['prefill_hardware']}", f" on {c['decode_hardware']}") if chips else ("", "")
        return [f"prefill {p['replicas']}x tp{p['tp']} pp{p['pp']} ep{p['ep']} b{p['batch']}{on_p}",
                f"decode {d['replicas']}x tp{d['tp']} pp{d['pp']} ep{d['ep']}{on_d}, {d['weights']}/{d['kv']}{spec}"]
    return [f"{c['replicas']}x tp{c['tp']} pp{c['pp']} ep{c['ep']} ({c['attention']})",
            f"chunk {c['chunk']}, mean batch {c['batch']:.1f} in flight, {c['weights']}/{c['kv']}{spec}"]


def render(d: dict, args: argparse.Namespace) -> str:
    """The two modes side by side, then the answer."""
    modes = d["modes"]
    names = list(modes)
    rows = [("", names)]
    pairs = any(getattr(args, f, None) is not None for f in _PAIR_FLAGS)
    cfg = [_config_lines(modes[n]["config"], pairs) for n in names]
    rows += [("config", [c[0] for c in cfg]), ("", [c[1] for c in cfg])]
    rows += [
        ("feasible", ["yes" if modes[n]["feasible"] else "NO" for n in names]),
        ("chips", [str(modes[n]["chips"] or "-") for n in names]),
        ("cost", ["-" if modes[n]["usd_per_mtok_output"] is None else
                  f"${modes[n]['usd_per_mtok_output']:.4g}/M output tok" for n in names]),
        ("TTFT", [_ms(modes[n]["ttft_s"]) for n in names]),
        ("TPOT", [_ms(modes[n]["tpot_s"]) for n in names]),
        ("tok/s per chip", ["-" if modes[n]["output_tokens_per_s_per_chip"] is None else
                            f"{modes[n]['output_tokens_per_s_per_chip']:,.0f}" for n in names]),
        ("power", [_power(modes[n]) for n in names]),
        ("binds", [modes[n]["binding"] or "-" for n in names]),
        ("shadow J/req/ms" if d["objective"] == "energy" else "shadow $/Mtok/ms",
         [f"TTFT {modes[n]['shadow_prices']['ttft']:.3g}, TPOT {modes[n]['shadow_prices']['tpot']:.3g}"
          for n in names]),
    ]
    if not all(modes[n]["feasible"] for n in names):
        rows += [("fastest", [_fastest(modes[n]) for n in names]),
                 ("chips needed", [str(modes[n]["min_chips_needed"] or "-") for n in names])]
    width = max(len(k) for k, _ in rows)
    cols = [max(len(r[1][i]) for r in rows) for i in range(len(names))]
    target, lengths = _targets_and_lengths(args)
    chips = f" on {args.hardware}"
    if pairs:
        pools = ", ".join(f"{pool} on {' or '.join(c.strip() for c in chip.split(','))}" for pool, chip in
                          (("prefill", args.prefill_hardware or args.hardware),
                           ("decode", args.decode_hardware or args.hardware)))
        chips = f", {pools}" if args.mode == "disagg" else f" on {args.hardware} (aggregated), {pools}"
    lines = [f"problem: {args.model}{chips}, {lengths}, "
             + (f"{args.rate:g} req/s" if args.rate is not None else f"{args.demand_tps:g} output tok/s")
             + f", {target}, <= {args.max_chips} chips"]
    lines += [f"  {k:<{width}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(vals, cols)) for k, vals in rows]
    lines.append(("answer: " if d["feasible"] else "INFEASIBLE: ") + d["message"])
    if "gap" in d:
        gap = "n/a" if d["gap"] is None else f"{d['gap']:.3%}"
        ref = d["exhaustive_usd_per_mtok_output"]
        lines.append(f"verify: exhaustive {'none' if ref is None else f'${ref:.4g}/Mtok'}, gap {gap}"
                     + (" in joules per request" if d["objective"] == "energy" else ""))
    lines.append(f"solved by {d['method']} in {d['wall_time_s'] * 1e3:.0f} ms over {d['space_size']:,} configurations")
    return "\n".join(lines)


# ---------------------------------------------------------------- --maximise rate

#: flags that make no sense with ``--maximise rate`` (the rate is the answer; one chip; no cost objective)
_NOT_WITH_MAX_RATE = (("rate", "--rate"), ("demand_tps", "--demand-tps"), ("objective", "--objective"),
                      ("verify", "--verify"), ("emit", "--emit"), ("minimise", "--minimise"))


def _check_max_rate(args: argparse.Namespace):
    for attr, flag in _NOT_WITH_MAX_RATE:
        v = getattr(args, attr, None)
        if v is not None and v is not False:
            why = ("the rate is what --maximise rate finds" if attr in ("rate", "demand_tps") else
                   "it applies to the cheapest deployment for a demanded rate, not to --maximise rate")
            raise ConfigError(f"--maximise rate with {flag}: {why}; leave {flag} out")
    if "," in args.hardware:
        raise ConfigError("--maximise rate takes one chip in --hardware (a pair of pools: --prefill-hardware/"
                          "--decode-hardware)")
    return _check(args, demand=False)


def max_rate_answer(args: argparse.Namespace):
    """The :class:`costmodel.MaxRateAnswer` of ``--maximise rate``."""
    from ..optimizer.serving.max_rate import max_rate  # imports JAX: only when a search runs

    requests, spec = _check_max_rate(args)
    return max_rate(
        args.model, hardware_from(args, args.hardware), requests, max_chips=args.max_chips,
        ttft_s=None if args.ttft_ms is None else args.ttft_ms / 1e3, tpot_s=args.tpot_ms / 1e3,
        mode=args.mode or "auto", weights=args.weights, kv=args.kv, spec=spec, efficiency=args.efficiency,
        usd_per_chip_hour=args.price, method=args.method, scheduler=scheduler_from(args),
        ttft_percentile=args.ttft_percentile, tpot_percentile=args.tpot_percentile,
        prefill_hardware=args.prefill_hardware, decode_hardware=args.decode_hardware,
        electricity=electricity_from(args), step=args.step)


def run_max_rate(args: argparse.Namespace) -> int:
    """``costmodel optimize --isl I --osl O --max-chips N --maximise rate``: the highest rate within the targets."""
    d = max_rate_answer(args).to_dict()
    if args.json:
        print_json(d)
    else:
        print(render_max_rate(d, args))
    return 0


def render_max_rate(d: dict, args: argparse.Namespace) -> str:
    """The modes side by side (rate, output tok/s, chips, config, TTFT, TPOT), then the answer."""
    modes = d["modes"]
    names = list(modes)
    pairs = any(getattr(args, f, None) is not None for f in _PAIR_FLAGS)
    cfg = [_config_lines(modes[n]["config"], pairs) for n in names]
    rows = [("", names),
            ("rate", [f"{modes[n]['rate_per_s']:.4g} req/s" for n in names]),
            ("output tok/s", [f"{modes[n]['output_tokens_per_s']:,.0f}" for n in names]),
            ("chips", [str(modes[n]["chips"] or "-") for n in names]),
            ("config", [c[0] for c in cfg]), ("", [c[1] for c in cfg]),
            ("TTFT", [_ms(modes[n]["ttft_s"]) for n in names]),
            ("TPOT", [_ms(modes[n]["tpot_s"]) for n in names])]
    if not all(modes[n]["feasible"] for n in names):
        rows.append(("fastest", [_fastest(modes[n]) for n in names]))
    width = max(len(k) for k, _ in rows)
    cols = [max(len(r[1][i]) for r in rows) for i in range(len(names))]
    target, lengths = _targets_and_lengths(args)
    lines = [f"problem: the highest rate of {args.model} on {args.max_chips} {args.hardware}, {lengths}"
             + (f", {target}" if target else "")]
    lines += [f"  {k:<{width}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(vals, cols)) for k, vals in rows]
    lines.append(("answer: " if d["feasible"] else "INFEASIBLE: ") + d["message"])
    lines.append(f"solved by bisection on the rate ({d['method']} at each rate, tolerance {d['rtol']:.1%}) "
                 f"in {d['wall_time_s'] * 1e3:.0f} ms")
    return "\n".join(lines)
