"""The columnar answer of a sweep: a dict of NumPy arrays, with exports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..pareto import minimised, pareto_mask

__all__ = ["SweepResult", "LABELS"]

#: string columns expanded from the per-row group number.
LABELS = ("model", "hardware", "precision")


@dataclass
class SweepResult:
    """Rows of a sweep, column by column.

    Attributes:
        columns: column name -> 1-D array. ``group`` indexes :attr:`groups`; the
            swept inputs and the requested outputs follow (SI units, as in
            :func:`costmodel.predict`).
        groups: one ``{"model", "hardware", "precision"}`` label dict per
            evaluated (model, chip, precision) group; ``result["model"]`` expands them.
        evaluated: configurations evaluated (more than ``len(self)`` when reduced).
        wall_s: seconds the sweep took, compilation included.
    """

    columns: dict[str, np.ndarray]
    groups: list[dict[str, str]]
    evaluated: int = 0
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["group"]) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        if name in LABELS and name not in self.columns:
            labels = np.asarray([g[name] for g in self.groups] or [""], dtype=object)
            return labels[self.columns["group"]]
        try:
            return self.columns[name]
        except KeyError:
            raise ConfigError(f"no column {name!r}; columns: {', '.join(self.names)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    @property
    def names(self) -> list[str]:
        """Column names, labels first."""
        return [*LABELS, *(c for c in self.columns if c != "group")]

    def to_dict(self) -> dict[str, np.ndarray]:
        """Every column (labels expanded) as a plain dict of arrays."""
        return {n: self[n] for n in self.names}

    def select(self, mask: np.ndarray) -> SweepResult:
        """The rows where ``mask`` is True (or the rows at the given indices)."""
        cols = {k: v[mask] for k, v in self.columns.items()}
        return SweepResult(cols, self.groups, self.evaluated, self.wall_s, dict(self.meta))

    def pareto(self, frontier: str = "cost-latency") -> SweepResult:
        """The exact Pareto frontier among feasible rows (see :mod:`costmodel.pareto`).

        ``"cost-latency"`` minimises ``usd_per_mtok`` and ``step_time_s``;
        ``"throughput-interactivity"`` maximises ``tokens_per_s_per_chip`` and
        ``tokens_per_s_per_user``. Rows come back sorted by the first objective.
        """
        x, y = minimised(frontier, self)
        keep = np.flatnonzero(pareto_mask(x, y, self["fits"]))
        return self.select(keep[np.lexsort((y[keep], x[keep]))])

    def to_pandas(self):
        """A ``pandas.DataFrame`` (labels as categoricals); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("to_pandas() needs pandas: pip install pandas") from None
        df = pd.DataFrame({n: v for n, v in self.columns.items() if n != "group"})
        for i, n in enumerate(LABELS):
            cats = pd.Categorical.from_codes(self.columns["group"], [g[n] for g in self.groups]) \
                if len({g[n] for g in self.groups}) == len(self.groups) else self[n]
            df.insert(i, n, cats)
        return df

    def to_csv(self, path, block: int = 200_000) -> None:
        """Write every row as CSV to a path or an open text file (9 significant digits; fits as true/false)."""
        if hasattr(path, "write"):
            return self._write_csv(path, block)
        with open(path, "w", encoding="utf-8") as fh:
            self._write_csv(fh, block)

    def _write_csv(self, fh, block: int) -> None:
        fh.write(",".join(self.names) + "\n")
        for lo in range(0, len(self), block):
            part = [_fmt(self[n][lo:lo + block]) for n in self.names]
            fh.writelines(",".join(row) + "\n" for row in zip(*part))

    def to_parquet(self, path: str | Path) -> None:
        """Write every row as Parquet; needs pyarrow."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("writing Parquet needs pyarrow: pip install pyarrow (or write .csv)") from None
        table = pa.table({n: (self[n].astype(str) if n in LABELS else self[n]) for n in self.names})
        pq.write_table(table, str(path))

    def save(self, path: str | Path) -> None:
        """Write ``.csv`` or ``.parquet``, chosen by the file's suffix."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            self.to_csv(path)
        elif suffix in (".parquet", ".pq"):
            self.to_parquet(path)
        else:
            raise ConfigError(f"cannot write {str(path)!r}: use a .csv or .parquet file name")

    def __repr__(self) -> str:
        return (f"SweepResult({len(self):,} rows of {self.evaluated:,} evaluated, "
                f"{len(self.groups)} group(s), columns: {', '.join(self.names)})")


def _fmt(col: np.ndarray) -> np.ndarray:
    if col.dtype == bool:
        return np.where(col, "true", "false")
    if col.dtype.kind in "fc":
        return np.char.mod("%.9g", col)
    return col.astype(str)
