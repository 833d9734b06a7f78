"""The API reference: one mkdocstrings entry per public name, grouped by module.

The public surface is ``costmodel.__all__`` (eager and lazily loaded names)
plus the ``__all__`` of the documented submodules below that exist. A name
added to ``__all__`` appears in the reference without editing the page.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys

import costmodel

#: submodules whose own ``__all__`` is public API (skipped while a module does not exist yet).
SUBMODULES = (
    "costmodel.compile",
    "costmodel.symbolic",
    "costmodel.derive",
    "costmodel.plot",
    "costmodel.report",
)

#: module -> section title, in the order of the layers (other modules follow alphabetically).
TITLES = {
    "costmodel.specs": "Models and chips",
    "costmodel.config": "Serving configuration",
    "costmodel.inputs": "Scenarios",
    "costmodel.prediction": "Prediction",
    "costmodel.optimizer": "Optimisation",
    "costmodel.sweeps": "Sweeps",
    "costmodel.calibrate": "Calibration",
    "costmodel.derive": "Derivations",
    "costmodel.plot": "Plots",
    "costmodel.report": "Reports",
    "costmodel.errors": "Errors",
    "costmodel.compile": "Compiled model (JAX)",
    "costmodel.symbolic": "Symbolic model (SymPy)",
}


def _defining_module(obj: object, name: str, fallback: str) -> str:
    """Where ``obj`` is defined: its ``__module__``, or for constants the deepest module listing it."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__module__
    owners = [m for m, mod in list(sys.modules.items())
              if m.startswith("costmodel.") and name in getattr(mod, "__all__", ())
              and getattr(mod, name, None) is obj]
    return max(owners, key=lambda m: m.count("."), default=fallback)


def _group(module_name: str) -> str:
    """The section a defining module belongs to (its first two dotted parts)."""
    return ".".join(module_name.split(".")[:2])


def public_objects() -> dict[str, list[str]]:
    """Section module -> dotted paths of the objects to document, without duplicates."""
    entries: list[tuple[str, str]] = []
    for name in costmodel.__all__:
        if name in getattr(costmodel, "_LAZY", {}):
            fallback = f"costmodel.{costmodel._LAZY[name]}"
        else:
            fallback = "costmodel"
        obj = getattr(costmodel, name)
        entries.append((_defining_module(obj, name, fallback), name))
    for mod_name in SUBMODULES:
        if importlib.util.find_spec(mod_name) is None:
            continue
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            entries.append((_defining_module(obj, name, mod_name), name))
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for module_name, name in entries:
        path = f"{module_name}.{name}"
        if path not in seen:
            seen.add(path)
            groups.setdefault(_group(module_name), []).append(path)
    return groups


def render() -> str:
    """Markdown: a heading per section and a ``::: path`` entry per object."""
    groups = public_objects()
    order = [m for m in TITLES if m in groups] + sorted(m for m in groups if m not in TITLES)
    out: list[str] = []
    for mod in order:
        out += [f"## {TITLES.get(mod, '`' + mod + '`')}", ""]
        out += [f"::: {path}\n" for path in groups[mod]]
    return "\n".join(out)
