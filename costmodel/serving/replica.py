"""One replica's compiled step times on a resolved scenario: the building block of every serving mode.

:class:`Replica` wraps the compiled serving closed forms
(:func:`costmodel.compile.compiled_serving`: the mixed step and the static-batch
sum) and the compiled decode and prefill models of one scenario, plus the draft
cost of speculative decoding. Every method takes and returns floats or NumPy
arrays (broadcast): the serving modes compose these step times, never a loop
over tokens.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np

from ..cache import CachedJit
from ..compile import compiled, compiled_serving
from ..config import Workload
from ..errors import ConfigError
from ..inputs import Scenario, scenario
from ..specs import load_model
from ..symbolic import Rules, board_power_w
from .workload import Speculative

__all__ = ["Replica", "bisect_increasing"]


def bisect_increasing(f, target: Any, lo: Any, hi: Any, iterations: int = 60) -> np.ndarray:
    """``x`` in ``[lo, hi]`` with ``f(x) = target`` for an increasing ``f`` (vectorised bisection)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        below = np.asarray(f(mid)) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


class Replica:
    """Step times of one replica of ``decode_sc`` (and its prefill twin) under ``rules``.

    Attributes:
        decode_sc, prefill_sc: the scenario with the decode- and prefill-phase efficiency.
        rules: the decode rules (the prefill rules differ only in phase).
        draft_length, acceptance: the speculation (0, 0 without).
    """

    def __init__(self, decode_sc: Scenario, prefill_sc: Scenario, rules: Rules, spec: Speculative | None = None):
        self.decode_sc, self.prefill_sc = decode_sc, prefill_sc
        self.rules = replace(rules, phase="decode")
        self._serving = _kept("serving", decode_sc.model.structure, self.rules)
        self._decode = _kept("decode", decode_sc.model.structure, self.rules)
        self._prefill = _kept("decode", decode_sc.model.structure, replace(rules, phase="prefill"))
        self.draft_length = float(spec.length) if spec else 0.0
        self.acceptance = spec.acceptance if spec else 0.0
        self._x = decode_sc.inputs() | {"steps": 1.0, "prefill_tokens": 0.0, "prefill_position": 0.0,
                                        "draft_length": self.draft_length, "acceptance": self.acceptance}
        self._xp = prefill_sc.inputs()
        self._on_device: dict[tuple, dict] = {}
        self._draft = self._draft_fn(spec)

    def _draft_fn(self, spec: Speculative | None):
        if spec is None:
            return lambda batch, context: 0.0 * np.asarray(batch, dtype=float)
        if isinstance(spec.draft, str) and spec.draft == "mtp":
            # one extra layer of the target per draft token (DeepSeek-V3 MTP module)
            layers = self.decode_sc.model.n_layers
            return lambda batch, context: self.step(batch, 0.0, context, draft=False, speculative=False) / layers
        sc = self.decode_sc
        spec.check_target(sc.model)
        try:
            dsc = scenario(load_model(spec.draft), sc.hardware, Workload(), replace(sc.parallel, mesh=None),
                           _precision_of(sc), sc.efficiency, sc.usd_per_chip_hour)
        except ConfigError as e:
            raise ConfigError(f"draft model {getattr(spec.draft, 'name', spec.draft)!r} cannot run on the "
                              f"target's split: {e}") from None
        f, x = compiled(dsc.model.structure, self.rules), dsc.inputs()
        return lambda batch, context: np.asarray(f(x | {"batch": batch, "context": context})["step_time_s"], float)

    # -- inputs -------------------------------------------------------------------------------------------

    def inputs(self, **values: Any) -> dict[str, Any]:
        """The decode scenario's inputs with ``values`` (model or serving names) replaced."""
        return self._x | values

    def _device(self, which: str) -> dict[str, Any]:
        """The decode (``"x"``) or prefill (``"xp"``) inputs as JAX arrays, made once per float width: a
        call then moves only the values it replaces to the device, not a hundred Python numbers (each the
        same weakly typed array JAX would make of it at the call)."""
        import jax
        import jax.numpy as jnp

        key = (which, bool(jax.config.jax_enable_x64))
        kept = self._on_device.get(key)
        if kept is None:
            kept = self._on_device[key] = {k: jnp.asarray(v) for k, v in getattr(self, f"_{which}").items()}
        return kept

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a decoding sequence advances per step (1 without speculation)."""
        return float(self._serving(self._device("x"))["tokens_per_step"])

    # -- step times ---------------------------------------------------------------------------------------

    def mixed(self, batch: Any, prefill_tokens: Any, context: Any, prefill_position: Any = 0.0, *,
              speculative: bool = True) -> dict[str, np.ndarray]:
        """Every output of the mixed step (:func:`costmodel.symbolic.serving.mixed_step_terms`), as arrays."""
        out = self._mixed_raw(batch, prefill_tokens, context, prefill_position, speculative)
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    def _mixed_raw(self, batch, prefill_tokens, context, prefill_position, speculative):
        g = self.draft_length if speculative else 0.0
        return self._serving(self._device("x") | dict(batch=np.maximum(batch, 1e-12), prefill_tokens=prefill_tokens,
                                                      context=context, prefill_position=prefill_position,
                                                      draft_length=g))

    def step(self, batch: Any, prefill_tokens: Any, context: Any, prefill_position: Any = 0.0, *,
             draft: bool = True, speculative: bool = True) -> np.ndarray:
        """Seconds of one mixed step, plus the draft model's ``γ`` steps when speculating."""
        # only the step time leaves the device (``mixed`` converts every output)
        t = np.asarray(self._mixed_raw(batch, prefill_tokens, context, prefill_position, speculative)["step_time_s"],
                       dtype=float)
        if draft and speculative and self.draft_length:
            t = t + self.draft_length * self._draft(batch, context)
        return t

    def batch_slope(self, batch: float, context: float) -> float:
        """``dτ/dB``: seconds a decode step gains per sequence at ``batch`` (a central difference, at least
        one sequence; never negative)."""
        b = max(float(batch), 1.0)
        return max(float(self.step(b * 1.01, 0.0, context) - self.step(b * 0.99, 0.0, context)) / (0.02 * b), 0.0)

    def step_function(self, context: float, prefill_position: float = 0.0):
        """``(B, c) -> seconds`` of the mixed step at a fixed context, for scalar callers (the simulator).

        The same SymPy expression as :meth:`step` with every other input bound, evaluated by a
        NumPy lambdify: microseconds per call instead of a JAX dispatch. No draft cost.
        """
        import sympy as sp

        from ..symbolic.serving import serving_outputs

        expr = serving_outputs(self.decode_sc.model.structure, self.rules)["step_time_s"]
        B, c = sp.Symbol("batch", positive=True), sp.Symbol("prefill_tokens", nonnegative=True)
        values = self.inputs(context=context, prefill_position=prefill_position, draft_length=0.0)
        bound = {s: sp.Float(values[s.name]) for s in expr.free_symbols if s.name not in ("batch", "prefill_tokens")}
        f = sp.lambdify((B, c), expr.xreplace(bound), modules="math")
        return lambda batch, tokens: float(f(max(float(batch), 1e-12), float(tokens)))

    def static_decode_s(self, batch: Any, context: Any, steps: Any) -> np.ndarray:
        """``Σ_{t=1..n} ℓ(B, S + E·t)`` in closed form, plus the draft steps at the mean context."""
        out = self._serving(self._device("x") | dict(batch=batch, context=context, steps=np.maximum(steps, 0.0)))
        if "static_decode_s" in out:
            total = np.asarray(out["static_decode_s"], dtype=float)
        else:  # windowed attention: the compiled steps summed, vectorised over t
            t = np.arange(1, int(np.ceil(float(np.max(steps)))) + 1, dtype=float)
            E = float(out["tokens_per_step"])
            total = float(np.sum(self.mixed(batch, 0.0, float(context) + E * t)["step_time_s"]))
        if self.draft_length:
            mean_ctx = np.asarray(context) + self.tokens_per_step * (np.asarray(steps) + 1) / 2
            total = total + steps * self.draft_length * self._draft(batch, mean_ctx)
        return total

    def decode(self, batch: Any, context: Any) -> dict[str, np.ndarray]:
        """Outputs of the compiled decode model (memory, capacity, step) at ``batch`` and ``context``."""
        out = self._decode(self._device("x") | {"batch": batch, "context": context})
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    def prefill(self, batch: Any, prompt: Any) -> dict[str, np.ndarray]:
        """Outputs of the compiled prefill model for ``batch`` prompts of ``prompt`` tokens."""
        out = self._prefill(self._device("xp") | {"batch": batch, "prompt": prompt})
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    def max_batch(self, context: Any) -> np.ndarray:
        """Decoding sequences per replica that fit in usable HBM at ``context`` (continuous)."""
        return self.decode(1.0, context)["max_batch"]

    @property
    def chips_per_replica(self) -> int:
        return self.decode_sc.parallel.chips_per_replica

    @property
    def usd_per_chip_s(self) -> float:
        return self.decode_sc.usd_per_chip_hour / 3600.0

    def board_watts(self, step: dict, busy: float = 1.0) -> float | None:
        """Board power per chip (W) while the replica runs steps like ``step`` (a breakdown with
        ``compute_s``, ``weights_s``, ``kv_s``, ``step_time_s``) a fraction ``busy`` of the time and idles
        the rest (docs/theory.md §21); ``None`` for a chip without a board power."""
        h = self.decode_sc.hardware
        if not h.has_power:
            return None
        return board_power_w(float(step["compute_s"]), float(step["weights_s"]) + float(step["kv_s"]),
                             float(step["step_time_s"]), h.idle_power_w, h.max_power_w, h.memory_power_share,
                             min(max(busy, 0.0), 1.0))

    @property
    def host_watts(self) -> float:
        """The host's power per chip (W): the chip's ``host_power_w``, 0 where the catalog has none."""
        return self.decode_sc.hardware.host_power_w or 0.0


@functools.cache
def _kept(kind: str, structure, rules: Rules):
    """``compiled(...)`` (``kind="decode"``) or ``compiled_serving(...)`` (``"serving"``) called through a
    :class:`~costmodel.cache.CachedJit`: the same program, its traced form kept on disk per argument
    signature, so a fresh process neither builds the expressions nor traces them again."""
    build = compiled_serving if kind == "serving" else compiled
    jitted = CachedJit((f"replica_{kind}", repr(structure), repr(rules)), lambda: build(structure, rules).raw)
    names: list[tuple[str, ...]] = []

    def call(inputs):
        if not names:
            names.append(tuple(build(structure, rules).input_names))
        return jitted({n: inputs[n] for n in names[0]})

    return call


def _precision_of(sc: Scenario):
    from ..config import Precision

    return Precision(weights=None, kv=sc.kv, math=None, activations=sc.activations)
