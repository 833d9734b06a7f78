"""The notebooks are stored without outputs and run top to bottom without error.

Each notebook runs in a fresh kernel of *this* interpreter (a kernel spec
written to a temporary folder points at ``sys.executable``), with matplotlib's
non-interactive Agg backend.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "costmodel-tests"
TIMEOUT_S = None  # no per-cell limit: a verdict never depends on how busy the cores are

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extra (nbformat)")


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _requirements(path: Path) -> str | None:
    """Why the notebook cannot run here (a public API it demonstrates is absent), or None.

    A notebook lists what it demonstrates in its metadata (``costmodel.requires``): names
    of ``costmodel`` attributes or submodules.
    """
    import costmodel

    needs = _read(path).metadata.get("costmodel", {}).get("requires", [])
    missing = [name for name in needs
               if not hasattr(costmodel, name) and importlib.util.find_spec(f"costmodel.{name}") is None]
    return f"costmodel lacks {', '.join(missing)}" if missing else None


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> list[str]:
    """A kernel spec that starts an IPython kernel in the interpreter running the tests."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "costmodel tests",
        "language": "python",
        "env": {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"},
    }))
    return [str(root)]


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"why_batching_matters", "optimizer_tour", "pope2022_reproduction"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


#: what a notebook may import from costmodel: the package and its documented public modules
PUBLIC_MODULES = {"costmodel", "costmodel.compile", "costmodel.derive", "costmodel.plot", "costmodel.symbolic"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_uses_the_public_api_only(path):
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type != "code":
            continue
        for module in re.findall(r"^\s*(?:from|import)\s+(costmodel[\w.]*)", cell.source, re.M):
            assert module in PUBLIC_MODULES, f"{path.name} cell {i} imports {module}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, kernel_dirs, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the test extra (nbclient)")
    pytest.importorskip("ipykernel", reason="the notebook tests need the test extra (ipykernel)")
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    why = _requirements(path)
    if why:
        pytest.skip(f"{path.name} demonstrates an API that is not here yet: {why}")
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    nb = _read(path)
    client = nbclient.NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=TIMEOUT_S, startup_timeout=3600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
