"""`scripts/demo` starts, serves the UI with both schedules on, keeps the legacy DB and the FTP
directory changing, and a Ctrl-C stops everything it started."""

import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sync_assets.devtools.demo_legacy import mutate_legacy, seed_legacy
from sync_assets.devtools.demo_machines import HEADER, MACHINES, MachineSimulator
from sync_assets.devtools.demo_stack import REPO_ROOT, graphql
from sync_assets.devtools.servers import free_port, port_open
from sync_assets.ftp.config import SourceConfig
from sync_assets_tests.conftest import (
    _unique_name,
    create_mysql_database,
    drop_mysql_database,
    drop_pg_database,
    mysql_admin_connect,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEDULE_STATUS = """
{ schedulesOrError(repositorySelector: {repositoryLocationName: "sync_assets",
    repositoryName: "__repository__"}) {
  ... on Schedules { results { name scheduleState { status } } } } }
"""


def _order_count(mysql_server, database: str) -> int:
    with mysql_admin_connect(mysql_server, database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM orders")
        return cur.fetchone()[0]


class DemoProcess:
    """`scripts/demo` in a subprocess, its output collected by a reader thread."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        command = [str(REPO_ROOT / "scripts" / "demo"), "--port", str(self.port),
                   "--workdir", str(tmp_path), *args]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(self.proc.stdout), daemon=True
        )
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_serving(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while "[demo] UI at" not in self.output:
            assert self.proc.poll() is None, self.output[-3000:]
            assert time.monotonic() < deadline, f"the demo did not serve within {timeout}s"
            time.sleep(0.5)

    def ctrl_c(self) -> str:
        """Interrupt like a terminal would; the demo must exit 0 having stopped everything."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=90)
        self.reader.join(timeout=10)
        assert self.proc.returncode == 0, self.output[-3000:]
        assert "[demo] stopped" in self.output
        assert not port_open("127.0.0.1", self.port), "the webserver outlived the demo"
        return self.output

    def kill_if_running(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_demo_serves_the_ui_and_ctrl_c_stops_everything(
    pg_server, mysql_server, tmp_path: Path
) -> None:
    names = {key: _unique_name(f"sa_demo_{key}") for key in ("pg", "dagster", "mysql")}
    demo = DemoProcess(tmp_path, "--pg-db", names["pg"], "--dagster-db", names["dagster"],
                       "--mysql-db", names["mysql"])  # fmt: skip
    try:
        demo.wait_until_serving()
        data = graphql(f"http://127.0.0.1:{demo.port}", SCHEDULE_STATUS)["schedulesOrError"]
        states = {s["name"]: s["scheduleState"]["status"] for s in data["results"]}
        assert states == {"ftp_logs_schedule": "RUNNING", "mysql_sync_schedule": "RUNNING"}
        assert _order_count(mysql_server, names["mysql"]) >= 3
        logs = list((tmp_path / "ftp").rglob("*.csv"))
        assert logs and all(p.read_text().startswith("timestamp,machine,") for p in logs)
        output = demo.ctrl_c()
        assert "RETR" not in output  # no FTP server line per transfer on the console
    finally:
        demo.kill_if_running()
        drop_pg_database(pg_server, names["pg"])
        drop_pg_database(pg_server, names["dagster"])
        drop_mysql_database(mysql_server, names["mysql"])


def test_demo_on_a_machine_without_running_servers_starts_throwaway_ones(tmp_path: Path) -> None:
    """Nothing listens on the given ports: the demo starts its own PostgreSQL and MariaDB
    from the installed binaries, serves the UI, and stops them again on Ctrl-C."""
    demo = DemoProcess(tmp_path, "--pg-port", str(free_port()), "--mysql-port", str(free_port()))
    try:
        demo.wait_until_serving()
        found = re.findall(r"\[demo\] (?:PostgreSQL|MariaDB) at 127\.0\.0\.1:(\d+)", demo.output)
        ports = [int(p) for p in found]
        assert len(ports) == 2 and {5432, 3306}.isdisjoint(ports), demo.output
        demo.ctrl_c()
        for server_port in ports:
            assert not port_open("127.0.0.1", server_port), "a throwaway server outlived the demo"
    finally:
        demo.kill_if_running()


def test_demo_legacy_seed_is_idempotent_and_changes_move_data_on(mysql_server) -> None:
    database = create_mysql_database(mysql_server, "sa_demo_seed")
    try:
        with mysql_admin_connect(mysql_server, database) as conn, conn.cursor() as cur:
            seed_legacy(conn)
            seed_legacy(conn)  # a second demo start must not fail nor duplicate rows
            cur.execute("SELECT COUNT(*), SUM(status = 'new') FROM orders")
            assert cur.fetchone() == (3, 1)
            rng = random.Random(1)
            for _ in range(3):
                mutate_legacy(conn, rng)
            cur.execute("SELECT COUNT(*), MAX(updated_at) > '2026-01-01' FROM orders")
            assert cur.fetchone() == (6, 1)
            cur.execute("SELECT COUNT(*) FROM orders WHERE status IN ('paid', 'shipped')")
            assert cur.fetchone()[0] >= 3  # each round moves one order on
    finally:
        drop_mysql_database(mysql_server, database)


def test_machines_append_lines_and_rotate_files(tmp_path: Path) -> None:
    simulator = MachineSimulator(tmp_path, rotate_every=2)
    simulator.step()
    first = {p: p.read_text() for p in tmp_path.rglob("*.csv")}
    simulator.step()
    assert len(first) == len(MACHINES)
    for path, text in first.items():
        grown = path.read_text()
        assert grown.startswith(text) and len(grown) > len(text)  # appended, never rewritten
        assert grown.count(HEADER) == 1
    simulator.step()
    assert len(list(tmp_path.rglob("*.csv"))) == 2 * len(MACHINES)


def test_a_fresh_feed_leaves_each_machine_a_finished_file_old_enough_to_load(
    tmp_path: Path,
) -> None:
    """A schedule tick in the feed's first minutes finds work: the files being written stay
    younger than min_age_seconds until they rotate, yesterday's backlog is an hour old."""
    simulator = MachineSimulator(tmp_path)
    seeded = simulator.seed_backlog()
    assert sorted(p.parent.name for p in seeded) == sorted(MACHINES)
    min_age = SourceConfig(name="machine_logs").min_age_seconds
    for path in seeded:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(HEADER) and text.endswith("\n")
        assert text.count("\n") > 1  # header and data lines, the last one complete
        assert time.time() - path.stat().st_mtime > 60 * min_age
    simulator.step()
    assert MachineSimulator(tmp_path).seed_backlog() == []  # a restarted feed seeds nothing
    assert len(list(tmp_path.rglob("*.csv"))) == 2 * len(MACHINES)
