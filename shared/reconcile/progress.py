"""Progress of a run: what it has read, out of how many, how fast.

Runs report to a :class:`Progress` after every durable page. The engine always logs a line every
few pages (:class:`LogProgress`); the commands add a progress bar on a terminal. Reports must not
block or fail: they are told, they do not steer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from shared.logging import get_logger

log = get_logger(__name__)


class Progress(Protocol):
    """Receives a run's progress."""

    def started(self, *, what: str, total: int | None) -> None:
        """The run began; ``total`` rows are expected when known (from ``count``)."""

    def advanced(self, *, rows: int, pages: int) -> None:
        """``rows`` more rows (``pages`` pages) are durable."""

    def finished(self) -> None:
        """The run ended (whatever the outcome)."""


@dataclass
class Rate:
    """Done, total, rows per second and the time left, from a monotonic clock."""

    total: int | None = None
    done: int = 0
    pages: int = 0
    began: float = field(default_factory=time.monotonic)

    def add(self, rows: int, pages: int) -> None:
        self.done += rows
        self.pages += pages

    @property
    def per_second(self) -> float:
        elapsed = time.monotonic() - self.began
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> timedelta | None:
        if self.total is None or self.per_second <= 0:
            return None
        return timedelta(seconds=max(0, self.total - self.done) / self.per_second)

    @property
    def ratio(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


class LogProgress:
    """One structured log line every ``every`` pages, and at the end."""

    def __init__(self, *, connection: str, entity: str, mode: str, every: int = 20) -> None:
        self._context = {"connection": connection, "entity": entity, "mode": mode}
        self._every = max(1, every)
        self.rate = Rate()
        self._what = ""

    def started(self, *, what: str, total: int | None) -> None:
        self._what = what
        self.rate = Rate(total=total)

    def advanced(self, *, rows: int, pages: int) -> None:
        before = self.rate.pages // self._every
        self.rate.add(rows, pages)
        if self.rate.pages // self._every > before:
            self._line("progress")

    def finished(self) -> None:
        if self.rate.pages:
            self._line("read finished")

    def _line(self, event: str) -> None:
        eta = self.rate.eta
        log.info(
            event,
            what=self._what,
            done=self.rate.done,
            total=self.rate.total,
            pages=self.rate.pages,
            rows_per_s=round(self.rate.per_second, 1),
            eta_s=round(eta.total_seconds()) if eta is not None else None,
            **self._context,
        )


class Fanout:
    """Several reports at once (the log lines and a progress bar)."""

    def __init__(self, reports: Sequence[Progress]) -> None:
        self._reports = list(reports)

    def started(self, *, what: str, total: int | None) -> None:
        for report in self._reports:
            report.started(what=what, total=total)

    def advanced(self, *, rows: int, pages: int) -> None:
        for report in self._reports:
            report.advanced(rows=rows, pages=pages)

    def finished(self) -> None:
        for report in self._reports:
            report.finished()


__all__ = ["Fanout", "LogProgress", "Progress", "Rate"]
