"""Numbers behind the plots: the compiled model evaluated over a batch grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compile import compiled
from ..config import DEFAULT_EFFICIENCY, Efficiency, Parallel, Precision, Workload
from ..inputs import Scenario, scenario
from ..symbolic import Rules, fits_in_memory

__all__ = ["Setup", "batch_grid", "sweep", "regions"]


@dataclass(frozen=True)
class Setup:
    """What a figure is drawn for: model, chip, context, split, precision, price and rules."""

    model: object
    hardware: object
    context: float = 8192
    tp: int = 8
    precision: Precision = Precision()
    efficiency: Efficiency | str = DEFAULT_EFFICIENCY  # an Efficiency or a profile name/path (costmodel.efficiency)
    usd_per_chip_hour: float | None = None
    rules: Rules = Rules()

    def scenario(self, batch: float = 1, tp: int | None = None) -> Scenario:
        """The validated scenario (raises a CostModelError on a bad split or name)."""
        return scenario(self.model, self.hardware, Workload(batch=batch, context=self.context),
                        Parallel(tp=self.tp if tp is None else tp), self.precision, self.efficiency,
                        self.usd_per_chip_hour)

    def title(self, tp: int | None = None) -> str:
        sc = self.scenario(tp=tp)
        chips = f"{self.tp if tp is None else tp}x {sc.hardware.name}"
        return f"{sc.model.name} on {chips}, {sc.weights} weights, {sc.kv} KV, context {self.context:,.0f}"


def batch_grid(lo: float = 1, hi: float = 4096, n: int = 241) -> np.ndarray:
    """A log-spaced grid of batch sizes."""
    return np.geomspace(lo, hi, n)


def sweep(setup: Setup, batches: np.ndarray, tp: int | None = None) -> dict[str, np.ndarray]:
    """Every output of the compiled model at each batch (one call, broadcast over the grid)."""
    sc = setup.scenario(tp=tp)
    x = sc.inputs()
    x["batch"] = np.asarray(batches, dtype=float)
    out = compiled(sc.model.structure, setup.rules)(x)
    return {k: np.broadcast_to(np.asarray(v, dtype=float), x["batch"].shape) for k, v in out.items()}


def regions(batches: np.ndarray, out: dict[str, np.ndarray]) -> list[tuple[str, float, float]]:
    """Contiguous batch ranges labelled memory-bound, compute-bound or does-not-fit."""
    fits = fits_in_memory(out)
    compute = out["compute_s"] > out["weights_s"] + out["kv_s"]
    label = np.where(~fits, "does not fit", np.where(compute, "compute-bound", "memory-bound"))
    spans: list[tuple[str, float, float]] = []
    start = 0
    for i in range(1, len(batches) + 1):
        if i == len(batches) or label[i] != label[start]:
            spans.append((str(label[start]), float(batches[start]), float(batches[min(i, len(batches) - 1)])))
            start = i
    return spans
