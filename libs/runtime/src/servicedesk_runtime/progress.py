"""A progress line for long operator runs (rebuilding a read model or an index)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """One line on a terminal, redrawn at most ten times a second: a bar, counts, speed."""

    def __init__(self, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.total = max(total, 1)
        self.out = out
        self.width = width
        self.started = time.perf_counter()
        self._drawn = 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._drawn < 0.1:
            return
        self._drawn = now
        filled = self.width * done // self.total
        rate = done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"\r[{bar}] {done:,}/{self.total:,} records  {rate:,.0f}/s"
        self.out.write(line + ("\n" if final else ""))
        self.out.flush()
