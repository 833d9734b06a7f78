"""Fit the efficiency parameters to measurements by gradient descent, and cross-validate.

Each parameter lives in ``[lo, hi]`` through ``x = lo + (hi − lo)·σ(z)``, so no
step of the optimiser can leave its physical bounds. The loss is the mean
squared log-ratio of predicted to measured values plus a weak quadratic prior
pulling ``z`` toward a physically typical value ``z₀`` (so parameters the data
cannot see stay typical instead of drifting):

.. math::

    \\mathcal{L}(z) = \\frac{\\sum_i w_i \\log^2(\\hat y_i(z)/y_i)}{\\sum_i w_i}
                     + \\lambda \\frac{1}{P}\\sum_j (z_j − z_{0,j})^2

Adam runs a fixed number of steps from ``z₀`` inside one ``jit`` (``lax.scan``),
so a fit is deterministic. Leave-one-source-out cross-validation runs every fold
at once under ``vmap`` over the weight masks ``w``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ConfigError
from ..efficiency import family_of, specificity
from ..engines import DEFAULT_ENGINE, ENGINES, MEMORY_FIELDS
from .evaluate import TUNABLE, CaseSet

__all__ = ["Param", "DEFAULT_PARAMS", "FIXED", "Basis", "FitResult", "Calibration", "fit", "calibrate_cases",
           "values_for", "apply_params"]


@dataclass(frozen=True)
class Param:
    """One calibration parameter with its bounds and meaning.

    Attributes:
        field: the model input it sets (a name in :data:`~costmodel.calibrate.evaluate.TUNABLE`).
        family: chip family it applies to (``"nvidia-gpu"``, ``"tpu"``) or ``"*"``.
        phase: ``"decode"``, ``"prefill"`` or ``"*"``.
        lo, hi: physical bounds; ``typical`` is the prior's centre.
        meaning: what it is, with the source of the typical value.
    """

    field: str
    family: str
    phase: str
    lo: float
    hi: float
    typical: float
    meaning: str

    def __post_init__(self) -> None:
        if not self.lo < self.typical < self.hi:
            raise ConfigError(f"parameter {self.field}: need lo < typical < hi, got {self.lo}, {self.typical}, {self.hi}")

    @property
    def name(self) -> str:
        """``field[family,phase]``."""
        return f"{self.field}[{self.family},{self.phase}]"

    def z0(self) -> float:
        """The unconstrained coordinate of ``typical``."""
        f = (self.typical - self.lo) / (self.hi - self.lo)
        return math.log(f / (1 - f))

    def value(self, z):
        """Bounded value of unconstrained ``z``."""
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(z)


#: The default parameters: few, general and physical (docs/calibration.md): never one per record.
DEFAULT_PARAMS: tuple[Param, ...] = (
    Param("hbm_efficiency", "*", "*", 0.5, 1.0, 0.85,
          "achievable fraction of peak HBM bandwidth in weight-streaming kernels (docs/theory.md §5.6: "
          "0.8-0.9; gpt-fast measured 1.4-1.5 of 2.04 TB/s on a power-capped A100)"),
    Param("flops_efficiency", "nvidia-gpu", "decode", 0.2, 0.95, 0.6,
          "achievable fraction of peak tensor FLOP/s in decode-step matmuls on NVIDIA GPUs "
          "(docs/theory.md §5.6: 0.4-0.8)"),
    Param("flops_efficiency", "nvidia-gpu", "prefill", 0.2, 0.95, 0.6,
          "achievable fraction of peak tensor FLOP/s in prefill on NVIDIA GPUs (model FLOP utilisation "
          "of large GEMMs and flash attention, docs/theory.md §5.6: 0.4-0.8)"),
    Param("flops_efficiency", "tpu", "*", 0.2, 0.95, 0.6,
          "achievable fraction of peak FLOP/s on TPUs (Pope et al. 2022 report 43-76% MFU)"),
    Param("flops_efficiency", "other", "*", 0.2, 0.95, 0.6,
          "achievable fraction of peak FLOP/s on other accelerators (Gaudi; docs/theory.md §5.6: 0.4-0.8)"),
    Param("kernel_overhead_s", "*", "*", 0.0, 10e-6, 2e-6,
          "device-side fixed time per serial kernel, 4 per layer, launches replayed from a CUDA graph "
          "(ramp-up, tail and the gap between dependent kernels: 1-5 us; [Ep]: 1 us per matmul)"),
    Param("collective_latency_s", "nvidia-gpu", "*", 2e-6, 30e-6, 6.8e-6,
          "fixed latency of one GPU collective (NCCL LL protocol base latency ~6.8 us, [Ep])"),
    Param("collective_step_latency_s", "nvidia-gpu", "*", 0.2e-6, 4e-6, 0.6e-6,
          "latency of one ring step of a GPU collective: an all-reduce over n ranks pays 2(n-1) of them "
          "(NCCL LL ~0.6 us per step, [Ep]; NVLink/NVSwitch hop and synchronisation 0.5-3 us)"),
    Param("low_precision_flops_factor", "*", "*", 0.5, 1.0, 0.85,
          "fraction of its doubled peak an 8-bit (fp8/int8) GEMM reaches, relative to 16-bit: H100 fp8 "
          "GEMMs run 1.3-1.6x bf16, not 2x (NVIDIA Transformer Engine benchmarks), 0.65-0.8"),
    Param("dequant_flops_8bit", "nvidia-gpu", "*", 0.0, 200.0, 40.0,
          "dequantisation work per int8 weight element of weight-only kernels, in tensor-core FLOP: a "
          "convert and a scale (2-4 ALU operations) on cores 16x slower than the tensor cores "
          "(A100: 19.5 vs 312 TFLOP/s) is 30-60"),
    Param("dequant_flops_8bit", "tpu", "*", 0.0, 200.0, 40.0,
          "dequantisation work per int8 weight element on TPUs, in MXU FLOP (converted on the vector "
          "units, Pope et al. 2022 section 3.6)"),
    Param("dequant_flops_4bit", "*", "*", 0.0, 400.0, 80.0,
          "dequantisation work per 4-bit weight element of weight-only kernels, in tensor-core FLOP: "
          "unpacking two elements per byte, a zero point and a group scale, about twice the 8-bit work"),
)

#: Inputs the calibrated profile sets without fitting them (not identifiable from the data).
#: The memory rule is the default engine's (:mod:`costmodel.engines`); each record is fitted under
#: its own engine's rule.
FIXED: dict[str, float] = {
    "comm_efficiency": 370 / 450,  # [S]: H100 NVLink all-reduce reaches ~370 of 450 GB/s (docs/theory.md §2)
    "kernels_per_layer": 4.0,      # [Ep]: 4 serial matmuls per layer
    "launch_overhead_s": 5e-6,     # host launch of one kernel without a CUDA graph: 4-10 us (PyTorch
                                   # "Accelerating PyTorch with CUDA Graphs", 2021); engines replay graphs
    "cuda_graphs": 1.0,            # vLLM, TensorRT-LLM, SGLang and gpt-fast (torch.compile
                                   # mode="reduce-overhead") replay decode steps from CUDA graphs
    **ENGINES[DEFAULT_ENGINE].inputs(),
}


def _index(cs: CaseSet, params: Sequence[Param]) -> dict[str, dict[str, np.ndarray]]:
    """For each phase and field, which parameter each case uses (-1: the fixed value)."""
    fams = [family_of(h) for h in cs.hardware]
    out: dict[str, dict[str, np.ndarray]] = {}
    for phase in ("decode", "prefill"):
        out[phase] = {}
        for f in TUNABLE:
            idx = np.full(len(cs), -1)
            for i, fam in enumerate(fams):
                scores = [specificity(p.family, p.phase, fam, phase) if p.field == f else -1 for p in params]
                if max(scores, default=-1) >= 0:
                    idx[i] = int(np.argmax(scores))
            out[phase][f] = idx
    return out


@dataclass(frozen=True)
class Basis:
    """What a fit starts from instead of :data:`FIXED`: per-phase, per-case inputs (``values[phase][field]``,
    as :func:`~costmodel.calibrate.evaluate.profile_values` gives) and which of them no fitted
    parameter may replace (``locked[phase][field]``, boolean per case: values a profile sets for the
    case's own chip, such as kernel fits). ``name`` keys the compiled solver."""

    name: str
    values: dict[str, dict[str, np.ndarray]]
    locked: dict[str, dict[str, np.ndarray]]


def values_for(cs: CaseSet, params: Sequence[Param], x, fixed: dict[str, float] | None = None,
               basis: Basis | None = None):
    """Per-case, per-phase tunable inputs for parameter values ``x`` (bounded, not ``z``): the fitted
    parameters over :data:`FIXED` (or ``fixed``) and the ideal values, or over a :class:`Basis`."""
    fixed = FIXED if fixed is None else fixed
    ideal = cs.ideal_values()["decode"]
    base = {f: jnp.asarray(fixed[f] * np.ones(len(cs)) if f in fixed else ideal[f]) for f in TUNABLE}
    for f in MEMORY_FIELDS:  # each record under its engine's memory rule
        base[f] = jnp.asarray([ENGINES[c.engine].inputs()[f] for c in cs.cases])
    x = jnp.asarray(x)
    index = _index(cs, params)
    out = {}
    for phase in index:
        out[phase] = {}
        for f, idx in index[phase].items():
            b, use = base[f], idx >= 0
            if basis is not None and f not in MEMORY_FIELDS:
                b, use = jnp.asarray(basis.values[phase][f]), use & ~basis.locked[phase][f]
            out[phase][f] = jnp.where(use, x[np.maximum(idx, 0)], b)
    return out


def apply_params(params: Sequence[Param], z) -> jnp.ndarray:
    """Bounded parameter values for unconstrained ``z``."""
    return jnp.stack([p.value(z[j]) for j, p in enumerate(params)])


@dataclass(frozen=True)
class FitResult:
    """One fit: parameter values (bounded), the final loss, and the predictions they give."""

    params: tuple[Param, ...]
    values: np.ndarray
    loss: float
    predicted: np.ndarray
    iterations: int


@dataclass(frozen=True)
class Calibration:
    """A fit on every case plus its leave-one-group-out cross-validation.

    Attributes:
        fit: the fit on all cases.
        cv_predicted: each case predicted by the fold that did not see its group.
        folds: group name -> that fold's parameter values.
        groups: each case's group (its source by default).
    """

    fit: FitResult
    cv_predicted: np.ndarray
    folds: dict[str, np.ndarray]
    groups: tuple[str, ...]


def _solver(cs: CaseSet, params: tuple[Param, ...], iterations: int, learning_rate: float, prior_weight: float,
            basis: Basis | None = None):
    """``solve(masks[m, n]) -> (values[m, P], loss[m], predicted[m, n])``, one compiled function."""
    z0 = jnp.asarray([p.z0() for p in params])
    logy = jnp.log(jnp.asarray(cs.measured))
    predict = lambda z: cs.predict(values_for(cs, params, apply_params(params, z), basis=basis))  # noqa: E731

    def loss(z, w):
        r = jnp.log(predict(z)) - logy
        return jnp.sum(w * r**2) / jnp.sum(w) + prior_weight * jnp.mean((z - z0) ** 2)

    opt = optax.adam(learning_rate)

    def run(w):
        def step(carry, _):
            z, s = carry
            g = jax.grad(loss)(z, w)
            u, s = opt.update(g, s, z)
            return (optax.apply_updates(z, u), s), None

        (z, _), _ = jax.lax.scan(step, (z0, opt.init(z0)), None, length=iterations)
        return apply_params(params, z), loss(z, w), predict(z)

    return jax.jit(jax.vmap(run))


def _solve(cs, params, masks, iterations, learning_rate, prior_weight, basis: Basis | None = None):
    key = (tuple(params), iterations, learning_rate, prior_weight)
    cache = cs.__dict__.setdefault("_solvers", {})  # one compile per case set and settings
    if key + (basis and basis.name,) not in cache:
        cache[key + (basis and basis.name,)] = _solver(cs, *key, basis)
    key = key + (basis and basis.name,)
    x, lv, pred = cache[key](jnp.asarray(masks, float))
    return np.asarray(x), np.asarray(lv), np.asarray(pred)


def _result(params, x, lv, pred, iterations: int, row: int) -> FitResult:
    """Row ``row`` of a batched solve as a :class:`FitResult`."""
    return FitResult(params=tuple(params), values=x[row], loss=float(lv[row]), predicted=pred[row],
                     iterations=iterations)


def fit(cs: CaseSet, params: Sequence[Param] = DEFAULT_PARAMS, *, iterations: int = 1000,
        learning_rate: float = 0.05, prior_weight: float = 1e-3, weights: np.ndarray | None = None,
        basis: Basis | None = None) -> FitResult:
    """Fit ``params`` to the cases of ``cs`` (all of them unless ``weights`` masks some out), over
    :data:`FIXED` or a :class:`Basis`.

    Returns:
        A :class:`FitResult`; every value lies inside its ``[lo, hi]`` by construction.
    """
    w = np.ones(len(cs)) if weights is None else np.asarray(weights, dtype=float)
    x, lv, pred = _solve(cs, params, w[None], iterations, learning_rate, prior_weight, basis)
    return _result(params, x, lv, pred, iterations, 0)


def calibrate_cases(cs: CaseSet, params: Sequence[Param] = DEFAULT_PARAMS, *, iterations: int = 1000,
                    learning_rate: float = 0.05, prior_weight: float = 1e-3,
                    groups: Sequence[str] | None = None, basis: Basis | None = None) -> Calibration:
    """Fit on every case and cross-validate leaving one group out, in one compiled run.

    Args:
        cs: the cases.
        params: the parameters to fit.
        iterations, learning_rate: Adam's fixed schedule (deterministic).
        prior_weight: weight ``λ`` of the prior toward typical values.
        groups: each case's fold (default: its source: leave-one-source-out).
        basis: what the parameters are fitted over (default :data:`FIXED` and the ideal values).

    Returns:
        A :class:`Calibration`.
    """
    groups = tuple(c.source for c in cs.cases) if groups is None else tuple(groups)
    names = sorted(set(groups))
    # every group weighs the same in the loss: a source of eleven records does not outvote one of one
    w = np.array([1.0 / groups.count(g) for g in groups])
    masks = np.array([w] + [[wi * float(g != n) for wi, g in zip(w, groups)] for n in names])
    x, lv, pred = _solve(cs, params, masks, iterations, learning_rate, prior_weight, basis)
    cv = np.zeros(len(cs))
    for k, n in enumerate(names, start=1):
        held = np.array([g == n for g in groups])
        cv[held] = pred[k][held]
    return Calibration(fit=_result(params, x, lv, pred, iterations, 0), cv_predicted=cv,
                       folds={n: x[k] for k, n in enumerate(names, start=1)}, groups=groups)
