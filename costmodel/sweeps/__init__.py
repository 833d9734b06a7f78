"""Sweeps over design spaces: grids or random samples, chunked, sharded over every JAX device.

``costmodel.sweep`` is the entry point; this package holds it with its axes,
result type and reductions. Names that import JAX load on first use, so the
command line can parse axes without starting JAX.

Example:
    >>> import costmodel as cm
    >>> r = cm.sweep("llama-3-70b", "h100-sxm", {"batch": [1, 16, 256], "tp": [4, 8]}, progress=False)
    >>> len(r)
    6
"""

from .axes import LogUniform, Uniform, Values, parse_axis

_LAZY = {"sweep": "driver", "DEFAULT_OUTPUTS": "driver", "SweepResult": "result"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'costmodel.sweeps' has no attribute {name!r}")


__all__ = ["sweep", "SweepResult", "Uniform", "LogUniform", "Values", "parse_axis", "DEFAULT_OUTPUTS"]
