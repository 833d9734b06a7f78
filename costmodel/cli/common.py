"""Options and formatting shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from typing import Any

from ..config import DEFAULT_EFFICIENCY, Parallel, Precision
from ..errors import ConfigError
from ..limits import RANGES, fmt_bound

__all__ = ["add_spec_arguments", "add_parallel_arguments", "add_efficiency_argument", "add_scheduler_arguments",
           "scheduler_from", "parallel_from", "precision_from",
           "print_json", "fmt_seconds", "fmt_bytes", "positive_int", "fraction", "ranged", "cli_words"]


def ranged(name: str, *, integer: bool = False, scale: float = 1.0, unit: str | None = None) -> Callable[[str], Any]:
    """argparse type: a number in the physical range of input ``name`` (:data:`costmodel.limits.RANGES`).

    ``scale`` converts the library's unit to the flag's (1e3 for a ``-ms`` flag given seconds).
    """
    lo, hi, lib_unit = RANGES[name]
    lo, hi, unit = lo * scale, hi * scale, lib_unit if unit is None else unit
    kind = "a whole number" if integer else "a number"

    def parse(text: str) -> Any:
        try:
            v = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} in [{fmt_bound(lo)}, {fmt_bound(hi)}] {unit}, "
                                             f"got {_short(repr(text))}") from None
        if not ((integer or math.isfinite(v)) and lo <= v <= hi):  # math.isfinite overflows on huge ints
            raise argparse.ArgumentTypeError(f"must be {kind} in [{fmt_bound(lo)}, {fmt_bound(hi)}] {unit}, "
                                             f"got {_short(text)}")
        return v

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _short(text: str) -> str:
    """``text``, or its start and length when it is too long to echo."""
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def add_efficiency_argument(p: argparse.ArgumentParser) -> None:
    """``--efficiency``: the same option and default for every subcommand that evaluates the model."""
    p.add_argument("--efficiency", default=DEFAULT_EFFICIENCY, metavar="ideal|calibrated|kernels|PATH",
                   help="efficiency profile: calibrated (fitted to published measurements, default; "
                        "docs/calibration.md), kernels (the operator step's kernels fitted to measured kernel "
                        "latencies; docs/theory.md §20.4), ideal (the roofline lower bound) or a profile JSON file")
    p.add_argument("--engine", default=None, choices=("vllm", "trtllm", "sglang"),
                   help="the serving engine's rules at its default settings: its memory rule for the KV cache "
                        "(vLLM gpu_memory_utilization 0.9 of total memory, TensorRT-LLM kv_cache_free_gpu_memory_fraction "
                        "0.9 of the memory left after weights, SGLang mem_fraction_static 0.88; docs/theory.md §4.3) "
                        "and, with --isl, its scheduler: KV reservation and caps (docs/serving.md §19.9); default: "
                        "the profile's own memory rule (calibrated: vllm; ideal: all of HBM) and no caps")


def add_scheduler_arguments(g) -> None:
    """The scheduler flags of the serving commands: each overrides the --engine preset's rule."""
    from ..engines import KV_RESERVATIONS

    g.add_argument("--max-seqs", type=ranged("max_seqs", integer=True), default=None,
                   help="most running sequences per replica (vLLM max_num_seqs, TensorRT-LLM max_batch_size, "
                        "SGLang max_running_requests); default: the --engine preset's, else no cap")
    g.add_argument("--max-batched-tokens", type=ranged("max_batched_tokens", integer=True), default=None,
                   help="most tokens a step processes, decodes first (vLLM max_num_batched_tokens, TensorRT-LLM "
                        "max_num_tokens, SGLang chunked_prefill_size); default: the --engine preset's, else no cap")
    g.add_argument("--kv-reservation", choices=KV_RESERVATIONS, default=None,
                   help="growing: KV pages as sequences grow (vLLM, SGLang); peak: input + output reserved at "
                        "admission (TensorRT-LLM); default: the --engine preset's, else growing")


def add_length_arguments(g) -> None:
    """The request-length distribution flags of the serving commands (docs/serving.md §19.10)."""
    g.add_argument("--isl-cv", type=ranged("length_cv"), default=None, metavar="CV",
                   help="input lengths lognormal with mean --isl and this coefficient of variation (default 0: fixed)")
    g.add_argument("--osl-cv", type=ranged("length_cv"), default=None, metavar="CV",
                   help="output lengths lognormal with mean --osl and this coefficient of variation (default 0: fixed)")
    g.add_argument("--lengths", default=None, metavar="FILE",
                   help="a CSV of input,output token counts, one request a row (a trace), instead of --isl/--osl")


