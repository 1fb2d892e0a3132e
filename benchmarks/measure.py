"""Run one command and measure it: wall time, CPU of its process tree, peak tree RSS, server CPU.

A sampler thread walks the child's process tree every few milliseconds (psutil) and sums the
RSS of every live descendant; the peak of that sum is the figure reported. CPU comes from
`wait4`, whose rusage covers the child and every descendant it waited for, so short-lived
helpers (gzip, psql) are counted even when the sampler never saw them. The same thread polls
PostgreSQL for the first row a COPY wrote into the benchmark database (launch-to-first-row)
and tracks the CPU the database servers spent meanwhile: the servers do much of the work, and
a client that is fast only because it pushes work onto them should show it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

SAMPLE_SECONDS = 0.02
PG_POLL_SECONDS = 0.1
# Until the first row shows: an incremental's COPY of one 5,000-row batch lasts about 10 ms,
# which polls 0.1 s apart mostly missed (3 of 3 runs in the run of 2026-12-05 21:24).
FIRST_ROW_POLL_SECONDS = 0.005
SERVER_NAMES = ("mariadbd", "mysqld")


@dataclass
class Measurement:
    """What one timed command cost. Times in seconds, memory in bytes."""

    wall: float
    cpu: float
    peak_rss: int
    server_cpu: float
    first_row: float | None
    returncode: int
    extra_server_cpu: float = 0.0  # the part of server_cpu spent by `server_pids` (FTP server)
    pg_cpu: float = 0.0  # the part spent by the probe's PostgreSQL backends
    load_before: float = 0.0  # 1-minute load average at launch: how busy the machine was
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class PgProbe:
    """Where to look for the benchmark database's COPY progress and backends."""

    conninfo: dict[str, object]
    database: str
    # Further databases whose backends' CPU counts as server CPU (e.g. Dagster's own storage).
    others: tuple[str, ...] = ()

    @property
    def databases(self) -> list[str]:
        return [self.database, *self.others]


class _CpuTracker:
    """CPU seconds spent by a changing set of server processes since tracking began."""

    def __init__(self) -> None:
        self._since = time.time()
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def observe(self, pids: Sequence[int]) -> None:
        for pid in pids:
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                # A process started since tracking began (a backend) counts from zero.
                born_since = process.create_time() >= self._since
            except psutil.Error:
                continue
            total = times.user + times.system
            self._first.setdefault(pid, 0.0 if born_since else total)
            self._last[pid] = total

    def total(self, pids: Sequence[int] | None = None) -> float:
        chosen = self._last if pids is None else [p for p in pids if p in self._last]
        return sum(self._last[pid] - self._first[pid] for pid in chosen)


def _mysql_server_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in SERVER_NAMES]


