"""Fit the operator step's kernel efficiencies to measured kernel latencies (docs/theory.md §20.5).

Each operator class of :mod:`costmodel.kernels.tables` is priced by the same SymPy kernel forms the
step uses (:mod:`costmodel.symbolic.kernels`), compiled to JAX with the table's shapes as inputs;
the efficiency parameters are fitted by gradient descent (optax's Adam) on the log-latency with a
Huber loss, so the fit targets the relative error that is reported. Every parameter is mapped into
its physical range (a fraction of peak in ``(0.02, 1)``, a length or a time positive), so no fit
leaves it.

Chips that share a die share their compute parameters: H100 SXM and H200 are one GH100 die (the
H200 datasheet: "the same Hopper architecture", more and faster memory), so they are fitted
together with one set of compute efficiencies and floors, and their own HBM efficiencies. The H200's
is tied above the H100's achieved bandwidth (``W·η_m``), so the H200, at least as good in every
datasheet number, is never slower on the same kernel.

Rows are split into fit and held-out parts by shape, never by row (neighbouring rows are nearly
duplicates): whole (n, k) sites for GEMMs, whole head configurations for attention, whole model
shapes for MoE, a tensor-parallel size for MLA, alternate message sizes for the all-reduce.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..specs.catalog import load_hardware

__all__ = ["Param", "Form", "FORMS", "KernelRows", "rows_for", "held_out", "fit", "predict_rows", "FitResult",
           "COMPUTE_UNITS", "DIES"]

#: Streaming multiprocessors per chip: the wave size of a GEMM (NVIDIA H100 Tensor Core GPU
#: Architecture whitepaper: 132 SMs on H100 SXM5; H200: the same GH100 configuration; B200:
#: 148 SMs, NVIDIA Blackwell architecture technical brief; NVIDIA A100 Tensor Core GPU Architecture
#: whitepaper: 108 SMs; NVIDIA Ada GPU Architecture whitepaper and the L40S datasheet: 142 SMs).
COMPUTE_UNITS: dict[str, int] = {"h100-sxm": 132, "h200": 132, "b200": 148, "a100-80gb": 108, "l40s": 142}

#: Chips that share a die, fitted with one set of compute parameters (first: the reference chip).
DIES: dict[str, tuple[str, ...]] = {"gh100": ("h100-sxm", "h200"), "gb100": ("b200",), "ga100": ("a100-80gb",),
                                    "ad102": ("l40s",)}

#: DeepSeek-V3's MLA widths (config.json: kv_lora_rank 512, qk_rope_head_dim 64,
#: qk_nope_head_dim 128, v_head_dim 128): the shapes the MLA tables measure.
MLA_DIMS = {"kv_lora_rank": 512.0, "qk_rope_head_dim": 64.0, "qk_nope_head_dim": 128.0, "v_head_dim": 128.0}

_DTYPE_BYTES = {"bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "fp8_block": 1.0}


@dataclass(frozen=True)
class Param:
    """A fitted parameter: ``kind`` ``"fraction"`` (in ``(lo, 1)``) or ``"positive"`` (``scale·softplus``)."""

    name: str
    kind: str
    scale: float = 1.0
    init: float = 0.5
    lo: float = 0.02
    per_chip: bool = False  # one value per chip of a die (memory); shared otherwise


@dataclass(frozen=True)
class Form:
    """How an operator class is priced: the kernel expressions to sum and the parameters to fit."""

    op_class: str
    build: Callable[[], object]  # -> SymPy expression of the time, in shape symbols and model inputs
    params: tuple[Param, ...]
    discrete: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


def _shape(*names: str):
    import sympy as sp

    return [sp.Symbol(f"shape_{n}", positive=True) for n in names]


def _gemm_expr():
    from ..symbolic import kernels as kn
    from ..symbolic.symbols import sym

    M, N, K = _shape("m", "n", "k")
    return kn.gemm(M, N, K, weight_bytes=sym("weight_bytes"), activation_bytes=sym("activation_bytes")).time_s


def _decode_attention_expr():
    from ..symbolic import kernels as kn
    from ..symbolic.symbols import sym

    B, hq, hkv, H, S = _shape("batch", "num_heads", "num_kv_heads", "head_dim", "context")
    return kn.decode_attention(B, hq, hkv, H, S, 1, kv_bytes=sym("kv_bytes"),
                               activation_bytes=sym("activation_bytes")).time_s


def _prefill_attention_expr():
    from ..symbolic import kernels as kn
    from ..symbolic.symbols import sym

    B, hq, hkv, width, T, pairs, kvw, w = _shape("batch", "num_heads", "num_kv_heads", "width", "isl", "pairs",
                                                 "kv_write_bytes", "window")
    return kn.prefill_attention(B, hq, hkv, width, T, pairs, kv_write_bytes=kvw,
                                activation_bytes=sym("activation_bytes"), window=w, kv_bytes=sym("kv_bytes")).time_s


def _mla_decode_expr():
    from ..symbolic import kernels as kn
    from ..symbolic.symbols import sym

    B, hq, S = _shape("batch", "num_heads", "context")
    return kn.mla_decode_attention(B, hq, S, 1, kv_bytes=sym("kv_bytes"), activation_bytes=sym("activation_bytes")).time_s


def _moe_expr():
    """The fused MoE of the tables: routing, the two grouped GEMMs (the first applies the gated
    activation), the finalize (the rows ``moe_routing`` .. ``moe_finalize`` of
    :mod:`costmodel.symbolic.operators`)."""
    from ..symbolic import kernels as kn
    from ..symbolic.symbols import sym

    t, D, F, k, E, mtp, mep, mats = _shape("num_tokens", "hidden", "inter", "topk", "num_experts", "moe_tp",
                                           "moe_ep", "matrices")
    wb, ab = sym("weight_bytes", "activation_bytes")
    touched = 1 - (1 - k / E) ** t
    local, Me = E / mep, t * k / E
    up = kn.grouped_gemm(local, Me, (mats - 1) * F / mtp, D, touched=touched, weight_bytes=wb, activation_bytes=ab)
    down = kn.grouped_gemm(local, Me, D, F / mtp, touched=touched, weight_bytes=wb, activation_bytes=ab)
    s = t / mep
    kappa = sym("moe_token_passes")
    parts = [kn.elementwise(s * (D + 2 * k) * ab + kappa * s * k * D * ab), up, down,
             kn.elementwise(s * D * ab + kappa * s * k * D * ab)]
    return sum(p.time_s for p in parts)


def _allreduce_expr():
    from ..symbolic import kernels as kn
    from ..symbolic.collectives import Span, link_bytes_per_s

    V, n = _shape("message_bytes", "num_gpus")
    return kn.all_reduce(V, Span(n, link_bytes_per_s(n), n - 1)).time_s


_FLOOR = Param("kernel_overhead_s", "positive", 1e-6, 2.0)
FORMS: dict[str, Form] = {
    "gemm": Form("gemm", _gemm_expr, (
        Param("flops_efficiency", "fraction", init=0.7), Param("hbm_efficiency", "fraction", init=0.8, per_chip=True),
        Param("gemm_k_half", "positive", 256.0, 0.5), _FLOOR),
        {"gemm_tile_m": (64.0, 128.0), "gemm_tile_n": (128.0, 256.0), "gemm_split_k": (512.0, 2048.0, 65536.0)}),
    "gemm_fp8": Form("gemm", _gemm_expr, (
        Param("low_precision_flops_factor", "fraction", init=0.7), Param("low_precision_hbm_factor", "fraction", init=0.8),
        Param("quantise_overhead_s", "positive", 1e-6, 4.0))),
    "attention_generation": Form("attention_generation", _decode_attention_expr, (
        Param("attention_decode_efficiency", "fraction", init=0.8, per_chip=True),
        Param("attention_decode_work_half", "positive", 1e7, 1.0), Param("attention_floor_s", "positive", 1e-6, 2.0),
        Param("decode_attention_block_s", "positive", 1e-6, 1.0), Param("decode_attention_row_s", "positive", 1e-7, 1.0),
        Param("attention_fallback_efficiency", "fraction", init=0.01, lo=1e-3)),
        {"attention_group_tile": (8.0, 16.0, 32.0, 1e6), "attention_group_limit": (16.0, 32.0, 1e6)}),
    "attention_context": Form("attention_context", _prefill_attention_expr, (
        Param("attention_prefill_efficiency", "fraction", init=0.6),
        Param("attention_prefill_rows_half", "positive", 1e5, 0.2),
        Param("prefill_attention_block_s", "positive", 1e-6, 1.0), Param("prefill_attention_row_s", "positive", 1e-8, 1.0),
        Param("attention_softmax_width", "positive", 32.0, 0.5),
        Param("attention_window_block_tokens", "positive", 256.0, 1.0)),
        {"attention_block_tokens": (64.0, 128.0)}),
    "mla_generation": Form("mla_generation", _mla_decode_expr, (
        Param("mla_decode_efficiency", "fraction", init=0.6), Param("mla_hbm_efficiency", "fraction", init=0.9, per_chip=True),
        Param("mla_floor_s", "positive", 1e-6, 5.0)),
                           {"mla_head_tile": (16.0, 32.0, 64.0)}),
    "moe": Form("moe", _moe_expr, (Param("moe_gemm_efficiency", "fraction", init=0.5),
                                   Param("moe_floor_s", "positive", 1e-5, 2.0),
                                   Param("moe_token_passes", "positive", 1.0, 1.0))),
    "allreduce": Form("allreduce", _allreduce_expr, (
        Param("oneshot_allreduce_latency_s", "positive", 1e-6, 3.0), Param("collective_latency_s", "positive", 1e-5, 1.0),
        Param("collective_step_latency_s", "positive", 1e-6, 1.0), Param("comm_efficiency", "fraction", init=0.8))),
}
#: classes priced by another class's parameters (no parameter of their own): MLA prefill is a prefill attention
EVALUATED_ONLY = {"mla_context": _prefill_attention_expr}


@functools.cache
def _compiled(op_class: str):
    from ..compile import lambdified

    build = FORMS[op_class].build if op_class in FORMS else EVALUATED_ONLY[op_class]
    fn, inputs, _, _ = lambdified(None, lambda: {"time_s": build()}, "jax")
    return fn, inputs


@dataclass(frozen=True)
class KernelRows:
    """Rows of one class on one or more chips, as model inputs: every column a float array."""

    op_class: str
    inputs: dict[str, np.ndarray]
    latency_s: np.ndarray
    chip: np.ndarray  # str
    held_out: np.ndarray  # bool
    label: np.ndarray  # str: the precision group a row is reported under

    def subset(self, mask: np.ndarray) -> "KernelRows":
        return KernelRows(self.op_class, {k: v[mask] for k, v in self.inputs.items()}, self.latency_s[mask],
                          self.chip[mask], self.held_out[mask], self.label[mask])


def _hash_out(*cols: np.ndarray, fold: int = 5) -> np.ndarray:
    keys = ["|".join(str(c) for c in row) for row in zip(*cols)]
    return np.array([zlib.crc32(k.encode()) % fold == 0 for k in keys])


def held_out(op_class: str, t: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which rows a fit leaves out, by shape (module docstring)."""
    if op_class == "gemm":
        return _hash_out(t["n"], t["k"])
    if op_class in ("attention_generation", "attention_context"):
        return _hash_out(t["num_heads"], t["num_kv_heads"], t["head_dim"])
    if op_class in ("mla_generation", "mla_context"):
        return t["tp"] == 4
    if op_class == "moe":
        return _hash_out(t["hidden"], t["inter"], t["topk"], t["num_experts"])
    if op_class in ("allreduce", "nccl"):
        sizes = np.unique(t["message_bytes"])
        return np.isin(t["message_bytes"], sizes[1::2])
    raise ConfigError(f"no held-out rule for operator class {op_class!r}")


