"""Progress lines for long work: done, rate and the time left, every ~10 s (never per row)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOG_EVERY_SECONDS = 10.0


class Progress:
    """Call `update(done)` as often as convenient; a line is logged at most every `every` s.

    `total` is an estimate when known (e.g. MySQL's TABLE_ROWS): the percentage and the time
    left are given only while `done` is below it.
    """

    def __init__(
        self,
        log: logging.Logger | logging.LoggerAdapter,
        what: str,
        total: int | None = None,
        unit: str = "rows",
        every: float = LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.every, self.clock = every, clock
        self.started = self.last = clock()
        self.lines = 0

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        self.lines += 1
        self.log.info(self.line(done, now - self.started))

    def line(self, done: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {done:,} {self.unit} done, {rate:,.0f} {self.unit}/s"
        if self.total and done < self.total and rate > 0:
            left = (self.total - done) / rate
            text += f", ~{done / self.total:.0%} of ~{self.total:,}, about {_duration(left)} left"
        return text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
