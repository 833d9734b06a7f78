"""Example output of the command line, a script or a Python expression, produced by running it when
the site is built (and, for the README, by the docs check in the test suite).

Block kinds (the argument follows the kind in the marker):

* ``command costmodel predict --tp 8``: a text block with ``$ command`` and what it prints;
* ``error costmodel calibrate bad.json``: the same for a command that must be refused (exit status
  2); the block shows its one-line error;
* ``script experiments/pope2022.py``: ``$ python experiments/pope2022.py`` and what it prints;
* ``python cm.predict(...)``: ``>>> expression`` and its value, or the error it raises (``costmodel``
  is imported as ``cm``).

``command`` and ``script`` take ``| head N`` at the end to show only the first N lines (then
``...``). A search's wall time differs run to run: on a line that says ``solved`` (or a script's
``..._time: 67.8 s``), each duration is shown as a placeholder (``solved by gradient in ... ms``), so the block stays checkable.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from costmodel.cli import main

ROOT = Path(__file__).resolve().parents[2]
_HEAD = re.compile(r"\s*\|\s*head\s+(\d+)\s*$")
_DURATION = re.compile(r"\b\d[\d.,]*( ms| s)\b")
_TIMED = re.compile(r"\w*time\w*: ")  # a script's ``name: value unit`` line of a wall time


def _split_head(arg: str | None) -> tuple[str, int | None]:
    arg = (arg or "").strip()
    m = _HEAD.search(arg)
    return (arg[:m.start()], int(m[1])) if m else (arg, None)


def _shown(text: str, head: int | None) -> str:
    lines = [(_DURATION.sub(r"...\1", ln) if "solved" in ln or _TIMED.match(ln) else ln)
             for ln in text.rstrip("\n").splitlines()]
    if head is not None and len(lines) > head:
        lines = lines[:head] + ["..."]
    return "\n".join(lines)


def _run_cli(command: str) -> tuple[int, str, str]:
    argv = shlex.split(command)
    if not argv or argv[0] != "costmodel":
        raise ValueError(f"a command block runs `costmodel ...`, got {command!r}")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv[1:])
        except SystemExit as e:  # argparse's own refusals
            status = e.code if isinstance(e.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def render(arg: str | None) -> str:
    """``command``: a fenced text block, ``$ command`` and its standard output.

    Raises:
        ValueError: the command is not a ``costmodel`` command or exits with a non-zero status.
    """
    command, head = _split_head(arg)
    status, out, _ = _run_cli(command)
    if status:
        raise ValueError(f"`{command}` exited with status {status}")
    return "\n".join(["```text", f"$ {command}", _shown(out, head), "```"])


def render_error(arg: str | None) -> str:
    """``error``: a fenced text block, ``$ command`` and the one-line error it is refused with."""
    command, _ = _split_head(arg)
    status, out, err = _run_cli(command)
    if status != 2 or out:
        raise ValueError(f"`{command}` was to be refused with status 2 and no output; it exited with {status}")
    return "\n".join(["```text", f"$ {command}", err.rstrip("\n"), "```"])


def render_script(arg: str | None) -> str:
    """``script``: a fenced text block, ``$ python script args`` and its standard output."""
    command, head = _split_head(arg)
    argv = shlex.split(command)
    if not argv or not argv[0].startswith("experiments/") or not argv[0].endswith(".py"):
        raise ValueError(f"a script block runs `experiments/NAME.py ...`, got {command!r}")
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise ValueError(f"`python {command}` exited with status {done.returncode}: {done.stderr[-500:]}")
    return "\n".join(["```text", f"$ python {command}", _shown(done.stdout, head), "```"])


def render_python(arg: str | None) -> str:
    """``python``: a fenced text block, ``>>> expression`` and its value or the error it raises."""
    import costmodel as cm

    code = (arg or "").strip()
    try:
        shown = repr(eval(code, {"cm": cm}))  # noqa: S307 - the docs' own expressions
    except Exception as e:  # noqa: BLE001 - the error is what the block shows
        shown = f"{type(e).__name__}: {e}"
    wrapped = "\n".join(textwrap.wrap(shown, 100, break_long_words=False, break_on_hyphens=False))
    return "\n".join(["```text", f">>> {code}", wrapped, "```"])
