"""Fit the operator step's kernel efficiencies to measured kernel tables; print held-out errors.

Needs the kernels extra (``pip install -e '.[kernels]'``): the measured latencies of
aiconfigurator-core 0.12.0 (TensorRT-LLM 1.3.0rc20 tables, :mod:`costmodel.kernels.tables`).
For each die (H100 and H200 share one; B200) and operator class it fits the parameters of
:mod:`costmodel.symbolic.kernels` on the shapes not held out (:func:`costmodel.calibrate.kernels.held_out`)
and prints the median |predicted/measured - 1| on the held-out shapes, per chip and precision.

    python experiments/kernel_fit.py [--steps 600] [--write-profile]

``--write-profile`` writes the fitted parameters as the packaged profile
``costmodel/calibrate/profiles/kernels.json``.
"""

from __future__ import annotations

import argparse
import os
import time

from costmodel.calibrate import kernels as K
from costmodel.kernels import read_table

BARS = {"gemm": 0.10, "gemm_fp8": 0.10, "attention_context": 0.10, "attention_generation": 0.10, "allreduce": 0.10,
        "moe": 0.15, "mla_generation": 0.15, "mla_context": 0.15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="Adam steps per fit (default 600)")
    ap.add_argument("--dies", default=",".join(K.DIES), help=f"dies to fit (default {','.join(K.DIES)})")
    ap.add_argument("--write-profile", action="store_true", help="write costmodel/calibrate/profiles/kernels.json")
    args = ap.parse_args()
    classes = [c for c, _, _, _ in K.PLAN] + ["mla_context"]
    fits = {}
    for die in args.dies.split(","):
        chips = K.DIES[die]
        t0 = time.perf_counter()
        tables = {c: {chip: read_table(c, chip) for chip in chips} for c in {t for _, t, _, _ in K.PLAN} | {"mla_context"}}
        fits[die] = K.fit_die(tables, steps=args.steps, log=lambda s: print(f"  [{die}] {s}", flush=True))
        print(f"{die}: fitted in {time.perf_counter() - t0:.0f} s (load average {os.getloadavg()[0]:.1f})")
    print()
    print("| class | chip | precision | held-out rows | median abs error | bar |")
    print("|---|---|---|---:|---:|---:|")
    for die, res in fits.items():
        for c in classes:
            for (chip, label), (err, n) in sorted(res[c].errors.items()):
                flag = "" if err <= BARS[c] else " (over)"
                print(f"| {c} | {chip} | {label} | {n} | {err:.1%}{flag} | {BARS[c]:.0%} |")
    if args.write_profile:
        path = K.write_profile(fits)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
