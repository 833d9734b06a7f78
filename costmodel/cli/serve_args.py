"""The request-level flags of ``costmodel predict`` (``--isl`` switches it to :func:`costmodel.serve`).

``costmodel predict --isl 1024 --osl 1024 --concurrency 64 --tp 8`` answers TTFT,
TPOT, latency, throughput and cost per million input and output tokens
(docs/serving.md). Bad combinations are one-line errors with exit status 2.
"""

from __future__ import annotations

import argparse
import math

from ..config import Parallel
from ..errors import ConfigError
from ..symbolic import Rules
from .common import (add_length_arguments, add_scheduler_arguments, electricity_from, energy_line, fmt_bytes,
                     fmt_seconds, fraction, hardware_from, parallel_from, precision_from, print_json, ranged,
                     requests_from, scheduler_from)

__all__ = ["add_arguments", "wanted", "run", "render"]

_POOL_FLAGS = ("prefill_tp", "prefill_ep", "prefill_replicas", "prefill_hardware", "decode_tp", "decode_ep",
               "decode_replicas", "decode_hardware")
_SERVING_FLAGS = ("osl", "prefix_hit", "isl_cv", "osl_cv", "lengths", "static_batch", "concurrency", "rate", "chunk",
                  "max_batch", "max_seqs",
                  "max_batched_tokens", "kv_reservation",
                  "spec_draft", "spec_len", "spec_accept", "spec_accept_len") + _POOL_FLAGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the serving flags to the ``predict`` parser."""
    g = p.add_argument_group("serving (request level: --isl switches predict to TTFT/TPOT/cost per request)")
    g.add_argument("--isl", type=ranged("input_tokens"), default=None, help="input (prompt) tokens per request")
    g.add_argument("--osl", type=ranged("output_tokens"), default=None, help="output tokens per request (with --isl)")
    g.add_argument("--prefix-hit", type=fraction, default=None,
                   help="fraction of the prompt served from the prefix cache, in [0, 1) (default 0)")
    add_length_arguments(g)
    load = g.add_mutually_exclusive_group()
    load.add_argument("--static-batch", type=ranged("batch"), default=None, metavar="B",
                      help="B requests start together (static batching)")
    load.add_argument("--concurrency", type=ranged("concurrency"), default=None, metavar="N",
                      help="closed loop: N requests in flight (default: --batch)")
    load.add_argument("--rate", type=ranged("rate_per_s"), default=None, metavar="R",
                      help="open loop: Poisson arrivals, requests/s")
    load.add_argument("--offline", action="store_true", help="all requests queued: the largest batch that fits")
    g.add_argument("--chunk", type=ranged("chunk_tokens"), default=None,
                   help="chunked-prefill budget: prompt tokens per step (default 8192)")
    g.add_argument("--max-batch", type=ranged("max_batch"), default=None,
                   help="cap on decoding sequences per replica (default: what fits in memory)")
    add_scheduler_arguments(g)
    g.add_argument("--disagg", action="store_true",
                   help="disaggregated prefill and decode pools (needs --prefill-tp and --decode-tp)")
    for pool in ("prefill", "decode"):
        g.add_argument(f"--{pool}-tp", type=ranged("tp", integer=True), default=None,
                       help=f"{pool} pool: tensor-parallel degree")
        g.add_argument(f"--{pool}-ep", type=ranged("ep", integer=True), default=None,
                       help=f"{pool} pool: expert-parallel degree")
        g.add_argument(f"--{pool}-replicas", type=ranged("replicas", integer=True), default=None,
                       help=f"{pool} pool: replicas")
        g.add_argument(f"--{pool}-hardware", default=None, metavar="CHIP",
                       help=f"{pool} pool: its chip (default --hardware); the KV cache then crosses the slower "
                            f"of the two chips' scale-out links")
    g.add_argument("--spec-draft", default=None, metavar="MODEL|mtp",
                   help="speculative decoding with a catalog draft model, or mtp (multi-token prediction heads)")
    g.add_argument("--spec-len", type=ranged("spec_length", integer=True), default=None, metavar="G",
                   help="draft tokens per step")
    acc = g.add_mutually_exclusive_group()
    acc.add_argument("--spec-accept", type=fraction, default=None, metavar="A",
                     help="probability a draft token is accepted, in [0, 1)")
    acc.add_argument("--spec-accept-len", type=ranged("accepted_length"), default=None, metavar="L",
                     help="mean accepted tokens per step, in [1, G+1)")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the request-level answer is asked for (``--isl`` or any serving flag)."""
    return args.isl is not None or args.offline or args.disagg or any(
        getattr(args, f) is not None for f in _SERVING_FLAGS)


