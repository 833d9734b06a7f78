"""Options and formatting shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ..config import Precision

__all__ = ["add_spec_arguments", "add_parallel_arguments", "precision_from", "print_json", "fmt_seconds",
           "fmt_bytes", "positive_int", "positive_float"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def add_spec_arguments(p: argparse.ArgumentParser, *, model: str, hardware: str) -> None:
    """``--model``, ``--hardware``, ``--price`` and the precision options."""
    p.add_argument("--model", default=model,
                   help=f"catalog model name or path to a Hugging Face config.json (default {model}; "
                        "see `costmodel list models`)")
    p.add_argument("--hardware", default=hardware,
                   help=f"catalog chip (default {hardware}; see `costmodel list hardware`)")
    p.add_argument("--price", type=positive_float, default=None,
                   help="USD per chip-hour (default: the chip's catalog price)")
    p.add_argument("--math", default=None,
                   help="precision of the matrix math (default: the weights' float format, bf16 for int weights)")


def add_parallel_arguments(p: argparse.ArgumentParser) -> None:
    """``--tp``, ``--pp``, ``--ep`` and ``--replicas``."""
    p.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--pp", type=positive_int, default=1, help="pipeline stages (default 1)")
    p.add_argument("--ep", type=positive_int, default=1, help="expert-parallel degree (default 1)")
    p.add_argument("--replicas", type=positive_int, default=1, help="data-parallel replicas (default 1)")


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
