"""Example output of the command line, produced by running it when the site is built.

``<!-- generated: command costmodel predict --tp 8 -->`` becomes a text block
with the command and what it prints now, so examples never show stale numbers.
"""

from __future__ import annotations

import contextlib
import io
import shlex

from costmodel.cli import main


def render(command: str | None) -> str:
    """A fenced text block: ``$ command`` and its standard output.

    Raises:
        ValueError: the command is not a ``costmodel`` command or exits with a non-zero status.
    """
    argv = shlex.split(command or "")
    if not argv or argv[0] != "costmodel":
        raise ValueError(f"a command block runs `costmodel ...`, got {command!r}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv[1:])
    if status:
        raise ValueError(f"`{command}` exited with status {status}")
    return "\n".join(["```text", f"$ {command}", out.getvalue().rstrip("\n"), "```"])
