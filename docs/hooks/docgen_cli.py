"""The command-line reference, rendered from the argparse parsers of ``costmodel.cli``.

Every subcommand registered in ``costmodel.cli.COMMANDS`` gets a section with
its description, its usage line and a table of its arguments, so the page
cannot fall behind the code.
"""

from __future__ import annotations

import argparse

from costmodel.cli import COMMANDS, build_parser

WIDTH = 88


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(a: argparse.Action) -> str:
    if not a.option_strings:
        return f"`{a.metavar or a.dest}`"
    return ", ".join(f"`{s}`" for s in a.option_strings)


def _default(a: argparse.Action) -> str:
    if isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or a.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{a.default}`"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _options(p: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | values | default | meaning |", "|---|---|---|---|"]
    for a in p._actions:
        if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
            continue
        values = ", ".join(f"`{c}`" for c in a.choices) if a.choices else ""
        if not values and a.nargs != 0 and a.option_strings:
            values = a.metavar or a.dest.upper()
        rows.append(f"| {_flags(a)} | {_cell(values)} | {_cell(_default(a))} | {_cell(a.help)} |")
    return rows


def _usage(p: argparse.ArgumentParser) -> str:
    p.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)
    return p.format_usage().strip()


def render() -> str:
    """Markdown sections, one per subcommand, in the order of ``COMMANDS``."""
    parser = build_parser()
    subs = _subparsers(parser)
    out = ["```text", _usage(parser), "```", ""]
    for name in COMMANDS:
        p = subs[name]
        out += [f"## `costmodel {name}`", "", (p.description or "").strip().rstrip(".").capitalize() + ".", "",
                "```text", _usage(p), "```", "", *_options(p), ""]
    return "\n".join(out)
