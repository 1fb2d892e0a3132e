"""What lets several files of one run load at once without weakening any rule.

- `StableLooks`: the stable-file rule's two looks. Workers may download and load a file
  before the second look (its first look already old enough), but nothing of that file is
  committed or recorded until the second look has confirmed the size/mtime it was read at.
- `SchemaGate`: files load in parallel transactions as long as none changes the table's
  columns. A file that must (a new column, a widened type) is rolled back and redone alone,
  once every earlier file in flight is finished, so columns evolve in listing order and two
  transactions never wait on each other's table locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime


class RunStoppedError(RuntimeError):
    """The run is ending (another worker failed, or it was interrupted): stop this file."""


class NeedsSchemaChangeError(RuntimeError):
    """The file needs DDL on the table: redo it alone (raised only where DDL is not allowed)."""


@dataclass
class Snapshot:
    size: int
    mtime: datetime | None

    def matches(self, other: Snapshot | None) -> bool:
        return other is not None and (self.size, self.mtime) == (other.size, other.mtime)


Verdict = Snapshot | str  # the snapshot to load, or why not: vanished | unstable | too_young


class StableLooks:
    """The first look (given) and the second one (`settle`, stable_seconds later)."""

    def __init__(self, first: dict[str, Snapshot | None], min_age_seconds: float) -> None:
        self.first = first
        self.taken_at = time.monotonic()  # the pause before the second look starts here
        self.min_age_seconds = min_age_seconds
        self._verdicts: dict[str, Verdict] = {}
        self._settled = threading.Event()
        self._aborted = False
        self._first_wait: float | None = None  # when a worker first had to wait for the look
        self._settled_at: float | None = None
        self._lock = threading.Lock()

    def settle(self, second: dict[str, Snapshot | None]) -> None:
        """Judge every file: present both times, unchanged, and old enough now."""
        now = datetime.now(UTC)
        for path, look1 in self.first.items():
            look2 = second.get(path)
            if look1 is None or look2 is None:
                self._verdicts[path] = "vanished"
            elif not look1.matches(look2):
                self._verdicts[path] = "unstable"
            elif look2.mtime and (now - look2.mtime).total_seconds() < self.min_age_seconds:
                self._verdicts[path] = "too_young"
            else:
                self._verdicts[path] = look2
        self._settled_at = time.monotonic()
        self._settled.set()

    def abort(self) -> None:
        """No second look will come: every wait for it ends with RunStoppedError."""
        if not self._settled.is_set():
            self._aborted = True
            self._settled.set()

    def early(self, path: str) -> Snapshot | None:
        """The first look's snapshot, if the file may be read before the second look: it is
        old enough already (a young file waits for the verdict instead)."""
        look1 = self.first.get(path)
        if self._settled.is_set() or look1 is None or look1.mtime is None:
            return None
        age = (datetime.now(UTC) - look1.mtime).total_seconds()
        return look1 if age >= self.min_age_seconds else None

    def verdict(self, path: str) -> Verdict:
        """Waits for the second look."""
        if not self._settled.is_set():
            with self._lock:
                if self._first_wait is None:
                    self._first_wait = time.monotonic()
        self._settled.wait()
        if self._aborted:
            raise RunStoppedError("the run stopped before the second look")
        return self._verdicts[path]

    @property
    def wait_seconds(self) -> float:
        """From the first worker waiting for the second look to that look (0 if none waited):
        the part of a run that the stable-file rule alone holds up, like a fixed start-up."""
        if self._first_wait is None or self._settled_at is None:
            return 0.0
        return max(0.0, self._settled_at - self._first_wait)

    def confirm(self, path: str, snap: Snapshot) -> str | None:
        """None if the second look confirmed `snap` (what was read); else why not."""
        verdict = self.verdict(path)
        if isinstance(verdict, str):
            return verdict
        return None if verdict.matches(snap) else "unstable"


class SchemaGate:
    """Shared mode for ordinary files; exclusive mode, in file order, for files with DDL."""

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self._cond = threading.Condition()
        self._in_flight: set[int] = set()
        self._shared = 0
        self._exclusive: int | None = None
        self._waiting: set[int] = set()  # files waiting for exclusive mode

    def started(self, index: int) -> None:
        with self._cond:
            self._in_flight.add(index)

    def finished(self, index: int) -> None:
        with self._cond:
            self._in_flight.discard(index)
            self._cond.notify_all()

    @contextmanager
    def enter(self, index: int, exclusive: bool, stopped: Callable[[], bool]) -> Iterator[bool]:
        """Hold the gate for file `index`; yields whether DDL is allowed (exclusive, or the
        only worker)."""
        if not self.parallel:
            yield True
            return
        with self._cond:
            if exclusive:
                self._waiting.add(index)
            try:
                self._cond.wait_for(lambda: stopped() or self._may_enter(index, exclusive))
            finally:
                self._waiting.discard(index)
            if stopped():
                raise RunStoppedError("the run is stopping")
            if exclusive:
                self._exclusive = index
            else:
                self._shared += 1
        try:
            yield exclusive
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = None
                else:
                    self._shared -= 1
                self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _may_enter(self, index: int, exclusive: bool) -> bool:
        if self._exclusive is not None:
            return False
        if exclusive:  # alone, and no earlier file still in flight
            return self._shared == 0 and min(self._in_flight, default=index) >= index
        # A shared entry waits behind an earlier file's pending exclusive request.
        return not any(w < index for w in self._waiting)
