"""Numeric formats: bytes per element and the precision the math runs in."""

from __future__ import annotations

from ..errors import PrecisionError

__all__ = ["BYTES_PER_ELEMENT", "bytes_per_element", "default_math_precision", "check_precision"]

#: Storage size of one element, in bytes.
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

#: Formats whose math runs natively in the same format when the chip supports it.
#: Integer weights are dequantised and multiplied in bf16 (weight-only
#: quantisation, THEORY.md section 5.1 and [S]), unless math is set explicitly.
_NATIVE_MATH = {"fp32": "fp32", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp4": "fp4",
                "int8": "bf16", "int4": "bf16"}


def check_precision(name: str, what: str = "precision") -> str:
    """Return ``name`` if it is a known format, else raise a :class:`PrecisionError`."""
    if not isinstance(name, str) or name not in BYTES_PER_ELEMENT:
        raise PrecisionError(
            f"unknown {what} {name!r}; allowed: {', '.join(BYTES_PER_ELEMENT)}"
        )
    return name


def bytes_per_element(name: str) -> float:
    """Bytes per element of format ``name`` (``int4`` and ``fp4`` are half a byte)."""
    return BYTES_PER_ELEMENT[check_precision(name)]


def default_math_precision(weights: str) -> str:
    """The precision of the matrix math for weights stored in ``weights``.

    Float formats (bf16, fp8, fp4) compute natively; integer formats are
    weight-only quantisation and compute in bf16.
    """
    return _NATIVE_MATH[check_precision(weights, "weight precision")]
