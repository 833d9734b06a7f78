"""``costmodel calibrate``: refit the efficiency profile to a file of measurements.

The file has the schema of the packaged measurement set (``{"records": [...]}``, each record with
the fields of :data:`costmodel.calibrate.records.REQUIRED_FIELDS`); the profile it writes is used
with ``--efficiency PATH`` by every subcommand (docs/howto/calibrate-to-your-cluster.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..files import write_text_atomic
from .common import print_json

HELP = "fit the efficiency parameters to a measurements file and write a profile for --efficiency"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("measurements", metavar="MEASUREMENTS.json",
                   help="measurement records, the schema of costmodel/calibrate/data/measurements.json")
    p.add_argument("--out", default="profile.json", metavar="PROFILE.json",
                   help="where to write the profile (default: %(default)s)")
    p.add_argument("--name", default="calibrated", help="the profile's name (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="optimiser steps, 1 to 100000 (default: 1000)")
    p.add_argument("--json", action="store_true", help="print the profile's fit summary as JSON")


def run(args: argparse.Namespace) -> int:
    from ..calibrate.records import load_cases
    from ..calibrate.run import ITERATIONS, calibrate, profile_dict, summary
    from ..errors import ConfigError

    iterations = ITERATIONS if args.iterations is None else args.iterations
    if not 1 <= iterations <= 100_000:
        raise ConfigError(f"--iterations must be a whole number from 1 to 100000, got {iterations}")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; pass a file path for the profile JSON")
    if out.exists() and out.resolve() == Path(args.measurements).resolve():
        raise ConfigError(f"--out {out} is the measurements file itself; write the profile to another file "
                          "(e.g. --out profile.json)")
    cases = load_cases(args.measurements)  # a malformed file or record fails here, before any fit
    from ..calibrate.evaluate import CaseSet

    cal, cs = calibrate(iterations=iterations, cases=CaseSet(cases))
    d = profile_dict(cal, cs, name=args.name)
    bad = [f"{p['field']}[{p['family']},{p['phase']}]" for p in d["parameters"] if not math.isfinite(p["value"])]
    if bad:
        raise ConfigError(f"the fit of {args.measurements} ({len(cases)} record(s)) left {len(bad)} parameter(s) "
                          f"undetermined ({', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''}); nothing written: "
                          "give more records, from more than one source")
    write_text_atomic(out, json.dumps(d, indent=1, allow_nan=False) + "\n")  # JSON has no NaN
    if args.json:
        print_json({"profile": str(out), **d["fit"]})
    else:
        print("\n".join(summary(d, out)))
    return 0
