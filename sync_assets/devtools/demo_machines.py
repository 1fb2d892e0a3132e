"""Simulated machines that keep writing CSV log files into the demo FTP server's directory.

Each machine appends a few lines to today's file every round and starts a new file every
`rotate_every` rounds, like real controllers that append while running and rotate logs.
On a fresh directory each machine also finds yesterday's finished file (`seed_backlog`): the
files being written are too young for the stable-file rule until they rotate, so without it
a schedule tick in the feed's first minutes would find nothing to load.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

MACHINES = ("press-01", "press-02", "lathe-01")
HEADER = "timestamp,machine,event,temperature_c,spindle_rpm,message\n"
BACKLOG_LINES = 12
BACKLOG_AGE = timedelta(hours=1)  # far older than any min_age_seconds a source would set
EVENTS = ("cycle_end", "cycle_end", "cycle_end", "tool_change", "warning", "door_open")


@dataclass
class MachineSimulator:
    root: Path
    rotate_every: int = 20
    seed: int = 7

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 (demo data, not security)
        self._round = 0

    def current_file(self, machine: str) -> Path:
        part = self._round // self.rotate_every
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        return self.root / machine / f"{machine}_{stamp}_{part:03d}.csv"

    def _line(self, machine: str, at: datetime | None = None) -> str:
        event = self._rng.choice(EVENTS)
        temperature = round(self._rng.gauss(62.0, 4.0), 2)
        rpm = self._rng.randint(800, 1250) if event == "cycle_end" else ""
        message = "coolant low; check" if event == "warning" else ""
        stamp = (at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        return f'{stamp},{machine},{event},{temperature},{rpm},"{message}"\n'

    def seed_backlog(self) -> list[Path]:
        """On a directory no machine has written to yet, leave each machine's finished file
        of yesterday, last modified an hour ago. A restarted feed (machine folders exist)
        seeds nothing, so a backlog file that was loaded and deleted never comes back."""
        if any((self.root / machine).exists() for machine in MACHINES):
            return []
        finished = datetime.now(UTC) - BACKLOG_AGE
        day = (finished - timedelta(days=1)).strftime("%Y%m%d")
        seeded = []
        for machine in MACHINES:
            path = self.root / machine / f"{machine}_{day}_backlog.csv"
            path.parent.mkdir(parents=True)
            times = [finished - timedelta(minutes=m) for m in range(BACKLOG_LINES, 0, -1)]
            lines = [self._line(machine, at) for at in times]
            path.write_text(HEADER + "".join(lines), encoding="utf-8", newline="")
            os.utime(path, (finished.timestamp(), finished.timestamp()))
            seeded.append(path)
        return seeded

    def step(self) -> None:
        """Append a few lines per machine (a new file starts with the CSV header)."""
        for machine in MACHINES:
            path = self.current_file(machine)
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [self._line(machine) for _ in range(self._rng.randint(1, 5))]
            with path.open("a", encoding="utf-8", newline="") as handle:
                if handle.tell() == 0:
                    handle.write(HEADER)
                handle.writelines(lines)
        self._round += 1

    def run(self, stop: threading.Event, interval_seconds: float = 5.0) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(interval_seconds)
