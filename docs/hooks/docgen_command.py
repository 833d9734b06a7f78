"""Example output of the command line, produced by running it when the site is built.

``<!-- generated: command costmodel predict --tp 8 -->`` becomes a text block
with the command and what it prints now, so examples never show stale numbers (a search's wall
time, "solved by gradient in 812 ms", is shown as "... ms").
"""

from __future__ import annotations

import contextlib
import io
import re
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
    # a search's wall time differs run to run: shown as a placeholder, so the block stays checkable
    text = _WALL_TIME.sub(r"\1... ms", out.getvalue().rstrip("\n"))
    return "\n".join(["```text", f"$ {command}", text, "```"])


_WALL_TIME = re.compile(r"((?:solved by|in) [\w ]*?in )\d+ ms")