def _request_objects(args: argparse.Namespace):
    import costmodel as cm

    if args.isl is None and args.lengths is None:
        given = [f"--{f.replace('_', '-')}" for f in _SERVING_FLAGS if getattr(args, f) is not None]
        given += [f for f, on in (("--offline", args.offline), ("--disagg", args.disagg)) if on]
        raise ConfigError(f"{', '.join(given)} need --isl (input tokens per request) and --osl, or --lengths FILE")
    if args.isl is not None and args.osl is None:
        raise ConfigError("--isl needs --osl (output tokens per request)")
    req = requests_from(args, "predict")
    if args.static_batch is not None:
        load = cm.Load.static(args.static_batch)
    elif args.rate is not None:
        load = cm.Load.rate(args.rate, args.max_batch)
    elif args.offline:
        load = cm.Load.offline(args.max_batch)
    else:
        load = cm.Load.concurrency(args.concurrency if args.concurrency is not None else args.batch, args.max_batch)
    disagg = None
    pools = {f: getattr(args, f) for f in _POOL_FLAGS}
    if args.disagg:
        missing = [f"--{f.replace('_', '-')}" for f in ("prefill_tp", "decode_tp") if pools[f] is None]
        if missing:
            raise ConfigError(f"--disagg needs the pool sizes: give {' and '.join(missing)} "
                              "(and optionally --prefill-ep/--decode-ep, --prefill-replicas/--decode-replicas)")

        def pool(name: str):
            return cm.Pool(Parallel(tp=pools[f"{name}_tp"], ep=pools[f"{name}_ep"] or 1,
                                    replicas=pools[f"{name}_replicas"] or 1),
                           hardware=hardware_from(args, pools[f"{name}_hardware"]))

        disagg = cm.Disaggregated(prefill=pool("prefill"), decode=pool("decode"))
    elif any(v is not None for v in pools.values()):
        raise ConfigError("--prefill-*/--decode-* pool sizes need --disagg")
    spec = None
    if args.spec_draft is not None:
        if args.spec_len is None or (args.spec_accept is None and args.spec_accept_len is None):
            raise ConfigError("--spec-draft needs --spec-len G and one of --spec-accept A or --spec-accept-len L")
        spec = cm.Speculative(args.spec_draft, args.spec_len, accept=args.spec_accept,
                              accepted_length=args.spec_accept_len)
    elif args.spec_len is not None or args.spec_accept is not None or args.spec_accept_len is not None:
        raise ConfigError("--spec-len/--spec-accept/--spec-accept-len need --spec-draft MODEL|mtp")
    return req, load, disagg, spec


def run(args: argparse.Namespace) -> int:
    """Answer ``costmodel predict --isl ...``: print the serving figures (or JSON)."""
    from ..serving.api import serve

    req, load, disagg, spec = _request_objects(args)
    if args.phase != "decode":
        raise ConfigError("--phase prefill does not apply with --isl: a request has both phases")
    s = serve(args.model, hardware_from(args, args.hardware), req, load,
              parallel=parallel_from(args),
              precision=precision_from(args), efficiency=args.efficiency, usd_per_chip_hour=args.price,
              chunk_tokens=args.chunk or 8192, disagg=disagg, spec=spec, scheduler=scheduler_from(args),
              rules=Rules("decode", args.combine, args.overlap, args.expert_fetch, layout=args.layout,
                          attention_sharding=args.attention_sharding, step=args.step or "roofline"),
              electricity=electricity_from(args))
    if args.json:
        print_json(s.to_dict())
    else:
        print(render(s, args, req))
        if not s.fits:
            print("warning: does not fit in memory at this batch; use more chips, a smaller batch or lower precision")
    return 0


