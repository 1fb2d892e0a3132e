"""A worker lost mid-step (SIGKILL, or its network cut): the step runs again on another worker.

Each fault is timed by watching PostgreSQL: a COPY in flight from one worker's address (every
worker has its own), so the fault lands mid table copy or mid file load, never by sleeping.
Marker `celery`: run by scripts/test-celery (pytest -m celery).
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql
from pyftpdlib.handlers import FTPHandler

from sync_assets_tests.celery.conftest import (
    FTP_SOURCES,
    RUN_TIMEOUT_SECONDS,
    Deployment,
    Worker,
    assert_tables_exact,
    create_table,
    finish_run,
    loaded_ids,
    materialisation_hosts,
    pg_connect,
    start_workers,
    write_logs,
)
from sync_assets_tests.reliability.conftest import wait_until

pytestmark = [pytest.mark.celery, pytest.mark.timeout(900)]

BIG_ROWS = 400_000
# Big enough that the file's COPYs stay in flight for about a second in all: the probe polls
# every 0.05 s, and 200,000 lines (3.6 MB) loaded in about 0.2 s on a quiet machine, so a
# probe could miss every COPY and see the run end first.
BIG_FILE_LINES = 1_000_000


def copying_worker(deployment: Deployment, workers: list[Worker], min_rows: int) -> Worker | None:
    """The worker whose address has a COPY of >= `min_rows` rows in flight, if any."""
    with pg_connect(deployment.servers.pg) as conn:
        row = conn.execute(
            "SELECT host(a.client_addr) FROM pg_stat_progress_copy p JOIN pg_stat_activity a"
            " USING (pid) WHERE p.datname = %s AND p.tuples_processed >= %s LIMIT 1",
            (deployment.pg_db, min_rows),
        ).fetchone()
    return next((w for w in workers if row and w.ns.ns_addr == row[0]), None)


class AuditedDeletes(FTPHandler):
    """Before each DELE, records whether the file's rows are all committed in PostgreSQL."""

    conninfo = ""
    expected: dict[str, list[int]] = {}
    audits: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def ftp_DELE(self, path: str) -> None:
        virtual = self.fs.fs2ftp(path)
        source = virtual.strip("/").split("/")[0]
        query = sql.SQL("SELECT id FROM {} WHERE _source_file = %s ORDER BY id").format(
            sql.Identifier("machine_logs", source)
        )
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            committed = [value for (value,) in conn.execute(query, (virtual,)).fetchall()]
        with AuditedDeletes.lock:
            AuditedDeletes.audits.append((virtual, committed == self.expected.get(virtual)))
        super().ftp_DELE(path)


def _kill_mid_copy(deployment: Deployment, workers: list[Worker], job: str) -> Worker:
    run = deployment.start_run(job)
    victim = wait_until(
        lambda: copying_worker(deployment, workers, 5000) or run.poll() is not None,
        f"a large COPY in flight ({job})",
        timeout=300,
        every=0.05,
    )
    assert isinstance(victim, Worker), f"run ended before its COPY was seen: {finish_run(run)}"
    victim.kill()
    out = finish_run(run)
    assert run.returncode == 0, out[-4000:]
    return victim


@pytest.mark.parametrize("deployment", [AuditedDeletes], indirect=True)
def test_worker_killed_mid_table_and_mid_file(deployment: Deployment) -> None:
    create_table(deployment, "big", BIG_ROWS)
    for index in range(4):
        create_table(deployment, f"small_{index}", 300)
    expected = write_logs(deployment, files_per_source=3, lines=200)
    big = deployment.ftp.root / FTP_SOURCES[0] / "zz_big.csv"
    from sync_assets_tests.reliability.conftest import csv_file

    big.write_bytes(csv_file(10_000_000, 10_000_000 + BIG_FILE_LINES - 1))
    expected[FTP_SOURCES[0]][f"/{FTP_SOURCES[0]}/zz_big.csv"] = list(
        range(10_000_000, 10_000_000 + BIG_FILE_LINES)
    )
    AuditedDeletes.conninfo = (
        f"host=127.0.0.1 port={deployment.servers.pg.port} user=postgres dbname={deployment.pg_db}"
    )
    AuditedDeletes.expected = {k: v for ids in expected.values() for k, v in ids.items()}
    AuditedDeletes.audits = []
    workers = start_workers(deployment)

    table_victim = _kill_mid_copy(deployment, workers, "mysql_sync_job")
    assert_tables_exact(deployment)
    alive = [w for w in workers if w is not table_victim]
    file_victim = _kill_mid_copy(deployment, alive, "ftp_logs_job")

    for source in FTP_SOURCES:
        assert loaded_ids(deployment, source) == expected[source]  # no file doubled or lost
    assert AuditedDeletes.audits and all(
        ok for _, ok in AuditedDeletes.audits
    )  # delete after commit
    hosts = materialisation_hosts(deployment)
    assert hosts["legacy/big"] != table_victim.name  # retried on another worker
    assert hosts[f"logs/{FTP_SOURCES[0]}"] != file_victim.name


def test_worker_partitioned_mid_table(deployment: Deployment) -> None:
    create_table(deployment, "big", BIG_ROWS)
    for index in range(4):
        create_table(deployment, f"small_{index}", 300)
    workers = start_workers(deployment)

    run = deployment.start_run("mysql_sync_job")
    victim = wait_until(
        lambda: copying_worker(deployment, workers, 5000) or run.poll() is not None,
        "a large COPY in flight",
        timeout=300,
        every=0.05,
    )
    assert isinstance(victim, Worker), f"run ended before its COPY was seen: {finish_run(run)}"
    victim.ns.set_link(up=False)  # the worker's machine drops off the network

    out = finish_run(run, timeout=RUN_TIMEOUT_SECONDS)  # stated bound: no hang past it
    assert run.returncode == 0, out[-4000:]
    assert_tables_exact(deployment)
    assert materialisation_hosts(deployment)["legacy/big"] != victim.name
