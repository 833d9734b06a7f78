"""The result of a derivation: a SymPy expression, its LaTeX, its steps and its value.

A :class:`Derivation` holds the closed form SymPy found (``expr``, in the
model's own input symbols), a compact form in which the model's aggregate
quantities (fetched parameters, matmul parameters, KV bytes per token, ...) are
named (``compact``, with ``definitions``), the steps that led to it, and the
assumptions made on the way. ``value`` and ``evaluate`` substitute numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..errors import ConfigError
from ..symbolic import latex_names

__all__ = ["Derivation", "Step", "extra_symbol", "to_latex", "collapse"]

# Symbols a derivation adds to the model's inputs (targets, ratios, speculative parameters).
_EXTRA: dict[str, tuple[sp.Symbol, str, str]] = {}


def extra_symbol(name: str, latex: str, meaning: str, *, positive: bool = True) -> sp.Symbol:
    """A symbol that is not a model input (a latency target, a speed-up, ...), with its LaTeX name."""
    if name not in _EXTRA:
        _EXTRA[name] = (sp.Symbol(name, positive=positive), latex, meaning)
    return _EXTRA[name][0]


def _names() -> dict[sp.Symbol, str]:
    names = latex_names()
    names.update({s: tex for s, tex, _ in _EXTRA.values()})
    return names


def to_latex(obj: sp.Basic) -> str:
    """LaTeX of an expression or equation, with the house symbol names (docs/theory.md §1)."""
    return sp.latex(obj, symbol_names=_names(), mul_symbol="dot")


@dataclass(frozen=True)
class Step:
    """One step of a derivation: what was done, and the resulting equation or expression."""

    text: str
    math: sp.Basic

    @property
    def latex(self) -> str:
        return to_latex(self.math)


@dataclass(frozen=True)
class Derivation:
    """A closed form derived by SymPy.

    Attributes:
        name: what it is (``"critical_batch"``).
        lhs: the symbol the closed form defines (for display, e.g. ``B^*``).
        expr: the closed form in the model's input symbols (what ``value`` evaluates).
        compact: the same with aggregate quantities named (see ``definitions``).
        definitions: aggregate symbol -> its expression in input symbols.
        steps: the equations solved and simplified, in order.
        assumptions: what was set or neglected to get a closed form.
        unit: unit of the value.
        source: where the formula is stated (a docs/theory.md section, ``§N.M``).
        domain: conditions on the inputs (SymPy relations) under which the formula means something;
            evaluating outside them raises.
    """

    name: str
    lhs: sp.Symbol
    expr: sp.Expr
    steps: tuple[Step, ...] = ()
    compact: sp.Expr | None = None
    definitions: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    unit: str = "1"
    source: str = ""
    domain: tuple[sp.Basic, ...] = ()

    @property
    def latex(self) -> str:
        """``lhs = closed form`` in LaTeX (the compact form when there is one)."""
        return f"{to_latex(self.lhs)} = {to_latex(self.compact if self.compact is not None else self.expr)}"

    @property
    def definitions_latex(self) -> list[str]:
        """LaTeX ``symbol = expression`` lines for the named aggregates."""
        return [f"{to_latex(s)} = {to_latex(e)}" for s, e in self.definitions.items()]

    @property
    def free_names(self) -> tuple[str, ...]:
        """Names of the inputs the closed form needs."""
        return tuple(sorted(s.name for s in self.expr.free_symbols))

    def evaluate(self, inputs: Any = None, **values: float) -> float:
        """The closed form at numbers: ``inputs`` is a Scenario or a mapping name -> value.

        Raises:
            ConfigError: an input the formula needs is missing, or the value is not a finite real.
        """
        vals: dict[str, float] = {}
        if inputs is not None:
            vals.update(inputs.inputs() if hasattr(inputs, "inputs") else dict(inputs))
        vals.update(values)
        missing = [n for n in self.free_names if n not in vals]
        if missing:
            raise ConfigError(f"{self.name} needs a value for {', '.join(missing)}; pass them as keywords, "
                              f"e.g. {missing[0]}=...")
        subs = {s: sp.Float(vals[s.name], 30) for s in self.expr.free_symbols}
        for cond in self.domain:
            if cond.xreplace(subs) is not sp.true:
                raise ConfigError(f"{self.name} is defined only where {cond}; got "
                                  + ", ".join(f"{s.name}={vals[s.name]:g}" for s in cond.free_symbols))
        out = sp.N(self.expr.xreplace(subs), 20)
        if not (out.is_real and out.is_finite):
            raise ConfigError(f"{self.name} has no finite real value at these inputs (got {out}); "
                              f"check the assumptions: {'; '.join(self.assumptions) or 'none'}")
        return float(out)

    def value(self, model: Any = None, hardware: Any = None, **kw: Any) -> float:
        """The closed form for a catalog model and chip.

        Keywords ``batch``, ``context``, ``prompt`` set the workload; ``tp``, ``pp``, ``ep``
        the split; ``weights``, ``kv``, ``math`` the precision; ``efficiency`` and
        ``usd_per_chip_hour`` as in :func:`costmodel.scenario`. Any other keyword sets a
        symbol by name (a latency target ``tpot_s``, a speed-up ``speedup``, ...).
        """
        from ..config import IDEAL, Parallel, Precision, Workload
        from ..inputs import scenario

        if model is None and hardware is None:
            return self.evaluate(None, **kw)
        if model is None or hardware is None:
            raise ConfigError(f"{self.name}.value needs both a model and a hardware name (or neither)")
        wl = {k: kw.pop(k) for k in ("batch", "context", "prompt") if k in kw}
        par = {k: kw.pop(k) for k in ("tp", "pp", "ep") if k in kw}  # Parallel rejects non-integers
        prec = {k: kw.pop(k) for k in ("weights", "kv", "math") if k in kw}
        sc = scenario(model, hardware, Workload(**wl), Parallel(**par), Precision(**prec),
                      kw.pop("efficiency", IDEAL), kw.pop("usd_per_chip_hour", None))
        return self.evaluate(sc, **kw)

    def substituted_latex(self, inputs: Any = None, digits: int = 4, **values: float) -> str:
        """``lhs = closed form with numbers = value``: the formula with numbers substituted.

        Each symbol (and each named aggregate) is replaced by its number, kept unevaluated
        so the reader sees which number went where.
        """
        vals = dict(inputs.inputs() if hasattr(inputs, "inputs") else (inputs or {}))
        vals.update(values)
        shown = self.compact if self.compact is not None else self.expr
        nums = {s: vals[s.name] for s in shown.free_symbols if s.name in vals}
        nums.update({s: self.evaluate_definition(s, vals) for s in self.definitions if s in shown.free_symbols})
        names = _names()
        subs = {}
        for s_, v in nums.items():
            d = sp.Dummy(s_.name)
            names[d] = _number_tex(v, digits)
            subs[s_] = d
        body = sp.latex(shown.xreplace(subs), symbol_names=names, mul_symbol="times")
        return f"{to_latex(self.lhs)} = {body} = {_number_tex(self.evaluate(None, **vals), digits)}"

    def evaluate_definition(self, symbol: sp.Symbol, vals: dict[str, float]) -> float:
        """The numeric value of one named aggregate."""
        e = self.definitions[symbol]
        return float(sp.N(e.xreplace({s: sp.Float(vals[s.name], 30) for s in e.free_symbols})))


def _number_tex(v: float, digits: int = 4) -> str:
    """A number in LaTeX: ``3.35 \\cdot 10^{12}`` for large or small magnitudes, else plain."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    return rf"{mant.rstrip('0').rstrip('.')} \cdot 10^{{{int(exp)}}}"


