"""Griffe extension: read the house docstrings the way they are written.

Two habits of the code's Google-style docstrings that griffe's parser reads
differently:

- the examples section is called ``Example:`` (griffe expects ``Examples:``);
  without the rename, ``>>>`` lines would be read as Markdown;
- several parameters or attributes may share one entry (``model, hardware: ...``);
  they are split into one entry each, with the same description, so that
  griffe can still check every name against the signature.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.M)
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes|Keyword Args|Other Parameters):\s*$")
_GROUPED = re.compile(r"^(\s+)(\w+(?:\s*,\s*\w+)+)(\s*\([^)]*\))?:(.*)$")


def _split_grouped(text: str) -> str:
    out: list[str] = []
    section_indent: int | None = None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section_indent = len(m.group(1))
        elif line.strip() and section_indent is not None and len(line) - len(line.lstrip()) <= section_indent:
            section_indent = None
        if section_indent is not None and (m := _GROUPED.match(line)):
            indent, names, kind, rest = m.group(1), m.group(2), m.group(3) or "", m.group(4)
            out += [f"{indent}{name.strip()}{kind}:{rest}" for name in names.split(",")]
        else:
            out.append(line)
    return "\n".join(out)


class HouseDocstrings(griffe.Extension):
    """Rewrite a docstring before griffe parses it."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _split_grouped(_SINGULAR.sub(r"\1Examples:", obj.docstring.value))