def requests_from(args: argparse.Namespace, command: str):
    """The :class:`costmodel.Requests` of ``--isl/--osl`` (with ``--isl-cv/--osl-cv``) or ``--lengths``."""
    import costmodel as cm

    hit = args.prefix_hit or 0.0
    if args.lengths is not None:
        if args.isl is not None or args.osl is not None or args.isl_cv is not None or args.osl_cv is not None:
            raise ConfigError("--lengths gives the request lengths; leave out --isl/--osl/--isl-cv/--osl-cv")
        return cm.Requests.from_csv(args.lengths, hit)
    if args.isl is None or args.osl is None:
        raise ConfigError(f"{command} needs --isl and --osl (tokens per request) or --lengths FILE")
    if args.isl_cv or args.osl_cv:
        return cm.Requests.lognormal(args.isl, args.osl, args.isl_cv or 0.0, args.osl_cv or 0.0, hit)
    return cm.Requests(args.isl, args.osl, hit)


def scheduler_from(args: argparse.Namespace):
    """The scheduler of ``--engine`` (or none) with the flags' overrides."""
    from ..engines import UNBOUNDED, engine

    base = engine(args.engine).scheduler(args.hardware) if getattr(args, "engine", None) else UNBOUNDED
    return base.with_overrides(max_seqs=args.max_seqs, max_batched_tokens=args.max_batched_tokens,
                               kv_reservation=args.kv_reservation)


#: library parameter -> command-line flag, for messages the library writes in its own words.
_FLAGS = {"max_chips": "--max-chips", "weights": "--weights", "kv": "--kv", "math": "--math",
          "usd_per_chip_hour": "--price", "demand_tokens_per_s": "--demand-tps"}
_ASSIGN = re.compile(r"\b(" + "|".join(_FLAGS) + r")=('?)([^\s;,)']+(?:,[^\s;)']+)*)\2")
_BARE = re.compile(r"\b(" + "|".join(k for k in _FLAGS if "_" in k) + r")\b(?!=)")


def cli_words(text: str) -> str:
    """``text`` with the library's parameter spellings (``max_chips``, ``weights='fp8'``) as flags."""
    text = _ASSIGN.sub(lambda g: f"{_FLAGS[g.group(1)]} {g.group(3)}", text)
    return _BARE.sub(lambda g: _FLAGS[g.group(1)], text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1) (a prefix-hit fraction, an acceptance probability)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {_short(repr(text))}") from None
    if not (0 <= v < 1):  # NaN fails the comparison
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {_short(text)}")
    return v


def add_spec_arguments(p: argparse.ArgumentParser, *, model: str, hardware: str) -> None:
    """``--model``, ``--hardware``, ``--price`` and the precision options."""
    p.add_argument("--model", default=model,
                   help=f"catalog model name or path to a Hugging Face config.json (default {model}; "
                        "see `costmodel list models`)")
    p.add_argument("--hardware", default=hardware,
                   help=f"catalog chip (default {hardware}; see `costmodel list hardware`); optimize takes a "
                        "comma-separated list and ranks the chips by cost; plot chips draws one curve each")
    p.add_argument("--price", type=ranged("usd_per_chip_hour"), default=None,
                   help="USD per chip-hour (default: the chip's catalog price)")
    p.add_argument("--math", default=None,
                   help="precision of the matrix math (default: the weights' float format, bf16 for int weights)")


def add_electricity_arguments(p: argparse.ArgumentParser) -> None:
    """``--usd-per-kwh``, ``--pue``, ``--price-basis`` and the board-power overrides (docs/theory.md §21)."""
    from ..config import DEFAULT_PUE, DEFAULT_USD_PER_KWH, PRICE_BASES

    g = p.add_argument_group("power and electricity (docs/theory.md §21)")
    g.add_argument("--usd-per-kwh", type=ranged("usd_per_kwh"), default=None, metavar="P",
                   help=f"price of electricity (default {DEFAULT_USD_PER_KWH:g}, the US industrial average, EIA 2023)")
    g.add_argument("--pue", type=ranged("pue"), default=None,
                   help=f"facility energy over IT energy (default {DEFAULT_PUE:g}, Uptime Institute survey 2024)")
    g.add_argument("--price-basis", choices=PRICE_BASES, default=None,
                   help="rental (default): the chip price includes power, the electricity is shown beside the cost; "
                        "owned: the chip price excludes it, the electricity is added to the cost")
    for name, what in (("max", "board power at full load"), ("idle", "board power when idle"),
                       ("host", "host power (CPUs, NICs, fans) per chip")):
        g.add_argument(f"--{name}-power-w", type=ranged("power_w"), default=None, metavar="W",
                       help=f"{what} in W (default: the catalog's, cited per chip)")


