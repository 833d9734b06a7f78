"""``costmodel list``: the built-in models and chips."""

from __future__ import annotations

import argparse

from ..specs import list_hardware, list_models, load_hardware, load_model
from .common import fmt_bytes, print_json

HELP = "list the built-in models or chips"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("models", "hardware"), nargs="?", default="models")
    p.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace) -> int:
    if args.what == "models":
        rows = []
        for name in list_models():
            m = load_model(name)
            rows.append({"name": name, "attention": m.attention, "mlp": m.mlp, "layers": m.n_layers,
                         "d_model": m.d_model, "heads": f"{m.n_heads}/{m.n_kv_heads}",
                         "precision": m.native_precision})
    else:
        rows = []
        for name in list_hardware():
            h = load_hardware(name)
            rows.append({"name": name, "bf16_tflops": h.flops_per_s.get("bf16", 0) / 1e12,
                         "hbm": fmt_bytes(h.hbm_bytes), "hbm_tb_per_s": h.hbm_bytes_per_s / 1e12,
                         "precisions": ",".join(h.flops_per_s), "usd_per_chip_hour": h.usd_per_chip_hour})
    if args.json:
        print_json(rows)
        return 0
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(f"{r[k]:g}" if isinstance(r[k], float) else str(r[k])) for r in rows)) for k in keys}
    print("  ".join(f"{k:<{widths[k]}}" for k in keys))
    for r in rows:
        print("  ".join(f"{(f'{r[k]:g}' if isinstance(r[k], float) else str(r[k])):<{widths[k]}}" for k in keys))
    return 0
