"""What is served and under which load: requests, load modes, pools, speculation (docs/serving.md §19).

Plain, validated, immutable data; no JAX. A bad value raises a
:class:`~costmodel.errors.ConfigError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config import Parallel
from ..errors import ConfigError
from ..specs import ModelSpec

__all__ = ["Requests", "Load", "Pool", "Disaggregated", "Speculative", "LOAD_KINDS"]

LOAD_KINDS = ("static", "concurrency", "rate", "offline")


def _number(name: str, v: Any, *, low: float = 0.0, low_open: bool = True, high: float | None = None,
            high_open: bool = True) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low)
    if high is not None:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        raise ConfigError(f"{name} must be a finite number {lo}{hi}, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Requests:
    """Requests of ``input_tokens`` prompt tokens and ``output_tokens`` generated tokens.

    A mix of classes (:meth:`mix`) keeps each class's ``(weight, input, output)``;
    ``input_tokens`` and ``output_tokens`` are then the weighted means.

    Attributes:
        input_tokens: prompt tokens per request (I).
        output_tokens: generated tokens per request (O), the first one included.
        prefix_hit: fraction of the prompt found in the prefix cache (h, in [0, 1)):
            only ``I·(1-h)`` tokens are prefilled.
        classes: ``((weight, input, output), ...)`` with weights summing to 1.
    """

    input_tokens: float = 1024
    output_tokens: float = 1024
    prefix_hit: float = 0.0
    classes: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        _number("input_tokens", self.input_tokens)
        _number("output_tokens", self.output_tokens)
        _number("prefix_hit", self.prefix_hit, low_open=False, high=1.0)
        if not self.classes:
            object.__setattr__(self, "classes", ((1.0, float(self.input_tokens), float(self.output_tokens)),))

    @classmethod
    def mix(cls, classes: Any, prefix_hit: float = 0.0) -> "Requests":
        """Requests drawn from classes ``[(weight, input_tokens, output_tokens), ...]`` (weights > 0)."""
        try:
            rows = [tuple(c) for c in classes]
        except TypeError:
            raise ConfigError(f"classes must be a list of (weight, input_tokens, output_tokens), got {classes!r}") from None
        if not rows or any(len(r) != 3 for r in rows):
            raise ConfigError(f"classes must be a non-empty list of (weight, input_tokens, output_tokens), got {classes!r}")
        for w, i, o in rows:
            _number("class weight", w)
            _number("class input_tokens", i)
            _number("class output_tokens", o)
        total = sum(r[0] for r in rows)
        norm = tuple((float(w) / total, float(i), float(o)) for w, i, o in rows)
        mean_in = sum(w * i for w, i, _ in norm)
        mean_out = sum(w * o for w, _, o in norm)
        return cls(mean_in, mean_out, prefix_hit, norm)

    @property
    def prefill_tokens(self) -> float:
        """Mean prompt tokens prefilled per request, ``I·(1-h)``."""
        return self.input_tokens * (1 - self.prefix_hit)

    @property
    def prefill_tokens_cv2(self) -> float:
        """Squared coefficient of variation of the prefilled tokens over the classes (0 for one class)."""
        m = self.prefill_tokens
        second = sum(w * (i * (1 - self.prefix_hit)) ** 2 for w, i, _ in self.classes)
        return max(second / m**2 - 1, 0.0)


@dataclass(frozen=True)
class Load:
    """How requests arrive. Build with :meth:`static`, :meth:`concurrency`, :meth:`rate` or :meth:`offline`.

    Attributes:
        kind: ``"static"``, ``"concurrency"``, ``"rate"`` or ``"offline"``.
        value: the batch (static), requests in flight (concurrency) or requests/s (rate) of the
            whole deployment, split evenly over replicas; ``None`` offline.
        max_batch: a cap on decoding sequences per replica (``None``: what fits in memory).
    """

    kind: str
    value: float | None = None
    max_batch: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOAD_KINDS:
            raise ConfigError(f"load kind {self.kind!r} is not allowed; choose one of {', '.join(LOAD_KINDS)}")
        names = {"static": "static batch", "concurrency": "concurrency", "rate": "rate"}
        if self.kind in names:
            _number(names[self.kind], self.value)
        elif self.value is not None:
            raise ConfigError(f"an offline load takes no value, got {self.value!r}")
        if self.max_batch is not None:
            _number("max_batch", self.max_batch)

    @classmethod
    def static(cls, batch: float) -> "Load":
        """``batch`` requests start together and run to completion (static batching)."""
        return cls("static", batch)

    @classmethod
    def concurrency(cls, n: float, max_batch: float | None = None) -> "Load":
        """Closed loop: ``n`` requests in flight; a finished request is replaced at once."""
        return cls("concurrency", n, max_batch)

    @classmethod
    def rate(cls, requests_per_s: float, max_batch: float | None = None) -> "Load":
        """Open loop: Poisson arrivals at ``requests_per_s``."""
        return cls("rate", requests_per_s, max_batch)

    @classmethod
    def offline(cls, max_batch: float | None = None) -> "Load":
        """Every request queued: the engine runs at the largest batch that fits (or ``max_batch``)."""
        return cls("offline", None, max_batch)


@dataclass(frozen=True)
class Pool:
    """One pool of a disaggregated deployment: its split (replicas included) and batch.

    Attributes:
        parallel: tp/pp/ep of one replica and the number of replicas.
        batch: prefill pool: prompts per prefill (default 1); decode pool: a cap on decoding
            sequences per replica (default: what fits in memory).
    """

    parallel: Parallel
    batch: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.parallel, Parallel):
            raise ConfigError(f"a pool needs a Parallel, got {self.parallel!r}")
        if self.batch is not None:
            _number("pool batch", self.batch)


@dataclass(frozen=True)
class Disaggregated:
    """Prefill and decode on separate pools, the KV cache handed over (DistServe, Splitwise).

    Attributes:
        prefill, decode: the two pools.
        link: ``"auto"`` (the chip's scale-up bandwidth when both replicas fit in one
            scale-up domain, else scale-out; per chip, times the chips of the smaller
            replica), or the bytes/s of one transfer (``math.inf``: a free link).
        overlap: stream the KV cache during the prefill (layer by layer): TTFT counts
            ``max(prefill, transfer)`` instead of their sum.
    """

    prefill: Pool
    decode: Pool
    link: str | float = "auto"
    overlap: bool = False

    def __post_init__(self) -> None:
        for name in ("prefill", "decode"):
            if not isinstance(getattr(self, name), Pool):
                raise ConfigError(f"disaggregated serving needs a {name} Pool, got {getattr(self, name)!r}")
        if self.link != "auto":
            v = self.link
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and not math.isnan(v)):
                raise ConfigError(f"link must be 'auto' or bytes/s > 0, got {v!r}")


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding (Leviathan et al. 2023) or multi-token prediction (DeepSeek-V3).

    Attributes:
        draft: ``"mtp"`` (one extra layer of the target per draft token) or a draft model
            (catalog name or :class:`ModelSpec`) run on the same chips.
        length: draft tokens per step (γ >= 1).
        accept: probability that a draft token is accepted (a in [0, 1)); or
        accepted_length: the mean tokens per step engines report (L in [1, γ+1)), from which
            ``a`` solves ``(1 - a^(γ+1))/(1 - a) = L``.
    """

    draft: str | ModelSpec = "mtp"
    length: int = 1
    accept: float | None = None
    accepted_length: float | None = None

    def __post_init__(self) -> None:
        g = self.length
        if not (isinstance(g, int) and not isinstance(g, bool) and g >= 1):
            raise ConfigError(f"speculative length must be a whole number >= 1, got {g!r}")
        if (self.accept is None) == (self.accepted_length is None):
            raise ConfigError("give one of accept (a in [0, 1)) or accepted_length (L in [1, length+1))")
        if self.accept is not None:
            _number("speculative acceptance", self.accept, low_open=False, high=1.0)
        else:
            _number("speculative accepted length", self.accepted_length, low=1.0, low_open=False, high=g + 1.0)
        if not isinstance(self.draft, (str, ModelSpec)):
            raise ConfigError(f"draft must be 'mtp' or a model, got {self.draft!r}")

    @property
    def acceptance(self) -> float:
        """``a``: given, or solved from the accepted length (the mean is increasing in ``a``)."""
        if self.accept is not None:
            return float(self.accept)
        from scipy.optimize import brentq

        g, L = self.length, float(self.accepted_length)
        if L == 1.0:
            return 0.0
        return float(brentq(lambda a: sum(a**k for k in range(g + 1)) - L, 0.0, 1.0, xtol=1e-14))
