"""Progress for long work: a tqdm bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


class ProgressBar:
    """``update(n)`` as work gets done; shows a bar when ``enabled`` (a terminal), else logs every ``every_s``."""

    def __init__(self, total: int, enabled: bool, desc: str, unit: str = "item", *,
                 logger: logging.Logger | None = None, every_s: float = 10.0):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self.log = logger or logging.getLogger("stephanie_ray")
        self.every_s = every_s
        self._last = time.monotonic()
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self._last >= self.every_s:
            self.log.info("%s: %d/%d %ss done", self.desc, self.done, self.total, self.unit)
            self._last = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