def _chip_inputs(chip: str, n: int) -> dict[str, np.ndarray]:
    hw = load_hardware(chip)
    fixed = {"hbm_bytes_per_s": hw.hbm_bytes_per_s, "compute_units": COMPUTE_UNITS[chip],
             "scale_up_bytes_per_s": hw.scale_up_bytes_per_s, "scale_out_bytes_per_s": hw.scale_out_bytes_per_s,
             "scale_up_domain_chips": hw.scale_up_domain_chips, "low_precision_math": 0.0,
             "low_precision_flops_factor": 1.0, "low_precision_hbm_factor": 1.0, "quantise_overhead_s": 0.0,
             "cuda_graphs": 1.0, "launch_overhead_s": 0.0, "graph_floor_fraction": 1.0, **MLA_DIMS}
    return {k: np.full(n, float(v)) for k, v in fixed.items()}


def _peak(chip: str, dtype: np.ndarray) -> np.ndarray:
    hw = load_hardware(chip)
    return np.where(np.isin(dtype, ("fp8", "fp8_block")), hw.flops_per_s.get("fp8", hw.flops_per_s["bf16"]),
                    hw.flops_per_s["bf16"])


def _bytes_of(dtype: np.ndarray) -> np.ndarray:
    return np.array([_DTYPE_BYTES.get(str(d), np.nan) for d in dtype])


