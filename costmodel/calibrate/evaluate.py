"""Predict every measured metric at once, as one differentiable JAX function.

Cases are grouped by model structure and modelling rules; each group's inputs
are stacked into arrays with one entry per case and the compiled step functions
(decode, prefill, and the serving model's mixed step and static-batch sum) run
once, vectorised, per group. Efficiency inputs arrive per case and per phase
(decode steps and prefills of the same case may use different values), which is
what the calibration differentiates with respect to.

Each metric is the closed form the serving model uses (docs/serving.md §19,
:mod:`costmodel.serving.aggregated`, :mod:`costmodel.serving.disaggregated`):

* ``step_s``: the decode step at the case's batch (given, or from a request rate by Little's law);
* ``user_tokens_per_s``: ``O/(T_prefill(1) + O·ℓ)``;
* ``prefill_s`` and ``ttft_s``: the prefill of a static batch of prompts;
* ``e2e_s``: ``T_prefill(B, I) + Σ_{t=1..O-1} ℓ(B, I + t)`` (the static-batch sum);
  ``static_tokens_per_s``: ``replicas·B·O/e2e``;
* ``system_tokens_per_s`` (offline): continuous batching with chunked prefill at the largest
  batch that fits at ``S̄ = I + O/2`` (or the stated cap): ``X = min(C/I, B_cap/(O-1))`` requests
  finish per mean step ``τ̄ = f·ℓ_mixed(X·D, c₁) + (1-f)·ℓ_mixed(X·D, 0)``, ``replicas·X·O/τ̄``;
* ``prefill_tokens_per_s``: a prefill pool's ``replicas·b·I/T_prefill(b, I)``;

each times the case's unit ``scale``. ``tests/test_calibrate.py`` checks these against
:func:`costmodel.serve` record by record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from ..compile import compiled, compiled_serving
from ..config import IDEAL, Workload
from ..efficiency import EFFICIENCY_FIELDS
from ..errors import ConfigError, CostModelError
from ..inputs import scenario
from ..serving import load_to_batch as loadmodel
from ..symbolic import Rules
from .records import Case

__all__ = ["CaseSet", "TUNABLE", "profile_values", "on_operator_step"]

#: Inputs whose values are set per case and phase by a profile or a fit.
TUNABLE = EFFICIENCY_FIELDS
_METRIC_CODE = {"step_s": 0, "user_tokens_per_s": 1, "prefill_s": 2, "system_tokens_per_s": 3, "ttft_s": 4,
                "e2e_s": 5, "static_tokens_per_s": 6, "prefill_tokens_per_s": 7}
_LOAD_CODE = {"fixed": 0, "max": 1, "rate": 2, "static": 3}
_SERVING_ZERO = {"steps": 0.0, "prefill_tokens": 0.0, "prefill_position": 0.0, "draft_length": 0.0, "acceptance": 0.0}


class CaseSet:
    """Cases prepared for vectorised evaluation.

    Attributes:
        cases: the cases, in order; ``measured`` their values (SI units).
        hardware: each case's resolved chip.
        base: every model input, stacked: name -> array with one entry per case (0 where a
            structure lacks the input).

    Raises:
        ConfigError: a case whose configuration the model rejects, naming the record.
    """

    def __init__(self, cases: Sequence[Case]):
        self.cases = tuple(cases)
        if not self.cases:
            raise ConfigError("a CaseSet needs at least one case")
        self.measured = np.array([c.measured for c in self.cases])
        scs = []
        for c in self.cases:
            try:
                scs.append(scenario(c.model, c.hardware, Workload(), c.parallel, c.precision, IDEAL))
            except CostModelError as e:
                raise ConfigError(f"measurement record {c.id}: {e}") from None
        self.hardware = [sc.hardware for sc in scs]
        self.structures = [sc.model.structure for sc in scs]
        base = [sc.inputs() for sc in scs]
        names = sorted(set().union(*base))
        self.base = {k: np.array([b.get(k, 0.0) for b in base]) for k in names}
        keys = [(st, c.rules) for st, c in zip(self.structures, self.cases)]
        self.group_keys = sorted(set(keys), key=repr)
        self.groups = [np.array([i for i, k in enumerate(keys) if k == g]) for g in self.group_keys]
        arr = lambda f: np.array([f(c) for c in self.cases], dtype=float)  # noqa: E731
        self.batch = arr(lambda c: c.batch or 1.0)
        self.cap = arr(lambda c: c.batch if (c.load == "max" and c.batch) else np.inf)
        self.prompt, self.output, self.context = arr(lambda c: c.prompt), arr(lambda c: c.output), arr(lambda c: c.context)
        self.rate = arr(lambda c: c.request_rate_per_s)
        self.replicas = arr(lambda c: c.parallel.replicas)
        self.scale = arr(lambda c: c.scale)
        self.chunk = arr(lambda c: c.chunk_tokens)
        self.metric = np.array([_METRIC_CODE[c.metric] for c in self.cases])
        self.load = np.array([_LOAD_CODE[c.load] for c in self.cases])

    def __len__(self) -> int:
        return len(self.cases)

    def ideal_values(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-phase tunable inputs of the ideal roofline (spec collective latencies, all of HBM)."""
        v = {k: self.base[k] for k in TUNABLE}  # the cases' scenarios take the default, ideal, efficiency
        return {"decode": v, "prefill": v}

    def predict(self, values: Mapping[str, Mapping[str, jnp.ndarray]]) -> jnp.ndarray:
        """Predicted metric of every case (in the measured units).

        Args:
            values: ``{"decode": {input: array[n]}, "prefill": {...}}`` for every name in
                :data:`TUNABLE`.

        Returns:
            An array of ``len(self)`` predictions, JAX-differentiable in ``values``.
        """
        out = jnp.zeros(len(self))
        for key, idx in zip(self.group_keys, self.groups):
            out = out.at[idx].set(self._predict_group(key, idx, values)[0])
        return out

    def batches(self, values: Mapping[str, Mapping[str, jnp.ndarray]]) -> np.ndarray:
        """The decode batch each case runs at under ``values`` (given, cap, Little's law or offline)."""
        out = np.zeros(len(self))
        for key, idx in zip(self.group_keys, self.groups):
            out[idx] = np.asarray(self._predict_group(key, idx, values)[1])
        return out

    def _predict_group(self, key, idx: np.ndarray, values) -> tuple[jnp.ndarray, jnp.ndarray]:
        structure, rules = key
        dec_rules = Rules("decode", **dict(rules))
        dec_fn = compiled(structure, dec_rules).raw
        pre_fn = compiled(structure, Rules("prefill", **dict(rules))).raw
        base = {k: jnp.asarray(v[idx]) for k, v in self.base.items()} | {"context": jnp.asarray(self.context[idx])}
        dec_t = {k: jnp.asarray(values["decode"][k])[idx] for k in TUNABLE}
        pre_t = {k: jnp.asarray(values["prefill"][k])[idx] for k in TUNABLE}
        dec_in = base | dec_t
        load, m = self.load[idx], self.metric[idx]
        # the serving closed forms compile only for groups that use them (a static sum under
        # overlapped communication is a large expression)
        srv_fn = compiled_serving(structure, dec_rules).raw if np.any(np.isin(m, (3, 5, 6))) else None

        def decode(x):  # decode steps take the decode-phase values, prefills the prefill-phase ones
            return dec_fn({**x, **dec_t})

        def prefill(x):
            return pre_fn({**x, **pre_t})

        def mixed(batch, tokens, context, position):
            x = {**dec_in, **_SERVING_ZERO, "batch": jnp.maximum(batch, 1e-12), "prefill_tokens": tokens,
                 "context": context, "prefill_position": position}
            return srv_fn(x)

        I, O = jnp.asarray(self.prompt[idx]), jnp.asarray(self.output[idx])
        given, cap = jnp.asarray(self.batch[idx]), jnp.asarray(self.cap[idx])
        zero = jnp.zeros_like(I)
        S_bar = I + O / 2
        t_pf1 = prefill({**dec_in, "batch": jnp.ones_like(I), "prompt": I})["step_time_s"]
        if np.any(load == 2):
            b_low = loadmodel.little_batch(lambda b: decode({**dec_in, "batch": b})["step_time_s"],
                                           jnp.asarray(self.rate[idx]), t_pf1, O)
            batch = jnp.where(load == 2, b_low, given)
        else:
            batch = given
        step = decode({**dec_in, "batch": batch})["step_time_s"]
        pre = prefill({**dec_in, "batch": batch, "prompt": I})["step_time_s"]
        user = loadmodel.user_rate(t_pf1, step, O)
        # static batch: prefill, then O - 1 decode steps from context I (the serving model's closed-form sum)
        D = jnp.maximum(O - 1.0, 0.0)
        e2e = static_rate = offline = B_off = zero
        if np.any(np.isin(m, (5, 6))):
            srv = srv_fn({**dec_in, **_SERVING_ZERO, "batch": batch, "context": I, "steps": D})
            t_dec = srv["static_decode_s"] if "static_decode_s" in srv else D * step
            e2e = pre + t_dec
            static_rate = batch * O / e2e
        if np.any(m == 3):
            # offline: continuous batching with chunked prefill at the largest batch that fits (or the cap)
            b_fit = loadmodel.max_batch(decode, {**dec_in, "context": S_bar})
            b_cap = jnp.maximum(jnp.minimum(b_fit, cap), 1.0)
            C = jnp.asarray(self.chunk[idx])
            X = jnp.minimum(C / I, b_cap / jnp.maximum(D, 1e-9))
            B_off = X * D
            c1 = jnp.minimum(C, I * jnp.maximum(1.0, X))
            f = X * I / c1
            t1 = mixed(B_off, c1, S_bar, I / 2)["step_time_s"]
            t0 = mixed(B_off, zero, S_bar, I / 2)["step_time_s"]
            offline = X * O / (f * t1 + (1 - f) * t0)
        pool = batch * I / pre
        replicas, scale = jnp.asarray(self.replicas[idx]), jnp.asarray(self.scale[idx])
        out = jnp.select([m == 0, m == 1, m == 2, m == 3, m == 4, m == 5, m == 6],
                         [step, user, pre, replicas * offline, pre, e2e, replicas * static_rate],
                         replicas * pool)
        return out * scale, jnp.where(load == 1, B_off, batch)


def profile_values(cs: CaseSet, profile) -> dict[str, dict[str, np.ndarray]]:
    """Per-phase tunable inputs of every case under an efficiency profile (a name, a path or a
    :class:`~costmodel.efficiency.Profile`), resolved for each case's chip: what ``cs.predict`` takes."""
    from ..efficiency import resolve

    out = {}
    for phase in ("decode", "prefill"):
        rows = [resolve(profile, hw, phase).inputs(hw) for hw in cs.hardware]
        out[phase] = {k: np.array([r.get(k, cs.base[k][i]) for i, r in enumerate(rows)]) for k in TUNABLE}
    return out


def on_operator_step(cases: Sequence[Case]) -> tuple[Case, ...]:
    """The cases with the operator-level step (docs/theory.md §20) wherever their rules allow it
    (1D weight-stationary layers, communication not overlapped); the others keep the single roofline."""
    from dataclasses import replace

    out = []
    for c in cases:
        rules = dict(c.rules)
        ok = (rules.get("layout", "1d-ws") == "1d-ws" and rules.get("comm_overlap", "none") == "none"
              and rules.get("combine", "max") == "max")
        out.append(replace(c, rules=tuple(sorted((rules | {"step": "operators"}).items()))) if ok else c)
    return tuple(out)
