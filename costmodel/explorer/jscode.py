"""SymPy expressions printed as JavaScript: the explorer page's copy of the compiled functions.

The same expression objects that :mod:`costmodel.compile` hands to ``sympy.lambdify`` for JAX are
printed here with SymPy's JavaScript printer after common-subexpression elimination, so the page
evaluates the model's own closed forms, never a second implementation of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.printing.jscode import JavascriptCodePrinter

__all__ = ["js_function"]


class _Printer(JavascriptCodePrinter):
    """Inputs read from the argument object ``x`` (``x["batch"]``); temporaries by their own names."""

    def __init__(self, temporaries: set[sp.Symbol]):
        super().__init__({"strict": True})
        self._temporaries = temporaries

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return expr.name if expr in self._temporaries else f'x["{expr.name}"]'


def js_function(exprs: Mapping[str, sp.Expr]) -> tuple[str, list[str]]:
    """A JavaScript function expression ``function (x) {...}`` returning ``{name: value}`` for ``exprs``.

    Returns:
        ``(source, input names)``: the inputs are the free symbols, read as ``x["name"]``.

    Raises:
        ValueError: an expression holds a function JavaScript has no counterpart for (SymPy's strict
            printer refuses it rather than print something that does not run).
    """
    names = list(exprs)
    values = [sp.sympify(exprs[n]) for n in names]
    free = sorted(set().union(*(e.free_symbols for e in values)), key=lambda s: s.name)
    temps = sp.numbered_symbols("t")
    replacements, reduced = sp.cse(values, symbols=temps)
    printer = _Printer({s for s, _ in replacements})
    lines = ["function (x) {"]
    lines += [f"  const {s.name} = {printer.doprint(e)};" for s, e in replacements]
    lines.append("  return {")
    lines += [f'    "{n}": {printer.doprint(e)},' for n, e in zip(names, reduced)]
    lines += ["  };", "}"]
    return "\n".join(lines), [s.name for s in free]