def _class_inputs(op_class: str, t: Mapping[str, np.ndarray], chip: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """(inputs, keep mask, label) of one chip's table of ``op_class``."""
    n = len(t["latency_s"])
    x = _chip_inputs(chip, n)
    keep = np.ones(n, bool)
    if op_class == "gemm":
        b = _bytes_of(t["dtype"])
        x |= {"shape_m": t["m"], "shape_n": t["n"], "shape_k": t["k"], "weight_bytes": b, "activation_bytes": b,
              "flops_per_s": _peak(chip, t["dtype"]), "low_precision_math": (b == 1).astype(float)}
        keep = np.isin(t["dtype"], ("bfloat16", "fp8"))
        label = np.where(t["dtype"] == "fp8", "fp8", "bf16")
    elif op_class == "attention_generation":
        S = np.where(t["window"] > 0, np.minimum(t["context"], t["window"]), t["context"])
        x |= {"shape_batch": t["batch"], "shape_num_heads": t["num_heads"], "shape_num_kv_heads": t["num_kv_heads"],
              "shape_head_dim": t["head_dim"], "shape_context": S, "kv_bytes": _bytes_of(t["kv_dtype"]),
              "activation_bytes": np.full(n, 2.0), "flops_per_s": _peak(chip, t["dtype"]),
              "attention_flops_per_s": _peak(chip, t["dtype"])}
        label = np.char.add("kv ", np.where(t["kv_dtype"] == "fp8", "fp8", "bf16"))
    elif op_class in ("attention_context", "mla_context"):
        T = t["isl"]
        if op_class == "attention_context":
            w = np.where(t["window"] > 0, np.minimum(T, t["window"]), T)
            pairs, width, hkv = w * (T - w / 2), 2 * t["head_dim"], t["num_kv_heads"]
            kvw = t["batch"] * T * 2 * hkv * t["head_dim"] * _bytes_of(t["kv_dtype"])
        else:
            pairs, width, hkv = T**2 / 2, np.full(n, 320.0), t["num_heads"]
            kvw = t["batch"] * T * 576 * _bytes_of(t["kv_dtype"])
        x |= {"shape_batch": t["batch"], "shape_num_heads": t["num_heads"], "shape_num_kv_heads": hkv,
              "shape_width": width, "shape_isl": T, "shape_pairs": pairs, "shape_kv_write_bytes": kvw,
              "shape_window": np.where(t["window"] > 0, np.minimum(T, t["window"]), T) if "window" in t else T,
              "kv_bytes": _bytes_of(t["kv_dtype"]), "activation_bytes": np.full(n, 2.0),
              "flops_per_s": _peak(chip, t["dtype"]),
              "attention_flops_per_s": _peak(chip, t["dtype"])}
        label = np.where(t["dtype"] == "fp8", "fp8", "bf16")
    elif op_class == "mla_generation":
        x |= {"shape_batch": t["batch"], "shape_num_heads": t["num_heads"], "shape_context": t["context"],
              "kv_bytes": _bytes_of(t["kv_dtype"]), "activation_bytes": np.full(n, 2.0),
              "flops_per_s": _peak(chip, t["dtype"]),
              "attention_flops_per_s": _peak(chip, t["dtype"])}
        label = np.char.add("kv ", np.where(t["kv_dtype"] == "fp8", "fp8", "bf16"))
    elif op_class == "moe":
        b = _bytes_of(t["dtype"])
        gated = np.char.find(t["kernel"].astype(str), "nongated") < 0
        x |= {"shape_num_tokens": t["num_tokens"], "shape_hidden": t["hidden"], "shape_inter": t["inter"],
              "shape_topk": t["topk"], "shape_num_experts": t["num_experts"], "shape_moe_tp": t["moe_tp"],
              "shape_moe_ep": t["moe_ep"], "shape_matrices": np.where(gated, 3.0, 2.0), "weight_bytes": b,
              "activation_bytes": np.full(n, 2.0), "flops_per_s": _peak(chip, t["dtype"]), "moe_imbalance": np.ones(n),
              "low_precision_math": (b == 1).astype(float)}
        keep = np.isin(t["dtype"], ("bfloat16", "fp8")) & (t["distribution"] == "balanced")
        label = np.where(t["dtype"] == "fp8", "fp8", "bf16")
    elif op_class == "allreduce":
        x |= {"shape_message_bytes": t["message_bytes"], "shape_num_gpus": t["num_gpus"]}
        label = np.char.add(t["num_gpus"].astype(int).astype(str), " GPUs")
    else:
        raise ConfigError(f"no kernel form for operator class {op_class!r}; choose one of "
                          f"{', '.join([*FORMS, *EVALUATED_ONLY])}")
    keep &= np.all([np.isfinite(v) for v in x.values()], axis=0)
    return x, keep, np.asarray(label, str)


def rows_for(op_class: str, tables: Mapping[str, Mapping[str, np.ndarray]]) -> KernelRows:
    """The rows of ``op_class`` from ``{chip: table}`` (:func:`costmodel.kernels.read_table` columns)."""
    parts = []
    for chip, t in tables.items():
        x, keep, label = _class_inputs(op_class, t, chip)
        parts.append(KernelRows(op_class, x, np.asarray(t["latency_s"], float), np.full(len(keep), chip),
                                held_out(op_class, t), label).subset(keep))
    names = sorted(set().union(*(p.inputs for p in parts)))
    return KernelRows(op_class, {k: np.concatenate([p.inputs[k] for p in parts]) for k in names},
                      np.concatenate([p.latency_s for p in parts]), np.concatenate([p.chip for p in parts]),
                      np.concatenate([p.held_out for p in parts]), np.concatenate([p.label for p in parts]))


def _transform(p: Param, z):
    import jax
    import jax.numpy as jnp

    if p.kind == "fraction":
        return p.lo + (1 - p.lo) * jax.nn.sigmoid(z)
    return p.scale * jnp.logaddexp(z, 0.0)


def _inverse(p: Param, v: float) -> float:
    if p.kind == "fraction":
        u = min(max((v - p.lo) / (1 - p.lo), 1e-6), 1 - 1e-6)
        return float(np.log(u / (1 - u)))
    u = max(v / p.scale, 1e-9)
    return float(np.log(np.expm1(u))) if u < 30 else u


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters of one class: ``values[chip][name]``, the discrete choices, the fit loss."""

    op_class: str
    values: dict[str, dict[str, float]]
    loss: float


def _evaluate(op_class: str, inputs: Mapping[str, np.ndarray], values: Mapping[str, object]):
    fn, names = _compiled(op_class)
    import jax.numpy as jnp

    merged = {**inputs, **values}
    missing = [n for n in names if n not in merged]
    if missing:
        raise ConfigError(f"{op_class}: inputs missing for the kernel form: {', '.join(missing)}")
    return fn(*(jnp.asarray(merged[n]) for n in names))[0]


def _chip_values(rows: KernelRows, per_chip: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
    names = set().union(*(v.keys() for v in per_chip.values())) if per_chip else set()
    return {n: np.array([per_chip[c][n] for c in rows.chip], float) for n in names}


def predict_rows(rows: KernelRows, values: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """Predicted latency (s) of every row under per-chip parameter ``values[chip][name]``."""
    import jax

    with jax.enable_x64(True):
        return np.asarray(_evaluate(rows.op_class, rows.inputs, _chip_values(rows, values)))


def fit(rows: KernelRows, fixed: Mapping[str, Mapping[str, float]], *, steps: int = 1500, max_rows: int = 40_000,
        seed: int = 0, learning_rate: float = 0.05, form: Form | None = None) -> FitResult:
    """Fit ``form`` (default ``FORMS[rows.op_class]``) on the rows not held out, each discrete choice
    tried in turn.

    ``fixed[chip]`` holds parameters fitted earlier (a GEMM's tile sizes and HBM efficiency for
    the MoE fit, say). Chips of one die share every parameter not marked ``per_chip``; per-chip
    fractions of the second chip of a die are tied above the first's achieved bandwidth.
    """
    import itertools

    import jax
    import jax.numpy as jnp
    import optax

    form = form or FORMS[rows.op_class]
    train = rows.subset(~rows.held_out)
    if len(train.latency_s) > max_rows:
        pick = np.random.default_rng(seed).choice(len(train.latency_s), max_rows, replace=False)
        train = train.subset(np.sort(pick))
    order = [c for die in DIES.values() for c in die]
    chips = sorted(set(train.chip), key=lambda c: order.index(c) if c in order else len(order))
    chip_idx = np.array([chips.index(c) for c in train.chip])
    W = np.array([load_hardware(c).hbm_bytes_per_s for c in chips])
    base = _chip_values(train, fixed)
    best: FitResult | None = None
    choices = list(itertools.product(*form.discrete.values())) or [()]
    with jax.enable_x64(True):
        y = jnp.log(jnp.asarray(train.latency_s))
        for choice in choices:
            disc = dict(zip(form.discrete, choice))

            def unpack(z):
                vals = {}
                for i, p in enumerate(form.params):
                    if p.per_chip:
                        first = _transform(p, z[i][0])
                        # later chips of a die: between the first's achieved bandwidth and 1
                        rest = [first * W[0] / W[j] + (1 - first * W[0] / W[j]) * jax.nn.sigmoid(z[i][j])
                                for j in range(1, len(chips))]
                        vals[p.name] = jnp.stack([first, *rest])[chip_idx]
                    else:
                        vals[p.name] = _transform(p, z[i][0])
                return vals

            def loss(z):
                pred = _evaluate(rows.op_class, train.inputs, {**base, **{k: float(v) for k, v in disc.items()},
                                                               **unpack(z)})
                return jnp.mean(optax.losses.huber_loss(jnp.log(pred), y, delta=0.1))

            z = [jnp.array([_inverse(p, p.init * (p.scale if p.kind == "positive" else 1))]
                           + ([0.0] * (len(chips) - 1) if p.per_chip else []))
                 for p in form.params]
            opt = optax.adam(learning_rate)
            state = opt.init(z)

            @jax.jit
            def step(z, state):
                value, g = jax.value_and_grad(loss)(z)
                updates, state = opt.update(g, state)
                return optax.apply_updates(z, updates), state, value

            for _ in range(steps):
                z, state, value = step(z, state)
            final = float(loss(z))
            vals = unpack(z)
            out = {}
            for j, c in enumerate(chips):
                row = np.where(chip_idx == j)[0][0]
                out[c] = {**disc, **{k: float(np.asarray(v)[row] if np.ndim(v) else v) for k, v in vals.items()}}
            if best is None or final < best.loss:
                best = FitResult(rows.op_class, out, final)
    return best


def errors(rows: KernelRows, values: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """``predicted/measured - 1`` of every row."""
    return predict_rows(rows, values) / rows.latency_s - 1


def median_abs_error(rows: KernelRows, values: Mapping[str, Mapping[str, float]],
                     by: Sequence[str] = ("chip", "label")) -> dict[tuple, tuple[float, int]]:
    """Median ``|predicted/measured - 1|`` over held-out rows, per chip and precision label: ``(error, rows)``."""
    e = np.abs(errors(rows, values))
    out = {}
    keys = np.array(["|".join(str(getattr(rows, b)[i]) for b in by) for i in range(len(e))]) if len(e) else np.array([])
    for key in sorted(set(keys[rows.held_out])):
        m = rows.held_out & (keys == key)
        out[tuple(key.split("|"))] = (float(np.median(e[m])), int(m.sum()))
    return out


#: The order classes are fitted in, what each takes from the fits before it, and whether its
#: precisions (``label``) are fitted apart (GEMM, prefill attention and MoE math run at the
#: precision's own peak and reach their own fraction of it).
PLAN: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...] | None], ...] = (
    # (fit, table, fits it takes parameters from, precisions fitted apart; None: all rows as one)
    ("gemm", "gemm", (), ("bf16",)),
    ("gemm_fp8", "gemm", ("gemm",), ("fp8",)),
    ("attention_generation", "attention_generation", ("gemm",), None),
    ("attention_context", "attention_context", ("gemm", "attention_generation"), ("bf16", "fp8")),
    ("mla_generation", "mla_generation", ("gemm", "attention_generation"), None),
    ("moe", "moe", ("gemm", "gemm_fp8"), ("bf16",)),
    ("allreduce", "allreduce", (), None),
)
#: rows priced by parameters fitted on other rows: (report as, table, fits, precision)
EVALUATED: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("moe", "moe", ("gemm", "gemm_fp8", "moe"), "fp8"),  # the bf16 fit with the 8-bit factors of the GEMMs
    ("mla_context", "mla_context", ("gemm", "attention_generation", "attention_context"), "bf16"),
)

#: Prefill attention is taken at bf16 by the fits after it.
REFERENCE_LABEL = "bf16"


@dataclass(frozen=True)
class ClassFit:
    """The fit of one class on one die: ``values[label][chip][name]`` and held-out errors."""

    op_class: str
    values: dict[str, dict[str, dict[str, float]]]
    errors: dict[tuple[str, str], tuple[float, int]]


def fit_die(tables: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], *, steps: int = 600,
            log: Callable[[str], None] = lambda s: None) -> dict[str, ClassFit]:
    """Fit every entry of :data:`PLAN` on the chips of one die and price the :data:`EVALUATED` rows:
    ``tables[op_class][chip]`` are :func:`costmodel.kernels.read_table` columns. Returns
    ``{fit name: ClassFit}`` (errors per chip and precision on the held-out shapes)."""
    out: dict[str, ClassFit] = {}
    chips = sorted({c for t in tables.values() for c in t})

    def taken(deps: Sequence[str]) -> dict[str, dict[str, float]]:
        fixed: dict[str, dict[str, float]] = {c: {} for c in chips}
        for d in deps:
            if d not in out or not out[d].values:
                continue  # nothing of that class on these chips (no fp8 on an A100)
            vals = out[d].values
            lab = REFERENCE_LABEL if REFERENCE_LABEL in vals else next(iter(vals))
            for c in chips:
                fixed[c].update(vals[lab][c])
        return fixed

    for name, table, deps, labels in PLAN:
        if table not in tables:
            continue
        rows = rows_for(table, tables[table])
        fixed = taken(deps)
        values, errs = {}, {}
        for lab in labels or ["*"]:
            part = rows if lab == "*" else rows.subset(rows.label == lab)
            if not (~part.held_out).any():
                continue  # no rows of this precision on these chips
            res = fit(part, fixed, steps=steps, form=FORMS[name])
            values[lab] = {c: {**fixed[c], **res.values[c]} for c in chips}
            errs.update(median_abs_error(part, values[lab]))
            log(f"{name} {lab}: loss {res.loss:.4f}")
        out[name] = ClassFit(name, values, errs)
    for name, table, deps, lab in EVALUATED:
        if table not in tables or not all(d in out for d in deps):
            continue
        rows = rows_for(table, tables[table])
        part = rows.subset(rows.label == lab)
        if not len(part.latency_s) or not all(out[d].values for d in deps):
            continue
        vals = taken(deps)
        errs = median_abs_error(part, vals)
        if name in out:
            out[name].errors.update(errs)
        else:
            out[name] = ClassFit(name, {lab: vals}, errs)
    return out


#: What each fitted class gives the profile: the fields taken from its reference precision.
_PROFILE_FIELDS: dict[str, tuple[str, ...]] = {
    "gemm": ("flops_efficiency", "hbm_efficiency", "gemm_k_half", "kernel_overhead_s", "gemm_tile_m", "gemm_tile_n",
             "gemm_split_k", "compute_units"),
    "gemm_fp8": ("low_precision_flops_factor", "low_precision_hbm_factor", "quantise_overhead_s"),
    "attention_generation": ("attention_decode_efficiency", "attention_decode_work_half", "attention_floor_s",
                             "decode_attention_block_s", "decode_attention_row_s", "attention_group_tile",
                             "attention_group_limit", "attention_fallback_efficiency"),
    "attention_context": ("attention_prefill_efficiency", "attention_prefill_rows_half", "prefill_attention_block_s",
                          "prefill_attention_row_s",
                          "attention_block_tokens", "attention_softmax_width", "attention_window_block_tokens"),
    "mla_generation": ("mla_decode_efficiency", "mla_head_tile", "mla_hbm_efficiency", "mla_floor_s"),
    "moe": ("moe_gemm_efficiency", "moe_floor_s", "moe_token_passes"),
    "allreduce": ("oneshot_allreduce_latency_s", "collective_latency_s", "collective_step_latency_s", "comm_efficiency"),
}
PROFILE_PATH = "profiles/kernels.json"


def profile_json(fits: Mapping[str, Mapping[str, ClassFit]], base: Mapping[str, object], *, date: str) -> dict:
    """The ``kernels`` profile: ``base`` (the end-to-end calibrated profile, for chips without kernel
    tables and for the engine's memory rule) plus, per chip with tables, the fitted kernel
    parameters (chip-level entries beat family-level ones, :func:`costmodel.efficiency.specificity`).
    Chips without tables take the operator shape parameters of the reference chip (the first of the
    first die) under ``"*"``."""
    params = [dict(p) for p in base["parameters"]]  # type: ignore[index]
    errors = []
    reference = None
    for die, res in fits.items():
        for op_class, fields in _PROFILE_FIELDS.items():
            if op_class not in res or not res[op_class].values:
                continue
            cf = res[op_class]
            lab = REFERENCE_LABEL if REFERENCE_LABEL in cf.values else next(iter(cf.values))
            for chip, vals in cf.values[lab].items():  # each fit's values include what it took before
                for f in fields:
                    value = COMPUTE_UNITS[chip] if f == "compute_units" else vals[f]
                    params.append({"field": f, "family": chip, "phase": "*", "value": float(value),
                                   "meaning": f"fitted to {op_class} kernel latencies ({lab}) of {chip}"})
                if reference is None:
                    reference = chip
        for op_class, cf in res.items():
            for (chip, label), (err, n) in sorted(cf.errors.items()):
                errors.append({"class": op_class, "chip": chip, "precision": label, "held_out_rows": n,
                               "median_abs_error": round(err, 4)})
    operator_fields = {f for fs in _PROFILE_FIELDS.values() for f in fs} - {
        "flops_efficiency", "hbm_efficiency", "collective_latency_s", "collective_step_latency_s", "comm_efficiency",
        "low_precision_flops_factor"}
    for p in [q for q in params if q["family"] == reference and q["field"] in operator_fields]:
        params.append({**p, "family": "*", "meaning": f"borrowed from {reference}: no kernel tables for this chip"})
    from .. import kernels as kt

    return {
        "name": "kernels",
        "about": ("The operator-level step's kernel efficiencies fitted to measured kernel latencies (aiconfigurator-core "
                  f"{kt.AICONFIGURATOR_VERSION}, TensorRT-LLM tables; docs/theory.md §20.5) for the chips with tables, "
                  "over the end-to-end calibrated profile for the rest. Use with step 'operators'."),
        "fixed": dict(base.get("fixed", {})),  # type: ignore[union-attr]
        "fallback_family": base.get("fallback_family", ""),
        "parameters": params,
        "fit": {"tables": f"aiconfigurator-core {kt.AICONFIGURATOR_VERSION}, trtllm", "date": date,
                "held_out": errors, "method": "optax Adam on log-latency, Huber delta 0.1; split by shape"},
    }


def write_profile(fits: Mapping[str, Mapping[str, ClassFit]], *, date: str | None = None):
    """Write :func:`profile_json` over the packaged ``calibrated`` profile as the packaged ``kernels``
    profile (atomically: a temporary file, then a rename). Returns the path."""
    import datetime
    import json
    from importlib import resources
    from pathlib import Path

    here = Path(str(resources.files(__package__)))
    base = json.loads((here / "profiles" / "calibrated.json").read_text())
    doc = profile_json(fits, base, date=date or datetime.date.today().isoformat())
    from ..files import write_text_atomic

    return write_text_atomic(here / PROFILE_PATH, json.dumps(doc, indent=1) + "\n")