def _opt(v, fmt) -> str:
    return "unbounded (saturated)" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt(v)


def _tails(d: dict, metric: str) -> str:
    """``"  (mean; P50 ..., P90 ..., P99 ...)"``: a metric's percentiles after its mean in a row."""
    from ..serving.percentiles import PERCENTILES

    return "  (mean; " + ", ".join(f"P{q} {_opt(d[f'{metric}_p{q}_s'], fmt_seconds)}" for q in PERCENTILES) + ")"


def _lengths(req, args: argparse.Namespace) -> str:
    """How the request lengths were given: fixed, lognormal (mean and CV), or a file (its means)."""
    if args.lengths is not None:
        return (f"{req.input_tokens:,.4g} in, {req.output_tokens:,.4g} out on average "
                f"({len(req.classes)} classes from {args.lengths})")
    cv = ("" if not (args.isl_cv or args.osl_cv)
          else f" (lognormal, CV {args.isl_cv or 0:g} in, {args.osl_cv or 0:g} out)")
    return f"{args.isl:g} in, {args.osl:g} out{cv}"


def _chips_of(args: argparse.Namespace) -> str:
    """The chip, or the two pools' chips when they differ."""
    p, d = args.prefill_hardware or args.hardware, args.decode_hardware or args.hardware
    return args.hardware if p == d else f"{p} (prefill) + {d} (decode)"


def render(s, args: argparse.Namespace, req) -> str:
    """A readable table of a serving prediction."""
    d = s.to_dict()
    load = s.details["load"]
    rows = [
        ("model / chip", f"{args.model} on {_chips_of(args)}, {s.mode}, "
                         f"{d['chips']} chip{'' if d['chips'] == 1 else 's'}"),
        ("requests", f"{_lengths(req, args)}, prefix hit {args.prefix_hit or 0:g}; load {load}"),
        ("TTFT", _opt(d["ttft_s"], fmt_seconds) + _tails(d, "ttft")),
        ("TPOT", "none: one output token" if d["tokens_per_s_per_user"] is None
         else f"{fmt_seconds(d['tpot_s'])}  ({d['tokens_per_s_per_user']:,.1f} tok/s per user)" + _tails(d, "tpot")),
        ("end to end", _opt(d["e2e_latency_s"], fmt_seconds) + _tails(d, "e2e")),
        ("throughput", f"{d['output_tokens_per_s']:,.0f} output tok/s ({d['output_tokens_per_s_per_chip']:,.0f} "
                       f"per chip), {d['input_tokens_per_s']:,.0f} input tok/s, {d['requests_per_s']:.4g} req/s"),
        ("decode batch", f"{d['decode_batch']:,.1f} sequences per replica"),
    ]
    if d["utilisation"] is not None:
        rows.append(("utilisation", f"{d['utilisation']:.1%} of the largest sustainable rate "
                                    f"{d['max_rate_per_s']:.4g} req/s" + ("  SATURATED" if d["saturated"] else "")))
    rows += [
        ("cost", f"${d['usd_per_mtok_output']:.4g}/M output tok, ${d['usd_per_mtok_input']:.4g}/M input tok, "
                 f"${d['usd_per_request']:.4g} per request"),
        ("energy", energy_line(d)),
        ("memory / chip", fmt_bytes(d["memory_bytes_per_chip"]) + ("" if d["fits"] else "  DOES NOT FIT")),
    ]
    rows += [(f"  {k}", fmt_seconds(v)) for k, v in d["breakdown_s"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

