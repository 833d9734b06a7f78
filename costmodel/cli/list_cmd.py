"""``costmodel list``: the built-in models and chips.

Reads the catalog only (specs, no compiled model): listing imports neither JAX nor the compile layer.
"""

from __future__ import annotations

import argparse

from ..specs import ModelSpec, list_hardware, list_models, load_hardware, load_model
from .common import print_json

HELP = "list the built-in models or chips"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("models", "hardware"), nargs="?", default="models")
    p.add_argument("--json", action="store_true", help="print as JSON")


def attention_kind(m: ModelSpec) -> str:
    """``mla``; else ``mha`` (a key/value head per query head), ``mqa`` (one) or ``gqa`` (groups)."""
    if m.attention == "mla":
        return "mla"
    if m.n_kv_heads == m.n_heads:
        return "mha"
    return "mqa" if m.n_kv_heads == 1 else "gqa"


def local_attention(m: ModelSpec) -> str:
    """Windowed layers as ``layers/total kind window`` (``18/36 sliding 128``), or ``-``."""
    if not m.n_window_layers:
        return "-"
    return f"{m.n_window_layers}/{m.n_layers} {m.window_kind} {m.attention_window}"


def run(args: argparse.Namespace) -> int:
    if args.what == "models":
        rows = []
        for name in list_models():
            m = load_model(name)
            rows.append({"name": name, "attention": attention_kind(m), "mlp": m.mlp, "layers": m.n_layers,
                         "d_model": m.d_model, "heads": f"{m.n_heads}/{m.n_kv_heads}",
                         "local_attention": local_attention(m), "precision": m.native_precision})
    else:
        rows = []
        for name in list_hardware():
            h = load_hardware(name)
            rows.append({"name": name, "bf16_tflops": h.flops_per_s.get("bf16", 0) / 1e12,
                         "hbm_gib": h.hbm_bytes / 2**30, "hbm_tb_per_s": h.hbm_bytes_per_s / 1e12,
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
