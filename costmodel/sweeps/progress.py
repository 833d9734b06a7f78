"""A progress bar for long sweeps: tqdm when installed, else one updating stderr line."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Counts evaluated configurations; ``enabled=False`` makes every method a no-op."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "sweep"):
        self.total, self.done, self.enabled, self.desc = total, 0, enabled, desc
        self._t0 = self._last = time.perf_counter()
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=desc, unit="cfg", unit_scale=True, file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= 0.5 or self.done >= self.total:
            self._last = now
            rate = self.done / max(now - self._t0, 1e-9)
            print(f"\r{self.desc}: {self.done / self.total:6.1%}  {self.done:,}/{self.total:,} configs  "
                  f"{rate:.3g} configs/s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            print(file=sys.stderr, flush=True)