def energy_line(d: dict) -> str:
    """Board power per chip, joules per output and/or input token and the electricity of an answer's dict
    (``predict``, ``optimize`` and the serving figures share the keys; docs/theory.md §21)."""
    if d["power_w_per_chip"] is None:
        return "no board power for this chip in the catalog (give --max-power-w and --idle-power-w)"
    joules = [(d[f"joules_per_{kind}_token"], kind) for kind in ("output", "input")
              if d.get(f"joules_per_{kind}_token") is not None]
    e = d["electricity"]
    where = "owned chips: added to the cost" if e["in_usd_per_mtok"] else "rental: already in the chip price"
    return (f"{d['power_w_per_chip']:,.0f} W per chip, " + ", ".join(f"{j:.3g} J per {k} token" for j, k in joules)
            + f"; electricity ${d['usd_per_mtok_energy']:.3g}/M {joules[0][1]} tokens at ${e['usd_per_kwh']:g}/kWh, "
            f"PUE {e['pue']:g} ({where})")


def electricity_from(args: argparse.Namespace):
    """The :class:`costmodel.Electricity` of ``--usd-per-kwh``, ``--pue`` and ``--price-basis``."""
    from ..config import Electricity

    given = {k: v for k in ("usd_per_kwh", "pue", "price_basis") if (v := getattr(args, k, None)) is not None}
    return Electricity(**given)


def hardware_from(args: argparse.Namespace, name):
    """``name`` (a chip), with the board-power overrides of ``--max-power-w``, ``--idle-power-w`` and
    ``--host-power-w`` when any is given (a :class:`HardwareSpec`), else ``name`` unchanged."""
    over = {f"{k}_power_w": v for k in ("max", "idle", "host") if (v := getattr(args, f"{k}_power_w", None)) is not None}
    if not over or name is None:
        return name
    from ..specs import load_hardware

    return load_hardware(name).replace(**over)


def add_parallel_arguments(p: argparse.ArgumentParser) -> None:
    """``--tp``, ``--pp``, ``--ep`` and ``--replicas``."""
    p.add_argument("--tp", type=ranged("tp", integer=True), default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--pp", type=ranged("pp", integer=True), default=1, help="pipeline stages (default 1)")
    p.add_argument("--ep", type=ranged("ep", integer=True), default=1, help="expert-parallel degree (default 1)")
    p.add_argument("--replicas", type=ranged("replicas", integer=True), default=1,
                   help="data-parallel replicas (default 1)")
    p.add_argument("--redundant-experts", type=ranged("redundant_experts", integer=True), default=0, metavar="R",
                   help="extra copies of routed experts over the expert groups: --ep divides experts + R "
                        "(default 0; docs/theory.md §3.2)")
    p.add_argument("--expert-imbalance", type=ranged("expert_imbalance"), default=1.0, metavar="X",
                   help="routed tokens of the busiest expert group over the mean (default 1, balanced; "
                        "docs/theory.md §3.2)")


def parallel_from(args: argparse.Namespace) -> Parallel:
    """The :class:`Parallel` of ``--tp``, ``--pp``, ``--ep``, ``--replicas``, the mesh and the expert placement."""
    return Parallel(tp=args.tp, pp=args.pp, ep=args.ep, replicas=args.replicas, mesh=getattr(args, "mesh", None),
                    redundant_experts=args.redundant_experts, expert_imbalance=args.expert_imbalance)


def precision_from(args: argparse.Namespace) -> Precision:
    """The :class:`Precision` named by ``--weights``, ``--kv`` and ``--math``."""
    return Precision(weights=args.weights, kv=args.kv, math=args.math)


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None``: JSON has no NaN or Infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Print ``obj`` as standard JSON (non-finite numbers become ``null``)."""
    print(json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False))


def fmt_seconds(s: float) -> str:
    """Seconds with a readable unit (s, ms, us)."""
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def fmt_bytes(b: float) -> str:
    """Bytes with a readable decimal unit (TB, GB, MB, kB)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"