def collapse(expr: sp.Expr, aggregates: dict[sp.Symbol, sp.Expr]) -> sp.Expr | None:
    """Rewrite ``expr`` with each aggregate's expansion replaced by its symbol.

    Works on the expanded numerator and denominator: a set of terms ``r·t_1, ..., r·t_k``
    matching the expanded aggregate ``t_1 + ... + t_k`` becomes ``r·symbol``. Returns
    ``None`` unless substituting the definitions back gives ``expr`` exactly.
    """
    num, den = sp.fraction(sp.together(expr))
    order = sorted(aggregates.items(), key=lambda kv: -len(sp.Add.make_args(sp.expand(kv[1]))))
    out = _collapse_sum(num, order) / _collapse_sum(den, order)
    if sp.simplify(out.xreplace(aggregates) - expr) != 0:
        return None
    return sp.factor_terms(out)


def _collapse_sum(e: sp.Expr, order: list[tuple[sp.Symbol, sp.Expr]]) -> sp.Expr:
    terms = list(sp.Add.make_args(sp.expand(e)))
    for symbol, g in order:
        gterms = sp.Add.make_args(sp.expand(g))
        found = True
        while found:
            found = False
            for u in terms:
                r = u / gterms[0]
                if sp.fraction(r)[1].free_symbols & g.free_symbols:
                    continue  # u is not a multiple of the aggregate's first term
                want = [r * t for t in gterms]
                if all(w in terms for w in want):
                    for w in want:
                        terms.remove(w)
                    terms.append(r * symbol)
                    found = True
                    break
    return sp.Add(*terms)
