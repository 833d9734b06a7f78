"""The serving optimiser's answer: the best deployment of each mode side by side, the winner and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServingSolution", "CONTRACT_KEYS"]

#: Keys of ``ServingSolution.to_dict()`` (the ``costmodel optimize --isl ... --json`` contract).
CONTRACT_KEYS = ("feasible", "mode", "config", "usd_per_mtok_output", "usd_per_mtok_input", "ttft_s", "tpot_s",
                 "output_tokens_per_s_per_chip", "chips", "binding", "method", "wall_time_s", "modes")


@dataclass(frozen=True)
class ServingSolution:
    """The cheapest (or least energy) deployment serving a demand within TTFT and TPOT targets (SI units).

    Attributes:
        feasible: some deployment meets every target within the budget.
        mode: ``"aggregated"`` or ``"disaggregated"`` (the winner), ``None`` when infeasible.
        config: the deployment (see docs/optimizer.md, "The serving problem").
        usd_per_mtok_output, usd_per_mtok_input: the deployment's USD per hour over the million output
            (input) tokens it serves per hour at the demand.
        usd_per_mtok: the objective: per million output tokens, or per million tokens in and out.
        usd_per_hour: chips x price, the whole deployment (owned chips: with the electricity).
        ttft_s, tpot_s: mean TTFT (queueing at the rate included) and TPOT, as ``cm.serve`` gives them.
        output_tokens_per_s_per_chip: the demand's output tokens/s over the chips.
        chips: chips of the deployment (both pools).
        binding: the constraint that sets the size: ``"ttft"``, ``"tpot"``, ``"memory"``, ``"demand"``
            (the replica's largest sustainable rate), ``"chips"`` (infeasible for lack of chips) or ``None``.
        shadow_prices: d(objective)/d(target) for ``"ttft"`` and ``"tpot"``, USD per Mtok (``objective=
            "energy"``: joules per request) per ms of the target, at the chosen configuration with its replicas
            continuous (negative: a looser target is cheaper; 0: the target does not bind).
        method: ``"gradient"`` or ``"exhaustive"``.
        wall_time_s: seconds the solve took.
        space_size: configurations in the searched space (every mode searched, every replica count).
        modes: ``"aggregated"``/``"disaggregated"`` -> that mode's answer (a ServingSolution).
        fastest: infeasible targets: the fastest achievable ``ttft_s`` and ``tpot_s`` at the demand within the
            budget, and the ``chips`` each needs.
        min_chips_needed: the smallest budget at which the problem becomes feasible, when only chips lack.
        message: the answer in words: the winner and why.
        exhaustive_usd_per_mtok_output, gap: with ``verify``, the exhaustive answer and the relative gap in the
            objective (joules per request for ``objective="energy"``).
        serving: the chosen deployment's ``cm.serve`` figures (``ServingPrediction.to_dict()``).
        objective: ``"output"``, ``"total"`` or ``"energy"``.
        watts: the deployment's power (boards and hosts, before the facility's overhead, W) as ``cm.serve``
            gives it; ``None`` where a chip has no board power or nothing is feasible.
        joules_per_request: ``watts`` over the requests/s: the energy of one request, its prompt's included
            (``objective="energy"`` minimises it).
        verified: the exhaustive path ran too (``verify=True``).
        model: the model served (its catalog name or the name of its config).
    """

    feasible: bool
    mode: str | None
    config: dict[str, Any] | None
    usd_per_mtok_output: float | None
    usd_per_mtok_input: float | None
    usd_per_mtok: float | None
    usd_per_hour: float | None
    ttft_s: float | None
    tpot_s: float | None
    output_tokens_per_s_per_chip: float | None
    chips: int | None
    binding: str | None
    shadow_prices: dict[str, float]
    method: str
    wall_time_s: float
    space_size: int
    modes: dict[str, "ServingSolution"] = field(default_factory=dict)
    fastest: dict[str, Any] | None = None
    min_chips_needed: int | None = None
    message: str = ""
    exhaustive_usd_per_mtok_output: float | None = None
    gap: float | None = None
    serving: dict[str, Any] | None = None
    objective: str = "output"
    verified: bool = False
    model: str | None = None
    watts: float | None = None
    joules_per_request: float | None = None

    def launch(self, engine: str) -> str:
        """The launch commands of this deployment for ``engine`` (``"vllm"``, ``"sglang"`` or ``"trtllm"``):
        its flags are the engine's own, for the version :func:`costmodel.launch.engine_flags` states
        (as ``costmodel optimize ... --emit ENGINE``)."""
        from ...launch import launch

        return launch(self, engine)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: :data:`CONTRACT_KEYS` plus ``usd_per_mtok``, ``usd_per_hour``, ``watts``,
        ``joules_per_request``, ``shadow_prices``,
        ``space_size``, ``fastest``, ``min_chips_needed``, ``message``, ``serving`` (and with verify
        ``exhaustive_usd_per_mtok_output`` and ``gap``). No NaN or infinity at any depth."""
        d = {k: getattr(self, k) for k in CONTRACT_KEYS if k != "modes"}
        d.update(usd_per_mtok=self.usd_per_mtok, usd_per_hour=self.usd_per_hour, objective=self.objective,
                 watts=self.watts, joules_per_request=self.joules_per_request,
                 shadow_prices=dict(self.shadow_prices), space_size=self.space_size, fastest=self.fastest,
                 min_chips_needed=self.min_chips_needed, message=self.message, serving=self.serving)
        d["modes"] = {k: _mode_dict(v) for k, v in self.modes.items()}
        if self.verified:
            d.update(exhaustive_usd_per_mtok_output=self.exhaustive_usd_per_mtok_output, gap=self.gap)
        return _finite(d)



def _mode_dict(s: "ServingSolution") -> dict[str, Any]:
    d = {k: getattr(s, k) for k in CONTRACT_KEYS if k != "modes"}
    d.update(usd_per_mtok=s.usd_per_mtok, usd_per_hour=s.usd_per_hour, watts=s.watts,
             joules_per_request=s.joules_per_request, shadow_prices=dict(s.shadow_prices),
             space_size=s.space_size, fastest=s.fastest, min_chips_needed=s.min_chips_needed, message=s.message)
    return d


def _finite(v: Any) -> Any:
    """``v`` with every non-finite float (nested in dicts and lists too) replaced by ``None``."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v
