"""Fidelity: the model's predictions against every published measurement.

For each record: the ideal roofline's prediction, the calibrated prediction
(fitted on all records), the leave-one-source-out prediction (fitted without the
record's source), the measured value, and measured/predicted ratios. Then the
median and worst absolute percentage error, in-sample and cross-validated, as
``name: value unit`` lines.

Run: ``python experiments/fidelity.py`` (about 40 s on 2 CPU cores, deterministic).
"""

from __future__ import annotations

import time

import numpy as np

import costmodel as cm
from costmodel.calibrate import calibrate
from costmodel.calibrate.fit import values_for
from costmodel.calibrate.records import METRICS
from costmodel.calibrate.run import errors


#: TTFT at about 2 requests/s stated in the notes of two TensorRT-LLM records (not fitted).
TTFT_NOTES_S = {"TRT-11": 0.062, "TRT-14": 0.023}


def ttft_reference(cs, cal) -> None:
    """Time to first token (prefill of one prompt + one decode step) against the sources' notes."""
    fitted = values_for(cs, cal.fit.params, cal.fit.values)
    print("TTFT at low load (not fitted; measured values from the records' notes):")
    for name, values in (("ideal", cs.ideal_values()), ("calibrated", fitted)):
        batches = cs.batches(values)
        for c, b in zip(cs.cases, batches):
            if c.id not in TTFT_NOTES_S:
                continue
            eff = "ideal" if name == "ideal" else "calibrated"
            w = dict(context=c.context, prompt=c.prompt)
            pre = cm.predict(c.model, c.hardware, cm.Workload(batch=1, phase="prefill", **w), parallel=c.parallel,
                             precision=c.precision, efficiency=eff)
            dec = cm.predict(c.model, c.hardware, cm.Workload(batch=float(b), **w), parallel=c.parallel,
                             precision=c.precision, efficiency=eff)
            t = pre.step_time_s + dec.step_time_s
            print(f"  {c.id:7} {name:10} TTFT {1e3 * t:6.1f} ms, measured {1e3 * TTFT_NOTES_S[c.id]:.0f} ms, "
                  f"measured/predicted {TTFT_NOTES_S[c.id] / t:.2f}")


def main() -> None:
    t0 = time.perf_counter()
    cal, cs = calibrate()
    seconds = time.perf_counter() - t0
    ideal = np.asarray(cs.predict(cs.ideal_values()))
    fit, cv = cal.fit.predicted, cal.cv_predicted
    head = (f"{'record':8} {'source':12} {'metric':19} {'unit':8} {'measured':>10} {'ideal':>10} "
            f"{'calib.':>10} {'cv':>10} {'meas/ideal':>10} {'meas/cal':>9} {'meas/cv':>8}")
    print(head)
    print("-" * len(head))
    for c, i, f, v in zip(cs.cases, ideal, fit, cv):
        unit = METRICS[c.metric][0]
        print(f"{c.id:8} {c.source:12} {c.metric:19} {unit:8} {c.measured:10.4g} {i:10.4g} {f:10.4g} "
              f"{v:10.4g} {c.measured / i:10.3f} {c.measured / f:9.3f} {c.measured / v:8.3f}")
    print()
    print("bound check (ideal time <= measured time; ideal rate >= measured rate):")
    broken = [c.id for c, i in zip(cs.cases, ideal) if (i > c.measured if c.is_time else i < c.measured)]
    print("  every record respects the bound" if not broken else f"  VIOLATED by {', '.join(broken)}")
    print()
    ttft_reference(cs, cal)
    print()
    for p, x in zip(cal.fit.params, cal.fit.values):
        print(f"parameter {p.name}: {x:.4g} (bounds {p.lo:g} to {p.hi:g})")
    print()
    e_ideal, e_fit, e_cv = errors(ideal, cs.measured), errors(fit, cs.measured), errors(cv, cs.measured)
    print(f"records: {len(cs)} count")
    print(f"sources: {len(set(cal.groups))} count")
    print(f"parameters: {len(cal.fit.params)} count")
    print(f"ideal_median_ape: {100 * e_ideal['median_ape']:.1f} %")
    print(f"ideal_worst_ape: {100 * e_ideal['worst_ape']:.1f} %")
    print(f"calibrated_in_sample_median_ape: {100 * e_fit['median_ape']:.1f} %")
    print(f"calibrated_in_sample_worst_ape: {100 * e_fit['worst_ape']:.1f} %")
    print(f"calibrated_cv_median_ape: {100 * e_cv['median_ape']:.1f} %")
    print(f"calibrated_cv_worst_ape: {100 * e_cv['worst_ape']:.1f} %")
    print(f"fit_loss: {cal.fit.loss:.5f} mean_sq_log_ratio")
    print(f"calibration_time: {seconds:.1f} s")


if __name__ == "__main__":
    main()
