"""Progress for a log (no terminal, where tqdm's bar is off): plain lines with a count, a rate and an ETA."""

from __future__ import annotations

import sys
import time


def eta_text(remaining: float, per_s: float) -> str:
    """``h:mm:ss`` to do ``remaining`` items at ``per_s`` a second; "?" before a rate is known."""
    if per_s <= 0 or remaining < 0:
        return "?"
    seconds = round(remaining / per_s)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class LogProgress:
    """``update(done)`` prints ``what: done/total (pct), rate unit/s, ETA h:mm:ss`` to stderr at most every
    ``every_s`` seconds, and at the end."""

    def __init__(self, what: str, total: int, unit: str, every_s: float = 30.0) -> None:
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self._start = self._last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and done < self.total:
            return
        self._last = now
        rate = done / (now - self._start) if now > self._start else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        print(f"{self.what}: {done}/{self.total} ({pct:.0f}%), {rate:.2f} {self.unit}/s, "
              f"ETA {eta_text(self.total - done, rate)}", file=sys.stderr, flush=True)  # fmt: skip
