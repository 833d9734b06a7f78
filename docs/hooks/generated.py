"""MkDocs hook: fill the generated blocks of the documentation from the code.

A page marks a generated block like this::

    <!-- generated: KIND [ARGUMENT] -->
    ...body...
    <!-- end generated -->

At build time the body is replaced by what the code produces now (``cli``:
the argparse parsers; ``api``: the public names; ``formula NAME`` and
``derivation NAME``: the theory page's formulas from :mod:`costmodel.symbolic`
and :mod:`costmodel.derive`; ``command costmodel ...``, ``error costmodel ...``, ``script
experiments/NAME.py`` and ``python EXPRESSION``: what that command, script or expression prints,
see docgen_command). A block whose
committed body is empty is simply filled. A block with a committed body must
equal the fresh one: a difference is a warning, which ``mkdocs build --strict``
turns into a failure, so a page cannot drift from the code. Refresh the
committed bodies with::

    python docs/hooks/generated.py
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

# MkDocs puts this folder on sys.path while it loads the hook, as does running it as a script.
import docgen_api
import docgen_cli
import docgen_command
import docgen_theory

log = logging.getLogger("mkdocs.hooks.generated")

BLOCK = re.compile(
    r"(?P<open><!-- generated: (?P<kind>[\w-]+)(?: (?P<arg>[^\n]*?))? -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- end generated -->)",
    re.S,
)

RENDERERS = {
    "cli": lambda arg: docgen_cli.render(),
    "command": docgen_command.render,
    "error": docgen_command.render_error,
    "script": docgen_command.render_script,
    "python": docgen_command.render_python,
    "api": lambda arg: docgen_api.render(),
    "formula": docgen_theory.render,
    "derivation": docgen_theory.render,
}


def render(kind: str, arg: str | None) -> str:
    """The fresh body of one block, ending in a newline."""
    if kind not in RENDERERS:
        raise ValueError(f"unknown generated block kind {kind!r}; known: {', '.join(RENDERERS)}")
    return RENDERERS[kind](arg).rstrip("\n") + "\n"


def fill(markdown: str) -> tuple[str, list[str]]:
    """Replace every block by its fresh body; return the text and the stale block names."""
    stale: list[str] = []

    def one(m: re.Match) -> str:
        fresh = render(m["kind"], m["arg"])
        if m["body"].strip() and m["body"].strip() != fresh.strip():
            stale.append(f"{m['kind']} {m['arg'] or ''}".strip())
        return m["open"] + fresh + m["close"]

    return BLOCK.sub(one, markdown), stale


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs event: fill the page's generated blocks; warn about stale committed ones."""
    where = page.file.src_path
    text, stale = fill(markdown)
    for name in stale:
        log.warning(f"{where}: generated block '{name}' is out of date with the code; "
                    "run `python docs/hooks/generated.py` to refresh it")
    return text


def pages(root: Path) -> list[Path]:
    """The pages whose generated blocks are checked: the README and every docs page."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def refresh(root: Path) -> list[Path]:
    """Rewrite the committed bodies of every page that has some (every README block, which no site
    build fills); return the changed files."""
    changed = []
    for path in pages(root):
        text = path.read_text()
        keep = path.name == "README.md"
        new = BLOCK.sub(lambda m: m["open"] + (render(m["kind"], m["arg"]) if keep or m["body"].strip() else "")
                        + m["close"], text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for p in refresh(Path(__file__).resolve().parents[2]):
        print(f"refreshed {p}")
