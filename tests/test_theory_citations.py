"""Citations of the project's theory point at sections that exist, and at nothing outside the repository.

The theory is docs/theory.md, numbered ``## N.`` and ``### N.M`` with stable anchors ``sec-N-M``.
Code, specs, tests, notebooks and documents cite it as ``docs/theory.md §N.M`` (lists ``§A, §B``,
ranges ``§5.1-5.3``; documentation pages link ``theory.md#sec-N-M``). Source tags (``[R]``,
``[E]``, ...) are defined once, in its §18.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory.md"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".ipynb", ".json", ".yml", ".yaml", ".txt", ".cfg", ".ini", ""}
#: the name of the external notes the project once cited (spelled in two parts so that this file
#: does not mention it itself)
EXTERNAL_NOTES = "THEORY" + ".md"

HEADING = re.compile(r"^(?P<level>##|###) (?P<num>\d+(?:\.\d+)?)\.? .*?\{ #(?P<id>[\w-]+) \}\s*$", re.M)
SECTION_REF = re.compile(r"§(?P<a>\d+(?:\.\d+)?)(?:-(?P<b>\d+(?:\.\d+)?))?")
BARE_REF = re.compile(r"theory\.md\)?\s+(?:sections?\s+)?\d", re.I)
ANCHOR = re.compile(r"theory\.md#(?P<id>[\w.-]+)")
BRACKET = re.compile(r"(?<![\w\]\[])\[(?P<body>[^\[\]\n]{1,60})\](?![(\[])")
MATH = re.compile(r"\$[^$\n]+\$")
TAG = re.compile(r"^(?:[A-Z][a-z]?|[A-Z]{2})$")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=30).stdout
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / n for n in names if (ROOT / n).is_file() and Path(n).suffix in TEXT_SUFFIXES]


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    out = {}
    for path in _tracked_files():
        try:
            out[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    assert "docs/theory.md" in out and len(out) > 50
    return out


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    """Section number -> anchor id of every numbered heading of docs/theory.md."""
    found = {m["num"]: m["id"] for m in HEADING.finditer(THEORY.read_text(encoding="utf-8"))}
    return found


def test_theory_headings_are_numbered_in_order_with_matching_anchors(sections):
    tops = [int(n) for n in sections if "." not in n]
    assert tops == list(range(1, 22)), tops  # 1 Symbols ... 18 Sources, 19 serving, 20 the operator step, 21 power
    for num, anchor in sections.items():
        assert anchor == "sec-" + num.replace(".", "-"), (num, anchor)
    for must in ("1.1", "1.4", "3.2", "4.2", "5.5", "5.6", "7.3", "11.1", "13.2", "15.5", "15.10"):
        assert must in sections, must


def test_no_file_cites_the_external_notes(texts):
    offenders = [name for name, text in texts.items() if EXTERNAL_NOTES in text]
    assert offenders == [], f"cite docs/theory.md §N.M instead of {EXTERNAL_NOTES} in: {offenders}"


def test_every_cited_section_exists(texts, sections):
    missing = []
    for name, text in texts.items():
        for m in SECTION_REF.finditer(text):
            for num in (m["a"], m["b"]):
                if num and num not in sections:
                    line = text.count("\n", 0, m.start()) + 1
                    missing.append(f"{name}:{line}: §{num}")
    assert missing == [], "sections cited but not in docs/theory.md:\n" + "\n".join(missing)


def test_sections_are_cited_with_the_section_sign(texts):
    bare = []
    for name, text in texts.items():
        for m in BARE_REF.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            bare.append(f"{name}:{line}: {m.group(0)!r}")
    assert bare == [], "write docs/theory.md §N.M:\n" + "\n".join(bare)


def test_every_link_into_the_theory_names_an_anchor(texts, sections):
    anchors = set(sections.values())
    broken = [f"{name}: #{m['id']}" for name, text in texts.items() if name.startswith("docs/")
              for m in ANCHOR.finditer(text) if m["id"] not in anchors]
    assert broken == [], broken


def test_every_source_tag_is_defined_in_section_18(texts):
    theory = THEORY.read_text(encoding="utf-8")
    sources = theory.split("{ #sec-18 }", 1)[1].split("\n## ", 1)[0]
    defined = set(re.findall(r"^\| \*\*\[(\w+)\]\*\* \|", sources, re.M))
    assert {"R", "E", "S", "Ep", "DS", "K", "D"} <= defined, defined
    undefined = []
    for name, text in texts.items():
        text = MATH.sub(lambda m: " " * len(m.group(0)), text)  # shapes like $[B, D]$ are not tags
        for m in BRACKET.finditer(text):
            for piece in re.split(r",|;| from ", m["body"]):
                word = piece.strip().split(" ", 1)[0]
                if TAG.match(word) and word not in defined:
                    line = text.count("\n", 0, m.start()) + 1
                    undefined.append(f"{name}:{line}: [{m['body']}]")
    assert undefined == [], "source tags not defined in docs/theory.md §18:\n" + "\n".join(undefined)
