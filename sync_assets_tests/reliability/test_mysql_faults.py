"""MySQL side under faults: the MySQL connection killed by the server mid-stream, the PostgreSQL
backend terminated mid-load. The failed run leaves the copy as it was (rows, values and
watermark) and the next run makes it equal to MySQL, value by value.

SIGKILL of the run process during a table copy is proven by mysql/test_kill.py.
"""

import psycopg
import pymysql
import pytest

from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql
from sync_assets_tests.reliability.conftest import (
    RunArgs,
    copy_in_flight,
    finish,
    spawn_run,
    wait_until,
)

pytestmark = pytest.mark.slow

ROWS = 30_000


def _prepare(src: pymysql.Connection, sync: SyncFn, pg_conn: psycopg.Connection, schema: str):
    """A synced table, then changes in MySQL that the faulty run is about to copy."""
    run_sql(
        src,
        "CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(1200),"
        " updated_at DATETIME(6) NOT NULL DEFAULT NOW(6) ON UPDATE NOW(6))",
        f"INSERT INTO big (id, payload) SELECT seq, MD5(seq) FROM seq_1_to_{ROWS}",
    )
    sync("big", mode="full_refresh")
    # ~1 KB rows: the faulty run streams ~30 MB, far more than the socket buffers hold, so the
    # server is still sending while the fault hits.
    run_sql(
        src,
        "UPDATE big SET payload = CONCAT('v2-', id, REPEAT(MD5(id), 32))",
        "DELETE FROM big WHERE id <= 10",
    )
    return _target_state(pg_conn, schema)


def _target_state(pg_conn: psycopg.Connection, schema: str) -> tuple:
    table = pg_conn.execute(
        f"SELECT count(*), md5(string_agg(payload, ',' ORDER BY id)) FROM \"{schema}\".big"
    ).fetchone()
    watermark = pg_conn.execute(
        "SELECT watermark FROM sync_meta.mysql_tables WHERE target_schema = %s", (schema,)
    ).fetchone()
    return table, watermark


def _mysql_reader(my: pymysql.Connection, database: str) -> int | None:
    """The processlist id of the engine's SELECT streaming `big` (the data read, not counts)."""
    with my.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND COMMAND = 'Query'"
            " AND INFO LIKE 'SELECT %%FROM %%big%%' AND INFO NOT LIKE '%%COUNT(*)%%'",
            (database,),
        )
        row = cur.fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("cut", ["mysql_kill_connection", "pg_terminate_backend"])
def test_connection_cut_mid_stream_keeps_the_copy_then_converges(
    cut: str,
    mysql_run_args: RunArgs,
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    before = _prepare(src, sync, pg_conn, target_schema)
    options = {"mode": "full_refresh", "batch_rows": 200}
    child = spawn_run(mysql_run_args(table="big", options=options))
    backend = copy_in_flight(child, pg_conn, pg_resource.database)
    if cut == "mysql_kill_connection":
        reader = wait_until(
            lambda: _mysql_reader(src, src_resource.database) or child.poll() is not None,
            "the MySQL read",
        )
        assert child.poll() is None, f"the run ended before the kill: {finish(child)}"
        run_sql(src, f"KILL CONNECTION {int(reader)}")
        expected_error = "Lost connection"
    else:
        pg_conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
        expected_error = "terminat"
    _, stderr = finish(child)
    assert child.returncode == 1, stderr[-2000:]
    assert expected_error.lower() in stderr.lower(), stderr[-2000:]

    assert _target_state(pg_conn, target_schema) == before  # untouched, watermark included
    report = sync("big")
    assert report.row_count == report.source_row_count == ROWS - 10
    assert assert_same_table(src, pg_conn, target_schema, "big") == ROWS - 10
