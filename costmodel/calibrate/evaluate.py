"""Predict every measured metric at once, as one differentiable JAX function.

All cases share a model structure (dense GQA here), so their inputs are stacked
into arrays with one entry per case and the compiled step functions run once,
vectorised, per group of modelling rules. Efficiency inputs arrive per case and
per phase (decode steps and prefills of the same case may use different values),
which is what the calibration differentiates with respect to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from ..serving import load_to_batch as loadmodel
from ..compile import compiled
from ..config import Workload
from ..efficiency import EFFICIENCY_FIELDS
from ..errors import ConfigError
from ..inputs import scenario
from ..symbolic import Rules
from .records import Case

__all__ = ["CaseSet", "TUNABLE"]

#: Inputs whose values are set per case and phase by a profile or a fit.
TUNABLE = EFFICIENCY_FIELDS
_METRIC_CODE = {"step_s": 0, "user_tokens_per_s": 1, "prefill_s": 2, "system_tokens_per_s": 3}
_LOAD_CODE = {"fixed": 0, "max": 1, "rate": 2}


class CaseSet:
    """Cases prepared for vectorised evaluation.

    Attributes:
        cases: the cases, in order; ``measured`` their values (SI units).
        hardware: each case's resolved chip.
        structure: the model structure all cases share (checked).
        base: every model input, stacked: name -> array with one entry per case.

    Raises:
        ConfigError: cases of different model structures (build one set per structure).
    """

    def __init__(self, cases: Sequence[Case]):
        self.cases = tuple(cases)
        self.measured = np.array([c.measured for c in self.cases])
        scs = [scenario(c.model, c.hardware, Workload(), c.parallel, c.precision) for c in self.cases]
        self.hardware = [sc.hardware for sc in scs]
        self.structure = scs[0].model.structure
        if any(sc.model.structure != self.structure for sc in scs):
            raise ConfigError("a CaseSet needs cases of one model structure (attention, MLP kind); "
                              "build one CaseSet per structure")
        base = [sc.inputs() for sc in scs]
        names = sorted(set().union(*base))
        self.base = {k: np.array([b[k] for b in base]) for k in names}
        self.rule_sets = sorted({c.rules for c in self.cases})
        self.groups = [np.array([i for i, c in enumerate(self.cases) if c.rules == r]) for r in self.rule_sets]
        arr = lambda f: np.array([f(c) for c in self.cases], dtype=float)  # noqa: E731
        self.batch = arr(lambda c: c.batch or 1.0)
        self.prompt, self.output, self.context = arr(lambda c: c.prompt), arr(lambda c: c.output), arr(lambda c: c.context)
        self.rate = arr(lambda c: c.request_rate_per_s)
        self.replicas = arr(lambda c: c.parallel.replicas)
        self.metric = np.array([_METRIC_CODE[c.metric] for c in self.cases])
        self.load = np.array([_LOAD_CODE[c.load] for c in self.cases])

    def __len__(self) -> int:
        return len(self.cases)

    def ideal_values(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-phase tunable inputs of the ideal roofline (spec collective latency)."""
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
        for rules, idx in zip(self.rule_sets, self.groups):
            out = out.at[idx].set(self._predict_group(rules, idx, values)[0])
        return out

    def batches(self, values: Mapping[str, Mapping[str, jnp.ndarray]]) -> np.ndarray:
        """The decode batch each case runs at under ``values`` (given, maximum or Little's law)."""
        out = np.zeros(len(self))
        for rules, idx in zip(self.rule_sets, self.groups):
            out[idx] = np.asarray(self._predict_group(rules, idx, values)[1])
        return out

    def _predict_group(self, rules: tuple, idx: np.ndarray, values) -> tuple[jnp.ndarray, jnp.ndarray]:
        dec_fn = compiled(self.structure, Rules("decode", **dict(rules))).raw
        pre_fn = compiled(self.structure, Rules("prefill", **dict(rules))).raw
        base = {k: jnp.asarray(v[idx]) for k, v in self.base.items()} | {"context": jnp.asarray(self.context[idx])}
        dec_t = {k: jnp.asarray(values["decode"][k])[idx] for k in TUNABLE}
        pre_t = {k: jnp.asarray(values["prefill"][k])[idx] for k in TUNABLE}
        dec_in = base | dec_t

        def decode(x):  # decode steps take the decode-phase values, prefills the prefill-phase ones
            return dec_fn({**x, **dec_t})

        def prefill(x):
            return pre_fn({**x, **pre_t})

        prompt, output = jnp.asarray(self.prompt[idx]), jnp.asarray(self.output[idx])
        load = self.load[idx]
        # five traces of the step functions per group (compile time is the cost of a fit)
        b_max = loadmodel.max_batch(decode, dec_in)
        t_pf1 = prefill({**dec_in, "batch": jnp.ones_like(prompt), "prompt": prompt})["step_time_s"]
        b_low = loadmodel.little_batch(lambda b: decode({**dec_in, "batch": b})["step_time_s"],
                                       jnp.asarray(self.rate[idx]), t_pf1, output)
        batch = jnp.where(load == 1, b_max, jnp.where(load == 2, b_low, jnp.asarray(self.batch[idx])))
        step = decode({**dec_in, "batch": batch})["step_time_s"]
        pre = prefill({**dec_in, "batch": batch, "prompt": prompt})["step_time_s"]
        user = loadmodel.user_rate(t_pf1, step, output)
        system = loadmodel.offline_rate(pre, step, batch, output, jnp.asarray(self.replicas[idx]))
        m = self.metric[idx]
        return jnp.select([m == 0, m == 1, m == 2], [step, user, pre], system), batch
