"""The documentation site builds with ``mkdocs build --strict`` and cannot drift from the code.

Generated blocks (docs/hooks/generated.py) fill the command-line reference from
the argparse parsers, the API reference from ``__all__``, the example outputs by
running the commands, and the theory page's formulas from ``costmodel.symbolic``
and ``costmodel.derive``; a committed formula that no longer matches
the code is a warning, which the strict build turns into a failure (refresh the
committed formulas with ``python docs/hooks/generated.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "docs" / "hooks"

pytest.importorskip("mkdocs", reason="the docs build needs the test extra (mkdocs, mkdocs-material, mkdocstrings)")
pytest.importorskip("material", reason="the docs build needs mkdocs-material (pip install -e '.[test]')")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs build needs mkdocstrings[python]")


def _hook_module():
    sys.path.insert(0, str(HOOKS))
    try:
        spec = importlib.util.spec_from_file_location("docs_generated_hook", HOOKS / "generated.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(HOOKS))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    return out


def test_strict_build_writes_every_page(site):
    for page in ("index.html", "theory/index.html", "cli/index.html", "api/index.html", "fleet/index.html",
                 "howto/choose-a-target/index.html", "howto/add-a-chip/index.html",
                 "howto/import-a-model/index.html", "howto/read-a-report/index.html", "explorer/index.html"):
        assert (site / page).is_file(), page


def test_the_site_carries_the_explorer_it_frames(site):
    """The explorer page of the site frames the page ``costmodel explore`` writes, built with the site."""
    from costmodel.explorer.page import STATIC_FILES

    assert 'src="../explorer-app/index.html"' in (site / "explorer" / "index.html").read_text()
    for name in (*STATIC_FILES, "costmodel-data.js"):
        assert (site / "explorer-app" / name).stat().st_size > 1000, name


def test_cli_page_lists_every_subcommand_and_option(site):
    from costmodel.cli import COMMANDS, build_parser

    html = (site / "cli" / "index.html").read_text()
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in COMMANDS:
        assert f"costmodel {name}" in html, name
        for action in subs[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert flag in html, f"{name} {flag}"


def test_api_page_documents_every_public_name(site):
    import costmodel

    html = (site / "api" / "index.html").read_text()
    for name in costmodel.__all__:
        assert f'id="{name}"' in html or f".{name}\"" in html, name


def test_a_stale_formula_block_is_reported():
    hook = _hook_module()
    page = "<!-- generated: formula kv_bytes_per_token_gqa -->\n$$\n\\kappa = 1\n$$\n<!-- end generated -->\n"
    filled, stale = hook.fill(page)
    assert stale == ["formula kv_bytes_per_token_gqa"]
    assert "\\kappa = 1" not in filled
    _, stale_again = hook.fill(filled)
    assert stale_again == []



# ---------------------------------------------------------------- every shown output is the program's

_FENCE = re.compile(r"^```[\w-]*\n(?P<body>.*?)^```", re.S | re.M)
_OUTPUT_LINE = re.compile(r"^(?:\$ |>>> |problem: |answer: |fleet: |\S+ \S*: ?error: |costmodel \w+: error: )", re.M)
# a benchmark's figures are timings of one run on one machine: shown as measured, never reproduced
_MEASURED = ("$ python experiments/bench.py",)


def test_every_output_a_page_shows_is_a_generated_block():
    """A fenced block that shows what a command, script or expression prints (a ``$ `` or ``>>> `` line,
    an answer, an error) sits in a generated block, which is produced by running it: the README's and
    the docs' shown outputs are the program's."""
    hook = _hook_module()
    loose = []
    for path in hook.pages(ROOT):
        text = hook.BLOCK.sub("", path.read_text())
        for m in _FENCE.finditer(text):
            body = m["body"]
            if _OUTPUT_LINE.search(body) and not body.startswith(_MEASURED):
                loose.append(f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}")
    assert not loose, f"shown output not produced by the program: {loose}"


def test_the_readme_shows_what_the_program_prints_now():
    """The README is read on GitHub, not built: its generated blocks are committed, and each equals what
    the program prints now (refresh them with ``python docs/hooks/generated.py``)."""
    hook = _hook_module()
    text = (ROOT / "README.md").read_text()
    blocks = list(hook.BLOCK.finditer(text))
    assert len(blocks) >= 2 and all(m["body"].strip() for m in blocks)
    _, stale = hook.fill(text)
    assert not stale, f"README blocks out of date with the program: {stale}; run `python docs/hooks/generated.py`"


#: the README's table of held-out kernel-fit errors: its row labels, and the (class, precision) of each figure
_KERNEL_ROWS = {
    "GEMM bf16 / fp8": [("gemm", "bf16"), ("gemm_fp8", "fp8")],
    "decode attention, bf16 / fp8 cache": [("attention_generation", "kv bf16"), ("attention_generation", "kv fp8")],
    "prefill attention bf16 / fp8": [("attention_context", "bf16"), ("attention_context", "fp8")],
    "MLA decode, bf16 / fp8 cache": [("mla_generation", "kv bf16"), ("mla_generation", "kv fp8")],
    "MLA prefill": [("mla_context", "bf16")],
    "fused MoE bf16 / fp8": [("moe", "bf16"), ("moe", "fp8")],
    "custom all-reduce, 2 / 4 / 8 GPUs": [("allreduce", "2 GPUs"), ("allreduce", "4 GPUs"), ("allreduce", "8 GPUs")],
}


def test_the_readmes_kernel_fit_table_is_the_packaged_profiles():
    """The held-out errors the README shows per class and chip are those the packaged ``kernels`` profile
    records from ``experiments/kernel_fit.py --write-profile`` (to the 0.1% shown)."""
    import json

    doc = json.loads((ROOT / "costmodel" / "calibrate" / "profiles" / "kernels.json").read_text())
    held = {(e["class"], e["chip"], e["precision"]): e["median_abs_error"] for e in doc["fit"]["held_out"]}
    text = (ROOT / "README.md").read_text()
    header = re.search(r"^\| class \| (?P<chips>[^\n]*) \| bar \|$", text, re.M)
    assert header, "the README's kernel-fit table is missing"
    chips = [{"H100 SXM": "h100-sxm", "H200": "h200", "B200": "b200"}[c.strip()] for c in header["chips"].split("|")]
    seen = set()
    for label, keys in _KERNEL_ROWS.items():
        row = re.search(rf"^\| {re.escape(label)} \| (?P<cells>[^\n]*) \| \d+% \|$", text, re.M)
        assert row, f"README kernel-fit row {label!r} missing"
        for chip, cell in zip(chips, row["cells"].split("|")):
            shown = [float(v.strip().rstrip("%")) for v in cell.split("/")]
            want = [100 * held[(cls, chip, prec)] for cls, prec in keys]  # the profile keeps 4 digits
            assert len(shown) == len(want) and all(abs(a - b) <= 0.051 for a, b in zip(shown, want)), \
                (label, chip, shown, want)
            seen.add(label)
    assert seen == set(_KERNEL_ROWS)
