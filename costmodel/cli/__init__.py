"""The ``costmodel`` command line: one module per subcommand.

Every user error is one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import CostModelError
from .common import cli_words

__all__ = ["main", "COMMANDS"]

#: subcommand -> module under costmodel.cli defining ``add_arguments(parser)`` and ``run(args)``.
COMMANDS: dict[str, str] = {
    "predict": "predict_cmd",
    "optimize": "optimize_cmd",
    "search": "search_cmd",
    "list": "list_cmd",
    "sweep": "sweep_cmd",
    "plot": "plot_cmd",
    "report": "report_cmd",
    "calibrate": "calibrate_cmd",
    "plan": "plan_cmd",
    "explore": "explore_cmd",
}


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags (``--tp`` must never become ``--tpot-ms``); errors on one line."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # argparse prints usage and exits 2: keep it one line
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(message: str) -> str:
    """``message`` on one line: line breaks (from a value echoed back) written as ``\\n``."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``costmodel`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = _Parser(prog="costmodel", description="Roofline cost model of LLM inference.")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the persistent caches of compiled programs and generated "
                             "functions (also COSTMODEL_NO_CACHE=1; COSTMODEL_CACHE_DIR moves them)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument("--no-cache", action="store_true", default=argparse.SUPPRESS,
                       help="as `costmodel --no-cache`: do not use the persistent caches")
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``costmodel`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if args.no_cache:
        from ..cache import set_cache

        set_cache(enabled=False)
    try:
        if getattr(args, "engine", None) is not None:  # --engine: the profile under that engine's memory rule
            from ..engines import with_engine
            args.efficiency = with_engine(args.efficiency, args.engine)
        return int(args._run(args) or 0)
    except CostModelError as e:
        words = getattr(args, "_words", cli_words)  # `plan` names the keys of its file, not flags
        print(f"costmodel {args.command}: error: {one_line(words(str(e)))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `costmodel sweep ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as e:  # an output file or folder that cannot be created or written
        where = f" {e.filename}" if e.filename else ""
        print(f"costmodel {args.command}: error: cannot write{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
