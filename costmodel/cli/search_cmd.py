"""``costmodel search``: the exhaustive optimiser (every admissible configuration)."""

from __future__ import annotations

import argparse

from . import optimize_cmd

HELP = "exhaustive search for the cheapest configuration (the optimiser's oracle)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    optimize_cmd.add_arguments(p)
    p.set_defaults(method="exhaustive")


def run(args: argparse.Namespace) -> int:
    args.method = "exhaustive"
    return optimize_cmd.run(args)
