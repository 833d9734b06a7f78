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
    # block-scaled 4-bit floats: E2M1 elements plus one scale per block, counted in the bytes.
    # NVFP4: an FP8 (E4M3) scale per 16 elements (NVIDIA, "Introducing NVFP4 for Efficient and
    # Accurate Low-Precision Inference", developer blog, June 2025): 0.5 + 1/16 bytes.
    "nvfp4": 0.5625,
    # MXFP4: an 8-bit power-of-two (E8M0) scale per 32 elements (OCP Microscaling Formats (MX)
    # Specification v1.0, 2023, section 5): 0.5 + 1/32 bytes.
    "mxfp4": 0.53125,
}

#: Formats whose math runs natively in the same format when the chip supports it.
#: Integer weights are dequantised and multiplied in bf16 (weight-only
#: quantisation, docs/theory.md §5.1 and [S]), unless math is set explicitly.
_NATIVE_MATH = {"fp32": "fp32", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp4": "fp4",
                "nvfp4": "fp4", "mxfp4": "fp4", "int8": "bf16", "int4": "bf16"}


def check_precision(name: str, what: str = "precision") -> str:
    """Return ``name`` if it is a known format, else raise a :class:`PrecisionError`."""
    if name not in BYTES_PER_ELEMENT:
        raise PrecisionError(
            f"unknown {what} {name!r}; allowed: {', '.join(BYTES_PER_ELEMENT)}"
        )
    return name


def bytes_per_element(name: str) -> float:
    """Bytes per element of format ``name`` (``int4`` and ``fp4`` are half a byte)."""
    return BYTES_PER_ELEMENT[check_precision(name)]


def default_math_precision(weights: str) -> str:
    """The precision of the matrix math for weights stored in ``weights``.

    Float formats (bf16, fp8, fp4) compute natively, the block-scaled 4-bit
    formats (nvfp4, mxfp4) on the chip's fp4 tensor cores; integer formats are
    weight-only quantisation and compute in bf16.
    """
    return _NATIVE_MATH[check_precision(weights, "weight precision")]
