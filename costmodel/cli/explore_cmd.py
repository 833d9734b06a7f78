"""``costmodel explore``: write the explorer page (a static page; open its index.html from disk)."""

from __future__ import annotations

import argparse

HELP = "write the explorer: a static page with sliders over the model's closed forms (no server, no network)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..explorer.page import DEFAULT_DIR

    p.add_argument("--out", default=DEFAULT_DIR,
                   help=f"directory for index.html and its JavaScript and CSS (default {DEFAULT_DIR}/)")


def run(args: argparse.Namespace) -> int:
    from ..explorer import write_explorer

    index = write_explorer(args.out)
    print(f"wrote {index}: open it in a browser (file://{index.resolve()})")
    return 0
