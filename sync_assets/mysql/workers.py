"""Sync a batch step's tables on a few threads, each table on its own, in completion order.

Each table runs through the same engine as a one-table step (`sync_table`: its own MySQL
snapshot, PostgreSQL transaction and advisory lock), so tables never share a transaction and
one table's failure leaves the others alone. A transient failure is retried in the worker
(15 s, 30 s, 60 s, as many times as the job's retry policy allows a step) while the other
workers go on; a permanent one is reported at once. Retrying the whole step instead would sync
every table of the batch again.

The threads wait on the servers most of the time (round trips, COPY), so a few of them keep
both servers busy on 2 cores; how many run at once is `workers`, further bounded by the slots
of the `mysql` pool the step holds (`slots.PoolSlots`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sync_assets.core.errors import is_permanent, retry_delay
from sync_assets.mysql.report import SyncReport

T = TypeVar("T")
# While a worker could use another pool slot, look again this often (Dagster's claim
# back-off decides when the storage is actually asked).
CLAIM_POLL_SECONDS = 1.0


class Slots(Protocol):
    """Extra pool slots (`slots.PoolSlots`); `held` + 1 workers may run."""

    @property
    def held(self) -> int: ...

    def try_claim(self) -> bool: ...

    def release(self) -> None: ...


@dataclass
class Outcome(Generic[T]):
    """What became of one table: its report, or the error of its last attempt."""

    item: T
    report: SyncReport | None = None
    error: Exception | None = None
    attempts: int = 1

    @property
    def permanent(self) -> bool:
        return self.error is not None and is_permanent(self.error)


def attempt_with_retries(
    item: T,
    label: str,
    sync: Callable[[T], SyncReport],
    retries: int,
    log: logging.Logger | logging.LoggerAdapter,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome[T]:
    """Sync `item` (`label` in the log); a transient failure is retried up to `retries`
    times after a pause."""
    for attempt in range(retries + 1):
        try:
            return Outcome(item, report=sync(item), attempts=attempt + 1)
        except Exception as exc:  # classified: each table's failure is its own
            if is_permanent(exc) or attempt == retries:
                return Outcome(item, error=exc, attempts=attempt + 1)
            delay = retry_delay(attempt)
            log.warning(
                f"{label}: {type(exc).__name__}: {exc}; retry {attempt + 1} of {retries}"
                f" in {delay:.0f}s"
            )
            sleep(delay)
    raise AssertionError("unreachable: the last attempt returns")


class _Run(Generic[T]):
    """The queue of tables, the running futures and the workers allowed (1 + extra slots)."""

    def __init__(self, items: list[T], workers: int, slots: Slots) -> None:
        self.queue: deque[T] = deque(items)
        self.running: dict[Future[Outcome[T]], T] = {}
        self.workers, self.slots = workers, slots

    def wanted(self) -> int:
        """Workers that would have a table now."""
        return min(self.workers, len(self.queue) + len(self.running))

    def adjust_slots(self) -> None:
        """Claim a slot for a worker that has work, or give back one with none left."""
        if 1 + self.slots.held < self.wanted():
            self.slots.try_claim()
        while self.slots.held and 1 + self.slots.held > self.wanted():
            self.slots.release()


def run_tables(
    items: list[T],
    attempt: Callable[[T], Outcome[T]],
    workers: int,
    slots: Slots,
) -> Iterator[Outcome[T]]:
    """Yield each item's outcome as it finishes, at most `1 + slots.held` running at once."""
    run = _Run(items, workers, slots)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mysql-table") as pool:
        while run.queue or run.running:
            run.adjust_slots()
            while run.queue and len(run.running) < 1 + slots.held:
                item = run.queue.popleft()
                run.running[pool.submit(attempt, item)] = item
            more_wanted = 1 + slots.held < run.wanted()
            done, _ = wait(
                run.running,
                timeout=CLAIM_POLL_SECONDS if more_wanted else None,
                return_when=FIRST_COMPLETED,
            )
            for future in done:
                del run.running[future]
                yield future.result()