class _Sampler(threading.Thread):
    """Samples the tree's RSS, the servers' CPU and the first COPY row until stopped."""

    def __init__(
        self,
        root_pid: int,
        start: float,
        probe: PgProbe | None,
        server_pids: Sequence[int],
        mysql_server: bool,
    ) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.start_time = start
        self.probe = probe
        self.peak_rss = 0
        self.first_row: float | None = None
        self.cpu = _CpuTracker()
        self.extra_pids = list(server_pids)
        mysql = _mysql_server_pids() if mysql_server else []
        self.server_pids = mysql + self.extra_pids
        self.pg_pids: list[int] = []
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        conn = self._connect_probe()
        next_pg_poll = 0.0
        try:
            while not self._stop_event.is_set():
                self.peak_rss = max(self.peak_rss, tree_rss(self.root_pid))
                if conn is not None and time.monotonic() >= next_pg_poll:
                    self._poll_pg(conn)
                    next_pg_poll = time.monotonic() + PG_POLL_SECONDS
                self.cpu.observe(self.server_pids + self.pg_pids)
                self._wait_for_next_sample(conn)
            self.cpu.observe(self.server_pids + self.pg_pids)
        finally:
            if conn is not None:
                conn.close()

    def _wait_for_next_sample(self, conn: psycopg.Connection | None) -> None:
        """SAMPLE_SECONDS; while no row has shown yet, poll PostgreSQL meanwhile, every
        FIRST_ROW_POLL_SECONDS."""
        until = time.monotonic() + SAMPLE_SECONDS
        while conn is not None and self.first_row is None and time.monotonic() < until:
            if self._stop_event.wait(FIRST_ROW_POLL_SECONDS):
                return
            self._poll_pg(conn)
        self._stop_event.wait(max(0.0, until - time.monotonic()))

    def _connect_probe(self) -> psycopg.Connection | None:
        if self.probe is None:
            return None
        return psycopg.connect(autocommit=True, **self.probe.conninfo)  # type: ignore[arg-type]

    def _poll_pg(self, conn: psycopg.Connection) -> None:
        assert self.probe is not None
        rows = conn.execute(
            "SELECT a.pid, coalesce(c.tuples_processed, 0) FROM pg_stat_activity a"
            " LEFT JOIN pg_stat_progress_copy c ON c.pid = a.pid"
            " WHERE a.datname = ANY(%s) AND a.pid <> pg_backend_pid()",
            (self.probe.databases,),
        ).fetchall()
        self.pg_pids = sorted(set(self.pg_pids) | {pid for pid, _ in rows})
        if self.first_row is None and any(tuples > 0 for _, tuples in rows):
            self.first_row = time.monotonic() - self.start_time


# A child this young still showing its parent's command line is a fork about to exec.
FORK_BEFORE_EXEC_SECONDS = 1.0


def _exec_pending(proc: psutil.Process, now: float) -> bool:
    """True for a child between fork (or vfork) and exec: it shares every page with its
    parent, so its RSS is the parent's counted twice. Dagster starts `tail` and a watcher
    this way for each step's captured logs; a sample landing in that instant would report
    the run process twice (seen: 300 MB for a 180 MB run)."""
    parent = proc.parent()
    return (
        parent is not None
        and now - proc.create_time() < FORK_BEFORE_EXEC_SECONDS
        and proc.cmdline() == parent.cmdline()
    )


def tree_rss(root_pid: int) -> int:
    """Sum of the RSS of a process and all its live descendants (0 when it is gone), a
    child that has not exec'd yet left out (`_exec_pending`)."""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total, now = 0, time.time()
    for proc in procs:
        try:
            if proc.pid != root_pid and _exec_pending(proc, now):
                continue
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    probe: PgProbe | None = None,
    stdin_path: Path | None = None,
    cwd: Path | None = None,
    server_pids: Sequence[int] = (),
    mysql_server: bool = True,
) -> Measurement:
    """Run `argv` to completion and measure it; stdout/stderr are captured to temp files.

    `server_pids` are extra server processes (the FTP server) whose CPU counts as server CPU;
    `mysql_server`: whether MariaDB's does (not for the FTP rows, which never use it: on a
    shared machine its CPU is other sessions' work).
    """
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_{os.getpid()}_{time.time_ns()}"
    with (
        open(f"{out_path}.out", "w+b") as out,
        open(f"{out_path}.err", "w+b") as err,
        open(stdin_path or os.devnull, "rb") as stdin,
    ):
        load_before = psutil.getloadavg()[0]
        start = time.monotonic()
        proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=out, stderr=err, env=dict(env or os.environ), cwd=cwd
        )
        sampler = _Sampler(proc.pid, start, probe, server_pids, mysql_server)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    return Measurement(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        # Sampled only: wait4's ru_maxrss counts the forked copy of this (Python) process.
        peak_rss=sampler.peak_rss,
        server_cpu=sampler.cpu.total(),
        extra_server_cpu=sampler.cpu.total(sampler.extra_pids),
        pg_cpu=sampler.cpu.total(sampler.pg_pids),
        first_row=sampler.first_row,
        returncode=proc.returncode,
        load_before=load_before,
        stdout=stdout,
        stderr=stderr,
    )
