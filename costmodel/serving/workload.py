"""What is served and under which load: requests, load modes, pools, speculation (docs/serving.md §19).

Plain, validated, immutable data; no JAX. A bad value raises a
:class:`~costmodel.errors.ConfigError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..config import Parallel
from ..errors import ConfigError, CostModelError
from ..limits import check_number, shown_value
from ..specs import HardwareSpec, ModelSpec, load_hardware, load_model

__all__ = ["Requests", "Load", "Pool", "Disaggregated", "Speculative", "LOAD_KINDS"]

LOAD_KINDS = ("static", "concurrency", "rate", "offline")


def _number(name: str, v: Any, *, low: float = 0.0, low_open: bool = True, high: float | None = None,
            high_open: bool = True) -> float:
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool)
    try:  # 10**400 is an int that math.isfinite cannot convert
        ok = ok and math.isfinite(v) and (v > low if low_open else v >= low)
        if high is not None:
            ok = ok and (v < high if high_open else v <= high)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        raise ConfigError(f"{name} must be a finite number {lo}{hi}, got {shown_value(v)}")
    return float(v)


def _ranged(name: str, v: Any, label: str, *, integer: bool = False) -> float:
    """``v`` checked against the physical range :data:`costmodel.limits.RANGES[name]`, as a float."""
    return float(check_number(name, v, integer=integer, label=label))


def _fraction(name: str, v: Any) -> float:
    """A fraction in ``[0, 1)``."""
    return _number(name, v, low_open=False, high=1.0)


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
        _ranged("input_tokens", self.input_tokens, "input_tokens")
        _ranged("output_tokens", self.output_tokens, "output_tokens")
        object.__setattr__(self, "prefix_hit", _fraction("prefix_hit", self.prefix_hit))
        if self.input_tokens * (1 - self.prefix_hit) < 1:  # the last prompt token is always computed
            raise ConfigError(f"prefix_hit {self.prefix_hit!r} leaves {self.input_tokens * (1 - self.prefix_hit):.3g} "
                              f"of the {self.input_tokens!r} input tokens to prefill; at least 1 must be (the last "
                              "prompt token computes the first output token)")
        if not self.classes:
            object.__setattr__(self, "classes", ((1.0, float(self.input_tokens), float(self.output_tokens)),))
        else:
            rows = _class_rows(self.classes)
            if abs(sum(w for w, _, _ in rows) - 1) > 1e-6:
                raise ConfigError("class weights must sum to 1 (use Requests.mix to normalise), "
                                  f"got {self.classes!r:.200}")
            for _, i, _ in rows:
                if i * (1 - self.prefix_hit) < 1:
                    raise ConfigError(f"prefix_hit {self.prefix_hit!r} leaves less than 1 of a class's {i!r} input "
                                      "tokens to prefill; at least 1 must be")
            object.__setattr__(self, "classes", rows)

    @classmethod
    def mix(cls, classes: Any, prefix_hit: float = 0.0) -> "Requests":
        """Requests drawn from classes ``[(weight, input_tokens, output_tokens), ...]`` (weights > 0)."""
        rows = _class_rows(classes, weight="mix_weight")
        total = sum(r[0] for r in rows)
        norm = tuple((w / total, i, o) for w, i, o in rows)
        mean_in = sum(w * i for w, i, _ in norm)
        mean_out = sum(w * o for w, _, o in norm)
        return cls(mean_in, mean_out, prefix_hit, norm)

    @classmethod
    def lognormal(cls, input_tokens: float = 1024, output_tokens: float = 1024, input_cv: float = 0.0,
                  output_cv: float = 0.0, prefix_hit: float = 0.0) -> "Requests":
        """Requests whose lengths are lognormal with these means and coefficients of variation (std over
        mean; 0 is a fixed length), input and output independent, cut into classes finer in the tail
        (:mod:`costmodel.serving.lengths`; docs/serving.md §19.10)."""
        from .lengths import lognormal_classes

        _ranged("input_tokens", input_tokens, "input_tokens")
        _ranged("output_tokens", output_tokens, "output_tokens")
        return cls.mix(lognormal_classes(input_tokens, output_tokens, input_cv, output_cv), prefix_hit)

    @classmethod
    def from_csv(cls, path, prefix_hit: float = 0.0) -> "Requests":
        """Requests with the lengths of a CSV file of ``input,output`` token counts, one request a row (a
        trace), their joint distribution kept (:func:`costmodel.serving.lengths.read_lengths_csv`)."""
        from .lengths import read_lengths_csv

        return cls.mix(read_lengths_csv(path), prefix_hit)

    @property
    def prefill_tokens(self) -> float:
        """Mean prompt tokens prefilled per request, ``I·(1-h)``."""
        return self.input_tokens * (1 - self.prefix_hit)

    @property
    def longest_prefill_tokens(self) -> float:
        """Prompt tokens prefilled for the longest class, ``max I·(1-h)``."""
        return max(i for _, i, _ in self.classes) * (1 - self.prefix_hit)

    @property
    def prefill_tokens_cv2(self) -> float:
        """Squared coefficient of variation of the prefilled tokens over the classes (0 for one class)."""
        m = self.prefill_tokens
        second = sum(w * (i * (1 - self.prefix_hit)) ** 2 for w, i, _ in self.classes)
        return max(second / m**2 - 1, 0.0)


def _class_rows(classes: Any, weight: str | None = None) -> tuple[tuple[float, float, float], ...]:
    """``classes`` as checked ``(weight, input_tokens, output_tokens)`` floats (at most 10^4 classes)."""
    shape = "a non-empty list of at most 10000 (weight, input_tokens, output_tokens)"
    if isinstance(classes, (str, bytes, dict)):
        raise ConfigError(f"classes must be {shape}, got {shown_value(classes):.200}")
    try:
        rows = [tuple(c) for c in classes]
    except TypeError:
        raise ConfigError(f"classes must be {shape}, got {shown_value(classes):.200}") from None
    if not 1 <= len(rows) <= 10_000 or any(len(r) != 3 for r in rows):
        raise ConfigError(f"classes must be {shape}, got {shown_value(classes):.200}")
    out = []
    for w, i, o in rows:
        w = _ranged(weight, w, "class weight") if weight else _number("class weight", w, high=1.0, high_open=False)
        out.append((w, _ranged("input_tokens", i, "class input_tokens"),
                    _ranged("output_tokens", o, "class output_tokens")))
    return tuple(out)


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
        if not isinstance(self.kind, str) or self.kind not in LOAD_KINDS:
            raise ConfigError(f"load kind {self.kind!r:.80} is not allowed; choose one of {', '.join(LOAD_KINDS)}")
        names = {"static": ("batch", "static batch"), "concurrency": ("concurrency", "concurrency"),
                 "rate": ("rate_per_s", "rate (requests/s)")}
        if self.kind in names:
            key, label = names[self.kind]
            _ranged(key, self.value, label)
        elif self.value is not None:
            raise ConfigError(f"an offline load takes no value, got {shown_value(self.value):.80}")
        if self.max_batch is not None:
            _ranged("max_batch", self.max_batch, "max_batch")

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
        hardware: the pool's chip (catalog name or spec); ``None``: the chip :func:`costmodel.serve`
            is given. A compute-rich chip for prefill and a memory-rich one for decode is a pair of
            pools on different chips (docs/serving.md §19.4).
    """

    parallel: Parallel
    batch: float | None = None
    hardware: str | HardwareSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.parallel, Parallel):
            raise ConfigError(f"a pool needs a Parallel, got {self.parallel!r}")
        if self.batch is not None:
            _ranged("batch", self.batch, "pool batch")
        if self.hardware is not None:
            load_hardware(self.hardware)  # an unknown chip is refused here, naming the valid ones


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
        if not (isinstance(self.link, str) and self.link == "auto") and not (
                isinstance(self.link, float) and self.link == math.inf):
            check_number("link_bytes_per_s", self.link, label="link (or 'auto', or math.inf for a free link)")
        if not isinstance(self.overlap, bool):
            raise ConfigError(f"overlap must be True or False, got {shown_value(self.overlap):.80}")


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
        g = check_number("spec_length", self.length, integer=True, label="speculative length")
        if (self.accept is None) == (self.accepted_length is None):
            raise ConfigError("give one of accept (a in [0, 1)) or accepted_length (L in [1, length+1))")
        if self.accept is not None:
            _fraction("speculative acceptance", self.accept)
        else:
            _ranged("accepted_length", self.accepted_length, "speculative accepted length")
            _number("speculative accepted length", self.accepted_length, low=1.0, low_open=False, high=g + 1.0)
        if not isinstance(self.draft, (str, ModelSpec)):
            raise ConfigError(f"draft must be 'mtp' or a model, got {shown_value(self.draft):.80}")
        if isinstance(self.draft, str) and self.draft != "mtp":
            try:  # an unknown name or a bad config file is refused here, not at serve time
                load_model(self.draft)
            except CostModelError as e:
                raise ConfigError(f"speculative draft must be 'mtp' or a model: {e}") from None

    def check_target(self, target: ModelSpec) -> None:
        """Refuse a draft model that cannot propose tokens for ``target``: the target verifies the
        draft's token ids, so both must share one vocabulary (vLLM refuses a draft whose vocabulary
        size differs from the target's)."""
        if isinstance(self.draft, str) and self.draft == "mtp":
            return
        draft = load_model(self.draft)
        if draft.vocab_size != target.vocab_size:
            raise ConfigError(f"speculative draft {draft.name!r} has a vocabulary of {draft.vocab_size:,} tokens and "
                              f"the target {target.name!r} one of {target.vocab_size:,}: the target verifies the "
                              f"draft's tokens, so both need the same tokenizer; choose a draft of the target's "
                              f"family, or mtp")

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
