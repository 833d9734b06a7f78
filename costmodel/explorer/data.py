"""What the explorer page embeds: the catalog as the numbers the compiled functions read, and the
closed forms printed as JavaScript.

Everything here is taken from the same objects :func:`costmodel.predict` uses: each model's
``inputs()``, each chip's ``inputs(math)`` after its efficiency profile is resolved for the phase, the
bytes of each format, the tensor-parallel mesh of each chip, and which splits each model allows on
each chip (:func:`costmodel.parallel.check_parallel`). The page only assembles them, as
:meth:`costmodel.inputs.Scenario.inputs` does.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Electricity, Parallel, Precision
from ..efficiency import resolve_efficiency
from ..errors import CostModelError
from ..inputs import math_the_chip_runs, mesh_shares, weight_only_flags
from ..limits import RANGES
from ..parallel import check_parallel, mesh_of
from ..specs import BYTES_PER_ELEMENT, default_math_precision
from ..specs.catalog import list_hardware, list_models, load_hardware, load_model
from ..symbolic import Rules, outputs
from ..symbolic.serving import serving_outputs
from .jscode import js_function

__all__ = ["PROFILES", "TP", "PP", "EP", "CONTRACT", "catalog", "functions", "cli_defaults"]

#: the efficiency profiles the page offers (their names on the command line)
PROFILES = ("ideal", "calibrated")
#: the degrees the page offers (a split a model or chip does not allow is greyed out)
TP = (1, 2, 4, 8, 16, 32, 64)
PP = (1, 2, 4, 8, 16)
EP = (1, 2, 4, 8, 16, 32, 64)
#: the keys ``window.costmodel.evaluate`` returns, as ``costmodel predict --json`` names them
CONTRACT = ("step_time_s", "tokens_per_s", "tokens_per_s_per_user", "usd_per_mtok", "memory_bytes_per_chip",
            "fits", "max_batch", "bound", "power_w_per_chip", "joules_per_output_token")
#: the keys of the page's configuration, as the command line names its options
CONFIG_KEYS = ("model", "hardware", "weights", "kv", "tp", "pp", "ep", "batch", "context", "prompt", "efficiency")
#: the outputs of the static-batch closed form the page shows
_STATIC = ("static_decode_s", "tokens_per_step")


def cli_defaults() -> dict[str, Any]:
    """The defaults of ``costmodel predict`` for the page's keys (read from its parser, so they are one)."""
    from ..cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["predict"]
    d = {a.dest: a.default for a in sub._actions if a.dest in CONFIG_KEYS}
    return {k: d.get(k) for k in CONFIG_KEYS}


def _split_mask(model, chip) -> str:
    """``"1"``/``"0"`` per ``(tp, pp, ep)`` of :data:`TP` x :data:`PP` x :data:`EP` (in that nesting):
    whether the model allows that split on that chip."""
    bits = []
    for tp in TP:
        for pp in PP:
            for ep in EP:
                par = Parallel(tp=tp, pp=pp, ep=ep)
                try:
                    check_parallel(model, par, "1d-ws", mesh_of(par, chip))
                    bits.append("1")
                except CostModelError:
                    bits.append("0")
    return "".join(bits)


def _chip(name: str) -> dict[str, Any]:
    h = load_hardware(name)
    profiles = {}
    for prof in PROFILES:
        phases = {}
        for phase in ("decode", "prefill"):
            eff, hp = resolve_efficiency(prof, h, phase)
            phases[phase] = {"efficiency": eff.inputs(), "math": {m: hp.inputs(m) for m in hp.flops_per_s}}
        profiles[prof] = phases
    return {"name": h.name, "vendor": h.vendor, "maths": list(h.flops_per_s), "profiles": profiles,
            "mesh_shares": {str(tp): mesh_shares(Parallel(tp=tp), h) for tp in TP},
            # the math each weight format runs in when the user names no format (the model's own is dequantised
            # on a chip without its math), and when the user names it
            "default_math": {f: math_the_chip_runs(h, default_math_precision(f)) for f in BYTES_PER_ELEMENT},
            "usd_per_chip_hour": float(h.usd_per_chip_hour), "hbm_bytes": float(h.hbm_bytes),
            "has_power": h.has_power}


def _structure_key(st) -> str:
    return f"{st.attention}-{st.mlp}-{'q' if st.q_compressed else 'nq'}-{st.window}"


def catalog() -> dict[str, Any]:
    """The page's data: models, chips, formats, limits, defaults and the split tables."""
    chips = {n: _chip(n) for n in list_hardware()}
    models = {}
    for name in list_models():
        m = load_model(name)
        models[name] = {
            "name": m.name, "structure": _structure_key(m.structure), "inputs": m.inputs(),
            "native_precision": m.native_precision, "attention": m.structure.attention, "mlp": m.structure.mlp,
            "windowed": m.structure.window != "none",
            "splits": {c: _split_mask(m, load_hardware(c)) for c in chips},
        }
    par, prec = Parallel(), Precision()
    return {
        "models": models, "chips": chips, "profiles": list(PROFILES),
        "formats": {"bytes": dict(BYTES_PER_ELEMENT),
                    "default_math": {f: default_math_precision(f) for f in BYTES_PER_ELEMENT},
                    # weight_only_8bit, weight_only_4bit, low_precision_math of each (weights, math) pair
                    "weight_only": {w: {m: weight_only_flags(w, m) for m in BYTES_PER_ELEMENT}
                                    for w in BYTES_PER_ELEMENT}},
        "activations": prec.activations, "kv_default": "bf16",
        # the default electricity (rental prices: its cost is not added; docs/theory.md §21)
        "electricity": Electricity().inputs(),
        "parallel": {"replicas": par.replicas, "redundant_experts": par.redundant_experts,
                     "expert_imbalance": par.expert_imbalance},
        "degrees": {"tp": list(TP), "pp": list(PP), "ep": list(EP)},
        "limits": {k: list(RANGES[k][:2]) for k in ("batch", "context", "prompt")},
        "defaults": cli_defaults(), "contract": list(CONTRACT),
    }


def functions() -> dict[str, dict[str, Any]]:
    """Per model structure: the decode and prefill outputs (:func:`costmodel.symbolic.outputs`, the
    expressions :func:`costmodel.predict` compiles) and the static-batch decode sum
    (:func:`costmodel.symbolic.serving.serving_outputs`, absent for windowed attention), as JavaScript."""
    out: dict[str, dict[str, Any]] = {}
    for name in list_models():
        st = load_model(name).structure
        key = _structure_key(st)
        if key in out:
            continue
        entry = {}
        for phase in ("decode", "prefill"):
            entry[phase], _ = js_function(outputs(st, Rules(phase=phase)))
        serving = serving_outputs(st, Rules())
        kept = {k: serving[k] for k in _STATIC if k in serving}
        entry["static"] = js_function(kept)[0] if "static_decode_s" in kept else None
        out[key] = entry
    return out
