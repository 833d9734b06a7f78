"""`costmodel report`: the document's formulas are valid LaTeX (each parsed by matplotlib's mathtext,
which rejects malformed input) and its figures exist as non-trivial images."""

import re

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.mathtext import MathTextParser  # noqa: E402

from costmodel._render import formulas  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.report import write_report  # noqa: E402

_PARSER = MathTextParser("agg")


def invalid_formulas(text):
    """Formulas of a document that mathtext cannot parse."""
    bad = []
    for f in formulas(text):
        try:
            _PARSER.parse(f"${' '.join(f.split())}$", 72)
        except ValueError:
            bad.append(f)
    return bad


@pytest.fixture(scope="module")
def md_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--model", "llama-3-70b", "--hardware", "h100-sxm", "--format", "md",
                 "--efficiency", "ideal", "--out", str(out)]) == 0  # the hand numbers are ideal-roofline ones
    return out, (out / "report.md").read_text()


def test_checker_catches_broken_latex():
    assert invalid_formulas("$$\n\\frac{a}{b}\n$$ and $x^{2}$") == []
    assert invalid_formulas("$$\n\\frac{a}{b\n$$") == ["\\frac{a}{b"]
    assert invalid_formulas("text $\\undefinedcommand{x}$") == ["\\undefinedcommand{x}"]


def test_markdown_formulas_render(md_report):
    _, text = md_report
    found = formulas(text)
    assert len(found) > 40
    assert invalid_formulas(text) == []


def test_markdown_sections_and_numbers(md_report):
    _, text = md_report
    for heading in ("## Model and chip", "## Derivations", "## Predicted operating points",
                    "## The optimiser's answer", "## Figures"):
        assert heading in text
    # docs/theory.md §7.1 (R = 295), §7.3 (S_wall ~ 1,460; the model: 1,476), §11.1 (f = 5/14 = 0.3571)
    assert "B^{*} = " in text and "= 295.3\n" in text
    assert "S_{wall}" in text and "= 1476\n" in text
    assert "= 0.3571\n" in text
    assert "Numbers substituted" in text


def test_markdown_figures_exist(md_report):
    out, text = md_report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    from costmodel.plot.kinds import FIGURES

    assert len(images) == len(FIGURES) == 6
    for name in images:
        data = (out / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 10_000


def test_latex_document(tmp_path):
    path = write_report("llama-3-8b", "h100-sxm", tmp_path, fmt="tex", tp=1, optimise=False)
    text = path.read_text()
    assert text.startswith("\\documentclass") and text.rstrip().endswith("\\end{document}")
    assert invalid_formulas(text) == []
    assert text.count("{") == text.count("}")
    for name in re.findall(r"\\includegraphics\[[^\]]*\]\{([^}]+)\}", text):
        assert (tmp_path / name).stat().st_size > 10_000


def test_bad_format_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--format", "docx", "--out", str(tmp_path)])
    assert e.value.code == 2
