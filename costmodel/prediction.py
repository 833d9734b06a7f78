"""One configuration in, the predicted latency, throughput, memory and cost out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .compile import compiled
from .errors import ConfigError, keywords_checked
from .config import DEFAULT_EFFICIENCY, Efficiency, Electricity, Parallel, Precision, Workload
from .inputs import Scenario, scenario
from .limits import check_type
from .specs import HardwareSpec, ModelSpec
from .symbolic import Rules, fits_in_memory

__all__ = ["Prediction", "predict", "predict_many", "evaluate", "evaluate_many", "bound_of", "breakdown_of", "ops_of"]

_BREAKDOWN = ("compute", "weights", "kv", "communication", "overhead")


def breakdown_of(values: dict[str, float]) -> dict[str, float]:
    """Seconds of each step-time term (compute, weights, kv, communication, overhead), before combining."""
    return {k: values[f"{k}_s"] for k in _BREAKDOWN}


def bound_of(values: dict[str, float]) -> str:
    """Which roofline term dominates: ``"compute"``, ``"memory"`` or ``"communication"``."""
    terms = {
        "compute": values["compute_s"],
        "memory": values["weights_s"] + values["kv_s"],
        "communication": values["communication_s"],
    }
    return max(terms, key=terms.get)


def ops_of(values: Mapping[str, float]) -> list[dict[str, Any]]:
    """The operator rows of an operator-level step (docs/theory.md §20), in the order the step runs them:
    ``name``, ``count`` (launches per step), ``time_s`` (seconds per step), ``bound`` (``"compute"``,
    ``"memory"``, ``"communication"`` or ``"latency"``: what sets the row's time; latency when the
    launch floors exceed both), ``flops`` and ``bytes`` (per step, per chip). Operators with no work
    and no time at this configuration (a pipeline hop at ``pp = 1``) are left out; the ``time_s`` add
    up to ``step_time_s``. Empty for the single-roofline step."""
    rows = []
    for key in values:
        if not (key.startswith("op_") and key.endswith("_flops")):
            continue
        name = key[3:-6]
        t, c, m = (float(values[f"op_{name}_{x}"]) for x in ("s", "compute_s", "memory_s"))
        work = float(values[key]) + float(values[f"op_{name}_bytes"])
        if t == 0 and work == 0:
            continue  # nothing at this configuration (a pipeline hop at pp = 1, an all-to-all at ep = 1)
        if work == 0:  # collectives (their time is the memory column) and the dequantisation (compute)
            bound = "compute" if c > 0 else "communication" if m > 0 else "latency"
        else:
            bound = "compute" if c > m else "memory"
            if t - max(c, m) > max(c, m):
                bound = "latency"
        rows.append({"name": name, "count": float(values[f"op_{name}_count"]), "time_s": t, "bound": bound,
                     "flops": float(values[key]), "bytes": float(values[f"op_{name}_bytes"])})
    return rows


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one configuration (SI units).

    ``to_dict()`` gives the JSON contract of ``costmodel predict --json``.
    """

    scenario: Scenario
    rules: Rules
    values: dict[str, float]

    def __getattr__(self, name: str) -> float:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def fits(self) -> bool:
        """Whether weights, KV cache and activations fit in the usable HBM of each chip."""
        return bool(fits_in_memory(self.values))

    def memory_message(self) -> str:
        """One line on memory per chip: what the split needs, what is usable, and how to fix a misfit."""
        v = self.values
        need, usable = v["memory_bytes_per_chip"], v["usable_bytes_per_chip"]
        parts = (f"weights {_gb(v['weight_bytes_per_chip'])}, KV {_gb(v['kv_bytes_per_chip'])}, "
                 f"activations {_gb(v['activation_bytes_per_chip'])}")
        if self.fits:
            return f"needs {_gb(need)} per chip ({parts}) of {_gb(usable)} usable"
        room = (f"at most {v['max_batch']:.4g} sequences fit at this context and split"
                if v["max_batch"] > 0 else "the weights alone do not fit")
        return (f"does not fit: needs {_gb(need)} per chip ({parts}) but {_gb(usable)} is usable; "
                f"{room}; use more chips (tp/pp/ep), batch-sharded attention, a smaller batch or context, "
                "or lower precision")

    def require_fit(self) -> "Prediction":
        """Return ``self`` if it fits in memory, else raise a :class:`ConfigError` saying what it needs."""
        if not self.fits:
            raise ConfigError(f"{self.scenario.model.name} on {self.scenario.hardware.name} "
                              + self.memory_message())
        return self

    @property
    def bound(self) -> str:
        """The dominant term: ``"compute"``, ``"memory"`` or ``"communication"``."""
        return bound_of(self.values)

    @property
    def breakdown_s(self) -> dict[str, float]:
        """Seconds of each step-time term, before combining."""
        return breakdown_of(self.values)

    @property
    def ops(self) -> list[dict[str, Any]]:
        """Per-operator rows of the step (:func:`ops_of`; ``rules.step == "operators"``), else ``[]``."""
        return ops_of(self.values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready answer (a stable contract for scripts)."""
        v, s = self.values, self.scenario
        return {
            "model": s.model.name,
            "hardware": s.hardware.name,
            "phase": self.rules.phase,
            "chips": int(v["chips"]),
            "step_time_s": v["step_time_s"],
            "tokens_per_s": v["tokens_per_s"],
            "tokens_per_s_per_user": v["tokens_per_s_per_user"],
            "usd_per_mtok": v["usd_per_mtok"],
            "memory_bytes_per_chip": v["memory_bytes_per_chip"],
            "usable_bytes_per_chip": v["usable_bytes_per_chip"],
            "fits": self.fits,
            "bound": self.bound,
            "mfu": v["mfu"],
            "breakdown_s": self.breakdown_s,
            "memory_breakdown_bytes": {k: v[f"{k}_bytes_per_chip"] for k in ("weight", "kv", "activation")},
            "workload": {k: _whole(v) for k, v in asdict(s.workload).items()},
            "max_batch": v["max_batch"],
            "max_context": v["max_context"],
            "parallel": self._parallel_dict(),
            "precision": {"weights": s.weights, "kv": s.kv, "math": s.math, "activations": s.activations,
                          "dispatch": s.dispatch or s.activations},
            "usd_per_chip_hour": s.usd_per_chip_hour,
            **self.energy_dict(),
            "efficiency": s.efficiency.name,
            "rules": asdict(self.rules),
            **({"ops": self.ops} if self.rules.step == "operators" else {}),
        }

    def energy_dict(self) -> dict[str, Any]:
        """Power and energy (docs/theory.md §21): ``power_w_per_chip`` (board power at the step),
        ``joules_per_output_token`` (decode) or ``joules_per_input_token`` (prefill), the other ``None``
        (a decode step reads no prompt, a prefill emits no output stream), both with the host's share
        and before the PUE; ``usd_per_mtok_energy`` (the electricity of a million of the step's tokens
        at the PUE), and the ``electricity`` it is priced at. All ``None`` for a chip without a board
        power."""
        v, s = self.values, self.scenario
        e = s.electricity
        known = s.hardware.has_power
        joules = v["joules_per_token"] if known else None
        return {
            "power_w_per_chip": v["power_w_per_chip"] if known else None,
            "joules_per_output_token": joules if self.rules.phase == "decode" else None,
            "joules_per_input_token": joules if self.rules.phase == "prefill" else None,
            "usd_per_mtok_energy": v["usd_per_mtok_energy"] if known else None,
            "electricity": e.to_dict(),
        }

    def _parallel_dict(self) -> dict[str, Any]:
        v, s, par = self.values, self.scenario, self.scenario.parallel
        return {
            "tp": par.tp, "pp": par.pp, "ep": par.ep, "replicas": par.replicas,
            "chips_per_replica": par.chips_per_replica,
            "redundant_experts": par.redundant_experts, "expert_imbalance": par.expert_imbalance,
            "mesh": list(s.mesh),
            "layout": self.rules.layout,
            "attention_sharding": self.rules.attention_sharding,
            "kv_replication": v["kv_replication"],
            "tp_in_scale_up_domain": par.tp * par.ep <= s.hardware.scale_up_domain_chips,
            "communication_s": {k: v[f"communication_{k}_s"] for k in ("tp", "ep", "pp")},
        }


def _whole(v: Any) -> Any:
    """``v`` as an int when it is a whole float (a batch of 64.0 sequences is 64)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _gb(b: float) -> str:
    return f"{b / 1e9:.3g} GB"


def evaluate(sc: Scenario, rules: Rules = Rules()) -> Prediction:
    """Evaluate a resolved :class:`Scenario` under ``rules``."""
    check_type("scenario", sc, Scenario)
    check_type("rules", rules, Rules)
    with _float64():  # one configuration: float64 costs nothing and keeps JSON free of float32 artefacts
        return Prediction(sc, rules, compiled(sc.model.structure, rules).values(sc.inputs()))


def _float64():
    import contextlib

    import jax

    return contextlib.nullcontext() if jax.config.jax_enable_x64 else jax.enable_x64(True)


@keywords_checked
def predict(
    model: str | ModelSpec,
    hardware: str | HardwareSpec,
    workload: Workload = Workload(),
    *,
    parallel: Parallel = Parallel(),
    precision: Precision = Precision(),
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    usd_per_chip_hour: float | None = None,
    rules: Rules | None = None,
    electricity: Electricity | None = None,
) -> Prediction:
    """Predict one configuration.

    Args:
        model: a catalog name, a path to a Hugging Face ``config.json``, or a :class:`ModelSpec`.
        hardware: a catalog chip name or a :class:`HardwareSpec`.
        workload: batch, context, prompt and phase.
        parallel: tp/pp/ep degrees, replicas and the tensor-parallel mesh.
        precision: weight, KV, math and activation formats.
        efficiency: achievable fractions of peak, or a profile: ``"calibrated"`` (the default,
            :data:`costmodel.DEFAULT_EFFICIENCY`), ``"ideal"`` (or ``IDEAL``: the roofline bound), a path.
        usd_per_chip_hour: price override (default: the chip's catalog price).
        rules: how terms combine, the layout and attention sharding; its phase
            follows the workload's.
        electricity: the price of electricity, the PUE and the chip price's basis (default
            :class:`Electricity`'s: rental prices, the electricity reported beside the cost).

    Returns:
        A :class:`Prediction`; ``fits`` says whether the configuration fits in memory.

    Raises:
        CostModelError: an unknown name, an out-of-range value, an invalid split or
            a precision the chip cannot compute in.

    Example:
        >>> from costmodel import predict, Workload
        >>> p = predict("llama-3-70b", "h100-sxm", Workload(batch=1, context=8192),
        ...             parallel=Parallel(tp=8), efficiency="ideal")
        >>> round(p.weights_s * 1e3, 2)  # ms: the ideal weight-fetch floor (docs/theory.md §8)
        5.19
    """
    check_type("workload", workload, Workload)
    if rules is not None:
        check_type("rules", rules, Rules)
    rules = rules or Rules(phase=workload.phase)
    if rules.phase != workload.phase:
        rules = replace(rules, phase=workload.phase)
    sc = scenario(model, hardware, workload, parallel, precision, efficiency, usd_per_chip_hour, rules.layout,
                  electricity)
    return evaluate(sc, rules)


def _bucket(n: int) -> int:
    """Columns padded to a power of two (at least 8), so that the compiled shapes repeat."""
    return max(8, 1 << max(n - 1, 0).bit_length())


def evaluate_many(scenarios: Sequence[Scenario], rules: Rules = Rules()) -> dict[str, np.ndarray]:
    """Evaluate many resolved scenarios in one compiled call per model structure.

    Returns columns: every model output as a float64 array with one entry per scenario (in order),
    plus ``fits`` (bool) and ``bound`` (str), as :class:`Prediction` reports them one at a time.
    The values equal :func:`evaluate`'s. Scenarios of structures without some output
    (there are none today) would get NaN there.
    """
    check_type("rules", rules, Rules)
    scenarios = list(scenarios)
    for sc in scenarios:
        check_type("scenario", sc, Scenario)
    if not scenarios:
        raise ConfigError("evaluate_many needs at least one scenario, got none")
    groups: dict[Any, list[int]] = {}
    for i, sc in enumerate(scenarios):
        groups.setdefault(sc.model.structure, []).append(i)
    cols: dict[str, np.ndarray] = {}
    with _float64():
        for structure, idx in groups.items():
            model = compiled(structure, rules)
            rows = [sc.inputs() for sc in (scenarios[i] for i in idx)]
            size = _bucket(len(idx))
            packed = np.empty((len(model.input_names), size))
            for j, name in enumerate(model.input_names):
                col = [r[name] for r in rows]
                packed[j, : len(col)] = col
                packed[j, len(col):] = col[-1]
            out = model.packed(packed)[:, : len(idx)]
            for j, name in enumerate(model.output_names):
                cols.setdefault(name, np.full(len(scenarios), np.nan))[idx] = out[j]
    cols["fits"] = np.asarray(fits_in_memory(cols))
    cols["bound"] = np.array([bound_of({k: cols[k][i] for k in ("compute_s", "weights_s", "kv_s", "communication_s")})
                              for i in range(len(scenarios))])
    return cols


def predict_many(configs: Iterable[Mapping[str, Any]], *, rules: Rules | None = None) -> dict[str, np.ndarray]:
    """Predict many configurations at once: a list of configurations in, columns out.

    Each configuration is a mapping of :func:`predict`'s arguments (``model`` and ``hardware``
    required; ``workload``, ``parallel``, ``precision``, ``efficiency``, ``usd_per_chip_hour``
    optional; and ``electricity``). Validation is per configuration, as in :func:`predict`; evaluation is one compiled
    call per model structure and phase instead of one per configuration.

    Returns:
        Columns as in :func:`evaluate_many`, one entry per configuration, in order.

    Raises:
        CostModelError: as :func:`predict`, naming the configuration's index.

    Example:
        >>> import costmodel as cm
        >>> cols = cm.predict_many([{"model": "llama-3-70b", "hardware": "h100-sxm",
        ...                          "workload": cm.Workload(batch=b, context=8192),
        ...                          "parallel": cm.Parallel(tp=8), "efficiency": cm.IDEAL} for b in (1, 64, 256)])
        >>> [round(t * 1e3, 2) for t in cols["step_time_s"].tolist()]  # ms per decode step (ideal)
        [7.73, 14.68, 35.87]
        >>> p = cm.predict("llama-3-70b", "h100-sxm", cm.Workload(batch=64, context=8192), parallel=cm.Parallel(tp=8),
        ...                efficiency=cm.IDEAL)
        >>> bool(cols["step_time_s"][1] == p.step_time_s), str(cols["bound"][1]) == p.bound
        (True, True)
    """
    if rules is not None:
        check_type("rules", rules, Rules)
    allowed = {"model", "hardware", "workload", "parallel", "precision", "efficiency", "usd_per_chip_hour",
               "electricity"}
    scenarios, phases = [], []
    for i, c in enumerate(configs):
        if not isinstance(c, Mapping):
            raise ConfigError(f"configs[{i}] must be a mapping of predict's arguments, got {type(c).__name__}")
        extra = sorted(set(c) - allowed)
        missing = sorted({"model", "hardware"} - set(c))
        if extra or missing:
            raise ConfigError(f"configs[{i}]: " + (f"unknown keys {', '.join(extra)}" if extra else
                                                   f"missing {', '.join(missing)}")
                              + f"; allowed: {', '.join(sorted(allowed))}")
        wl = c.get("workload", Workload())
        check_type(f"configs[{i}].workload", wl, Workload)
        try:
            scenarios.append(scenario(c["model"], c["hardware"], wl, c.get("parallel", Parallel()),
                                      c.get("precision", Precision()), c.get("efficiency", DEFAULT_EFFICIENCY),
                                      c.get("usd_per_chip_hour"), electricity=c.get("electricity")))
        except ConfigError as e:
            raise type(e)(f"configs[{i}]: {e}") from None
        phases.append(wl.phase)
    if not scenarios:
        raise ConfigError("predict_many needs at least one configuration, got none")
    base = rules or Rules()
    by_phase: dict[str, list[int]] = {}
    for i, ph in enumerate(phases):
        by_phase.setdefault(ph, []).append(i)
    cols: dict[str, np.ndarray] = {}
    for ph, idx in by_phase.items():
        part = evaluate_many([scenarios[i] for i in idx], replace(base, phase=ph))
        for k, v in part.items():
            if k not in cols:
                cols[k] = np.empty(len(scenarios), dtype=v.dtype) if v.dtype != object else np.empty(len(scenarios), object)
                if v.dtype.kind == "f":
                    cols[k][:] = np.nan
            cols[k][idx] = v
    return cols
