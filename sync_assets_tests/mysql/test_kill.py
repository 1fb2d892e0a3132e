"""A sync killed with SIGKILL while COPY is in flight leaves PostgreSQL as it was; the next
run converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pymysql
import pytest

from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.state import staging_schema
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.mysql.conftest import SyncFn, run_sql

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 100_000

# The real engine in a child process, so that the test can kill it mid-copy.
CHILD = """
import sys
import threading
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.sync import sync_table
from sync_assets.resources import MySQLResource, PostgresResource
my_host, my_port, my_user, my_db, pg_host, pg_port, pg_user, pg_db, schema, mode = sys.argv[1:]
sync_table(
    MySQLResource(host=my_host, port=my_port, user=my_user, password="", database=my_db),
    PostgresResource(host=pg_host, port=pg_port, user=pg_user, password="", database=pg_db),
    TableOptions(name="big", mode=mode, batch_rows=200),
    target_schema=schema,
)
"""


def _copy_in_flight(pg: psycopg.Connection, database: str) -> int | None:
    """The backend pid of a COPY into `database` that has already received rows."""
    row = pg.execute(
        "SELECT pid FROM pg_stat_progress_copy WHERE datname = %s AND tuples_processed > 0",
        (database,),
    ).fetchone()
    return row[0] if row else None


def _wait_backend_gone(pg: psycopg.Connection, pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            return
        time.sleep(0.05)
    pytest.fail(f"PostgreSQL backend {pid} still alive after its client was killed")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full_refresh", "incremental"])
def test_kill_during_copy_keeps_previous_state(
    mode: str,
    mysql_server: ServerInfo,
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    run_sql(
        src,
        "CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(100),"
        " updated_at DATETIME(6) NOT NULL DEFAULT NOW(6) ON UPDATE NOW(6))",
        f"INSERT INTO big (id, payload) SELECT seq, REPEAT('a', 100) FROM seq_1_to_{ROWS}",
    )
    first = sync("big")
    state_before = pg_conn.execute(
        "SELECT watermark FROM sync_meta.mysql_tables WHERE target_schema = %s", (target_schema,)
    ).fetchone()
    run_sql(src, "UPDATE big SET payload = REPEAT('b', 100)", "INSERT INTO big (id) VALUES (0)")

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mysql_server.host, str(mysql_server.port),
         mysql_server.user, src_resource.database, pg_resource.host, pg_resource.port,
         pg_resource.user, pg_resource.database, target_schema, mode],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        backend = None
        while backend is None and child.poll() is None and time.monotonic() < deadline:
            backend = _copy_in_flight(pg_conn, pg_resource.database)
            time.sleep(0.01)
        assert backend is not None, f"COPY never seen in flight: {child.communicate()[1][-2000:]!r}"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    _wait_backend_gone(pg_conn, backend)

    # The previous state, untouched: same rows, same values, same watermark, no staging table.
    rows = pg_conn.execute(
        f"SELECT count(*), min(payload), max(payload) FROM {target_schema}.big"
    ).fetchone()
    assert rows == (first.row_count, "a" * 100, "a" * 100)
    leftovers = pg_conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN (%s, %s) AND relname <> 'big' AND relkind = 'r'"
        " OR n.nspname = %s AND relkind = 'r'",
        (target_schema, staging_schema(target_schema), staging_schema(target_schema)),
    ).fetchall()
    assert leftovers == []
    state_after = pg_conn.execute(
        "SELECT watermark FROM sync_meta.mysql_tables WHERE target_schema = %s", (target_schema,)
    ).fetchone()
    assert state_after == state_before

    report = sync("big", mode=mode)
    assert report.row_count == report.source_row_count == ROWS + 1
    rows = pg_conn.execute(
        f"SELECT count(*) FILTER (WHERE payload = repeat('b', 100)), count(*)"
        f" FROM {target_schema}.big"
    ).fetchone()
    assert rows == (ROWS, ROWS + 1)


def test_a_copy_failing_midway_leaves_the_previous_state(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(
        src,
        "CREATE TABLE docs (id INT PRIMARY KEY, body JSON)",
        "INSERT INTO docs SELECT seq, '{\"ok\": 1}' FROM seq_1_to_20000",
    )
    sync("docs")
    # PostgreSQL's jsonb refuses \u0000, which MariaDB's JSON accepts: COPY fails on row 15000.
    run_sql(
        src,
        "UPDATE docs SET body = '{\"ok\": 2}'",
        'UPDATE docs SET body = \'{"bad": "\\\\u0000"}\' WHERE id = 15000',
    )
    threads = threading.active_count()
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        sync("docs", mode="full_refresh", batch_rows=100)
    assert threading.active_count() == threads  # the reader thread has ended
    rows = pg_conn.execute(
        f"SELECT count(*), min(body::text), max(body::text) FROM {target_schema}.docs"
    ).fetchone()
    assert rows == (20000, '{"ok": 1}', '{"ok": 1}')
