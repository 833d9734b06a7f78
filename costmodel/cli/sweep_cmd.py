"""``costmodel sweep``: a grid or random sample of configurations to CSV/Parquet, or its frontier."""

from __future__ import annotations

import argparse
import math
import sys

from ..config import Parallel, Workload
from ..errors import ConfigError
from ..sweeps.axes import parse_axis
from ..pareto import FRONTIERS
from .common import add_efficiency_argument, fmt_seconds, positive_int

HELP = "evaluate a grid or random sample of configurations; write CSV/Parquet or the Pareto frontier"

#: most rows written as CSV (about 200 MB); larger sweeps keep the frontier, sample or write Parquet.
MAX_CSV_ROWS = 2_000_000

#: swept options -> input names (value lists like 1,2,4 or ranges like 1:1024:log11).
AXES = {"batch": "batch", "context": "context", "prompt": "prompt", "tp": "tp", "pp": "pp", "ep": "ep",
        "replicas": "replicas", "price": "usd_per_chip_hour", "weight_bytes": "weight_bytes",
        "kv_bytes": "kv_bytes", "hbm_bytes_per_s": "hbm_bytes_per_s", "flops_per_s": "flops_per_s",
        "hbm_bytes": "hbm_bytes"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="llama-3-70b", help="catalog model(s), comma-separated (default llama-3-70b)")
    p.add_argument("--hardware", default="h100-sxm", help="catalog chip(s), comma-separated (default h100-sxm)")
    p.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    for opt, name in AXES.items():
        p.add_argument(f"--{opt.replace('_', '-')}", dest=f"axis_{opt}", default=None, metavar="AXIS",
                       help=f"sweep {name}: a list 1,2,4 or a range lo:hi:N / lo:hi:logN")
    add_efficiency_argument(p)
    p.add_argument("--samples", type=positive_int, default=None,
                   help="draw N random configurations (each axis: a uniform choice among its values)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--pareto", nargs="?", const="cost-latency", choices=tuple(FRONTIERS), default=None,
                   help="keep only the exact Pareto frontier (default cost-latency)")
    p.add_argument("--chunk", type=positive_int, default=1 << 16, help="configurations per device call")
    p.add_argument("--float64", action="store_true", help="evaluate in float64 (default float32)")
    p.add_argument("--out", default=None, help="write rows to a .csv or .parquet file (default: print CSV)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from ..sweeps import sweep

    axes = {}
    for opt, name in AXES.items():
        text = getattr(args, f"axis_{opt}")
        if text is not None:
            try:
                axes[name] = parse_axis(name, text)
            except ConfigError as e:  # the library names the input; say which flag it came from
                flag = f"--{opt.replace('_', '-')}"
                msg = str(e)
                for prefix in (f"axis {name}: ", f"swept {name} "):
                    if msg.startswith(prefix):
                        raise ConfigError(f"{flag} {msg[len(prefix):]}") from None
                raise ConfigError(f"{flag}: {msg}") from None
    if not axes:
        raise ConfigError("give at least one axis to sweep, e.g. --batch 1:1024:log11 --tp 1,2,4,8")
    models, chips = [m.strip() for m in args.model.split(",")], [h.strip() for h in args.hardware.split(",")]
    rows = (args.samples or math.prod(len(a) for a in axes.values())) * len(models) * len(chips)
    csv = not args.out or args.out.lower().endswith(".csv")
    if csv and args.pareto is None and rows > MAX_CSV_ROWS:
        raise ConfigError(f"this sweep has {rows:,} rows, more than {MAX_CSV_ROWS:,} for CSV "
                          f"({'stdout' if not args.out else args.out}); keep the frontier (--pareto), "
                          "draw fewer (--samples N) or write a .parquet file")
    if args.out and not args.out.lower().endswith((".csv", ".parquet", ".pq")):
        raise ConfigError(f"--out {args.out!r}: use a .csv or .parquet file name")
    if args.out and not args.out.lower().endswith(".csv"):
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ConfigError(f"--out {args.out}: writing Parquet needs pyarrow (pip install pyarrow); "
                              "or write a .csv file") from None
    split = {k: 1 for k in ("tp", "pp", "ep", "replicas")}
    result = sweep(
        models, chips, axes,
        samples=args.samples, seed=args.seed, workload=Workload(phase=args.phase), parallel=Parallel(**split),
        efficiency=args.efficiency, pareto=args.pareto, chunk_size=args.chunk, dtype="float64" if args.float64 else "float32",
        progress=False if args.no_progress else None,
    )
    if args.out:
        result.save(args.out)
        print(f"wrote {len(result):,} rows ({result.evaluated:,} configurations evaluated in "
              f"{fmt_seconds(result.wall_s)}) to {args.out}", file=sys.stderr)
    else:
        result.to_csv(sys.stdout)
    return 0
