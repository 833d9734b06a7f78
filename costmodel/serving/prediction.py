"""The answer of :func:`costmodel.serve`: request-level latency, throughput, memory and cost."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServingPrediction", "CONTRACT_KEYS", "ENERGY_KEYS"]

#: Keys of ``ServingPrediction.to_dict()`` (the ``costmodel predict --isl ... --json`` contract).
CONTRACT_KEYS = ("mode", "ttft_s", "tpot_s", "e2e_latency_s", "output_tokens_per_s", "output_tokens_per_s_per_chip",
                 "input_tokens_per_s", "tokens_per_s_per_user", "requests_per_s", "decode_batch", "utilisation",
                 "chips", "fits", "memory_bytes_per_chip", "usd_per_mtok_output", "usd_per_mtok_input",
                 "usd_per_request", "breakdown_s")

#: power and energy (docs/theory.md §21), ``None`` for a chip without a board power
ENERGY_KEYS = ("power_w_per_chip", "joules_per_output_token", "joules_per_input_token", "usd_per_mtok_energy",
               "usd_per_mtok_energy_input")

#: the scheduler's rules as ``to_dict`` reports them (with ``name``, the preset's)
_SCHEDULER_KEYS = ("kv_reservation", "max_seqs", "max_batched_tokens", "kv_context_tokens")


@dataclass(frozen=True)
class ServingPrediction:
    """Serving figures of a workload under a load (SI units; rates cover every replica).

    Attributes:
        mode: ``"aggregated"`` or ``"disaggregated"``.
        ttft_s: mean time to first token (queue, prefill, KV transfer); ``inf`` when saturated.
        tpot_s: mean time per output token after the first.
        e2e_latency_s: mean request latency, ``TTFT + (O-1)·TPOT``.
        output_tokens_per_s, input_tokens_per_s, requests_per_s: served rates of the deployment.
        output_tokens_per_s_per_chip: output tokens/s per chip.
        tokens_per_s_per_user: ``1/TPOT``.
        decode_batch: mean sequences per decode step of a replica.
        utilisation: open loop: the rate over the largest sustainable rate; else ``None``.
        saturated: the offered rate is at or past the largest sustainable rate.
        max_rate_per_s: the largest sustainable rate (requests/s); ``None`` for a static batch.
        chips: chips of the deployment (both pools when disaggregated).
        fits: every replica fits in memory at its batch.
        memory_bytes_per_chip: bytes per chip (the larger pool's when disaggregated).
        usd_per_mtok_output, usd_per_mtok_input: USD per million output / input tokens, the
            chip-time split between decode and prefill work (docs/serving.md §19.7).
        usd_per_request: USD per request.
        breakdown_s: the mean (decode) step's compute, weights, kv, communication and overhead.
        percentiles: the 50th, 90th and 99th percentiles of TTFT, TPOT and end-to-end latency over
            requests (keys ``ttft_p50_s`` ... ``e2e_p99_s``; docs/serving.md §19.10); ``inf`` for TTFT and
            latency when saturated.
        details: further figures (step time, prefill share, KV transfer, pools, speculation).
        power_w_per_chip: mean board power per chip (W; docs/theory.md §21).
        joules_per_output_token, joules_per_input_token: boards' and hosts' energy per token, before the
            PUE, split as the chip-time is (disaggregated: the prefill pool's is the input's).
        usd_per_mtok_energy, usd_per_mtok_energy_input: the electricity of a million output / input tokens
            at the PUE; part of ``usd_per_mtok_output``/``_input`` only for owned chips.
        electricity: the :class:`costmodel.Electricity` it is priced at. The energy figures are ``None``
            where a chip has no board power.
    """

    mode: str
    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    output_tokens_per_s: float
    output_tokens_per_s_per_chip: float
    input_tokens_per_s: float
    tokens_per_s_per_user: float
    requests_per_s: float
    decode_batch: float
    utilisation: float | None
    saturated: bool
    max_rate_per_s: float | None
    chips: int
    fits: bool
    memory_bytes_per_chip: float
    usd_per_mtok_output: float
    usd_per_mtok_input: float
    usd_per_request: float
    breakdown_s: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    percentiles: dict[str, float] = field(default_factory=dict)
    power_w_per_chip: float | None = None
    joules_per_output_token: float | None = None
    joules_per_input_token: float | None = None
    usd_per_mtok_energy: float | None = None
    usd_per_mtok_energy_input: float | None = None
    electricity: Any = None

    def percentile(self, metric: str, q: float | None) -> float:
        """``metric`` (``"ttft"``, ``"tpot"`` or ``"e2e"``) at percentile ``q`` (50, 90 or 99), or its mean
        for ``q=None``."""
        from ..errors import ConfigError
        from .percentiles import PERCENTILES

        means = {"ttft": self.ttft_s, "tpot": self.tpot_s, "e2e": self.e2e_latency_s}
        if metric not in means:
            raise ConfigError(f"metric {metric!r:.40} is not one of ttft, tpot, e2e")
        if q is None:
            return means[metric]
        if q not in PERCENTILES:
            raise ConfigError(f"percentile {q!r:.40} is not one of {', '.join(map(str, PERCENTILES))} (or None: "
                              "the mean)")
        return self.percentiles[f"{metric}_p{q:g}_s"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready answer: :data:`CONTRACT_KEYS`, the percentiles (``ttft_p50_s`` ... ``e2e_p99_s``),
        ``saturated``, ``max_rate_per_s``, the energy (:data:`ENERGY_KEYS`, ``electricity``) and the
        scheduler (``scheduler``: its rules; ``bound_by``: the rule or cap that sets the largest
        sustainable rate, docs/serving.md §19.9); disaggregated, ``prefill_hardware`` and ``decode_hardware``.

        No NaN or infinity at any depth: past saturation ``ttft_s`` and ``e2e_latency_s`` are ``None``.
        """
        d = {k: getattr(self, k) for k in CONTRACT_KEYS}
        d["breakdown_s"] = dict(self.breakdown_s)
        d |= self.percentiles
        d["saturated"] = self.saturated
        d["max_rate_per_s"] = self.max_rate_per_s
        d["bound_by"] = self.details.get("bound_by")
        d["scheduler"] = {"name": self.details.get("scheduler")} | {k: self.details.get(k) for k in _SCHEDULER_KEYS}
        d |= {k: getattr(self, k) for k in ENERGY_KEYS}
        if self.electricity is not None:
            d["electricity"] = self.electricity.to_dict()
        if "prefill_hardware" in self.details:  # disaggregated: each pool's chip
            d["prefill_hardware"] = self.details["prefill_hardware"]
            d["decode_hardware"] = self.details["decode_hardware"]
        return _finite(d)


def _finite(v: Any) -> Any:
    """``v`` with every non-finite float (nested in dicts too) replaced by ``None``."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return None if isinstance(v, float) and not math.isfinite(v) else v
