"""Document blocks and their Markdown and LaTeX renderings (used by :mod:`costmodel.report`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Heading", "Para", "Math", "Table", "Figure_", "render", "formulas"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Math:
    """Display math, LaTeX without delimiters."""

    latex: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure_:
    path: str
    caption: str


def _md(b) -> str:
    if isinstance(b, Heading):
        return "#" * b.level + " " + b.text
    if isinstance(b, Para):
        return b.text
    if isinstance(b, Math):
        return f"$$\n{b.latex}\n$$"
    if isinstance(b, Table):
        cells = [b.header, ["---"] * len(b.header), *b.rows]
        return "\n".join("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells)
    return f"![{b.caption}]({b.path})\n\n*{b.caption}.*"


_TEX_ESCAPE = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}"}


def _tex_text(s: str) -> str:
    """Escape text for LaTeX, keeping ``$...$`` inline math as it is."""
    parts = re.split(r"(\$[^$]+\$)", s)
    return "".join(p if p.startswith("$") and p.endswith("$") and len(p) > 1 else
                   "".join(_TEX_ESCAPE.get(ch, ch) for ch in p) for p in parts)


def _tex(b) -> str:
    if isinstance(b, Heading):
        cmd = {1: "title", 2: "section", 3: "subsection"}[b.level]
        return rf"\{cmd}{{{_tex_text(b.text)}}}" + (r"\maketitle" if b.level == 1 else "")
    if isinstance(b, Para):
        return _tex_text(b.text)
    if isinstance(b, Math):
        return f"\\[\n{b.latex}\n\\]"
    if isinstance(b, Table):
        cols = "l" * len(b.header)
        body = [" & ".join(_tex_text(c) for c in row) + r" \\" for row in b.rows]
        head = " & ".join(_tex_text(c) for c in b.header) + r" \\ \hline"
        return "\n".join([r"\begin{center}\small", rf"\begin{{tabular}}{{{cols}}}", head, *body,
                          r"\end{tabular}", r"\end{center}"])
    return "\n".join([r"\begin{figure}[h]\centering", rf"\includegraphics[width=0.8\linewidth]{{{b.path}}}",
                      rf"\caption{{{_tex_text(b.caption)}}}", r"\end{figure}"])


_PREAMBLE = "\n".join([r"\documentclass{article}", r"\usepackage{amsmath,graphicx}",
                       r"\usepackage[margin=2cm]{geometry}", r"\begin{document}"])


def render(blocks: list, fmt: str) -> str:
    """The blocks as a Markdown (``"md"``) or standalone LaTeX (``"tex"``) document."""
    if fmt == "md":
        return "\n\n".join(_md(b) for b in blocks) + "\n"
    return _PREAMBLE + "\n\n" + "\n\n".join(_tex(b) for b in blocks) + "\n\n\\end{document}\n"


def formulas(text: str) -> list[str]:
    """Every formula in a rendered document: ``$$...$$``, ``\\[...\\]`` and inline ``$...$``."""
    display = re.findall(r"\$\$(.+?)\$\$", text, flags=re.S) + re.findall(r"\\\[(.+?)\\\]", text, flags=re.S)
    rest = re.sub(r"\$\$(.+?)\$\$", "", text, flags=re.S)
    inline = re.findall(r"(?<![\\$])\$([^$\n]+?)\$", rest)
    return [f.strip() for f in display + inline]
