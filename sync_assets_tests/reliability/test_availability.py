"""A server down at run time, and two runs of the same asset at once.

Down servers are closed loopback ports (the shared servers are never touched). The real Dagster
assets run both sides in one materialisation, as the two schedules would in one tick: the side
whose server is up must not notice, and once the server is back the next run loads everything
exactly once.
"""

import dataclasses
import threading
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.devtools.ftp_server import FTPServerHandle
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets.ftp import store
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.definitions import build_log_asset, build_source_spec
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import build_table_asset
from sync_assets.mysql.state import ensure_bookkeeping
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.conftest import (
    create_pg_database,
    drop_pg_database,
    make_ftp_resource,
    pg_admin_connect,
)
from sync_assets_tests.mysql.conftest import assert_same_table, run_sql
from sync_assets_tests.reliability.conftest import (
    GatedDownloads,
    RunArgs,
    expected_ids,
    finish,
    ftp_run_args,
    ids_by_file,
    spawn_run,
    sync_sessions,
    wait_until,
    write_csv_files,
)

pytestmark = pytest.mark.slow
R = TypeVar("R", MySQLResource, PostgresResource)

FILES = {"a.csv": (1, 300), "b.csv": (301, 900)}


def _both_sides(schema: str, source: SourceConfig) -> list:
    spec, table_asset = build_table_asset("items", TableOptions(name="items"), schema)
    return [spec, table_asset, build_source_spec(source), build_log_asset(source)]


def _down(resource: R, password: str) -> R:
    """The same resource pointed at a loopback port nobody listens on.

    Built anew: Dagster instantiates a resource from its constructor values, so a pydantic
    `model_copy(update=...)` would silently keep the old port inside a run.
    """
    values = resource.model_dump() | {"port": str(free_port()), "password": password}
    return type(resource)(**values)


def _node(result: dg.ExecuteInProcessResult, prefix: str) -> str:
    [name] = {e.step_key for e in result.all_node_events if e.step_key.startswith(prefix)}
    return name


def _error_text(result: dg.ExecuteInProcessResult, prefix: str) -> str:
    failure = result.failure_data_for_node(_node(result, prefix))
    assert failure is not None, f"{prefix} did not fail"
    return str(failure.error)


@dataclass
class TwoSides:
    """A MySQL table and FTP files, the real assets of both sides, and their resources."""

    server: FTPServerHandle
    source: SourceConfig
    assets: list
    resources: dict[str, dg.ConfigurableResource]
    my: pymysql.Connection
    pg: psycopg.Connection
    schema: str

    def run(self, **broken: dg.ConfigurableResource) -> dg.ExecuteInProcessResult:
        resources = self.resources | broken
        return dg.materialize(self.assets, resources=resources, raise_on_error=False)

    def assert_exact(self) -> None:
        assert assert_same_table(self.my, self.pg, self.schema, "items") == 500
        assert ids_by_file(self.pg, self.source) == expected_ids(FILES)  # nothing twice


@pytest.fixture
def two_sides(
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
    ftp_server_factory,
    make_source,
) -> TwoSides:
    run_sql(
        src,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_500",
    )
    server = ftp_server_factory(mlsd=True)
    write_csv_files(server.root, FILES)
    source = make_source("both")
    ftp = make_ftp_resource(server, delete_after_sync="true")
    resources = {"mysql": src_resource, "postgres": pg_resource, "ftp": ftp}
    assets = _both_sides(target_schema, source)
    return TwoSides(server, source, assets, resources, src, pg_conn, target_schema)


def test_mysql_down_fails_clearly_and_the_ftp_side_is_unaffected(two_sides: TwoSides) -> None:
    result = two_sides.run(mysql=_down(two_sides.resources["mysql"], "Kx-7-down"))
    error = _error_text(result, "legacy")
    assert "cannot connect to MySQL" in error and "MYSQL_HOST/MYSQL_PORT" in error
    assert "Kx-7-down" not in error
    assert result.is_node_success(_node(result, "logs"))
    assert ids_by_file(two_sides.pg, two_sides.source) == expected_ids(FILES)

    assert two_sides.run().success
    two_sides.assert_exact()


def test_postgres_down_fails_clearly_deletes_nothing_then_recovers(two_sides: TwoSides) -> None:
    result = two_sides.run(postgres=_down(two_sides.resources["postgres"], "Pq-7-down"))
    for prefix in ("legacy", "logs"):
        error = _error_text(result, prefix)
        assert "cannot connect to PostgreSQL" in error and "POSTGRES_HOST" in error
        assert "Pq-7-down" not in error
    root = two_sides.server.root
    assert sorted(p.name for p in root.iterdir()) == sorted(FILES)  # nothing deleted

    assert two_sides.run().success
    two_sides.assert_exact()
    assert list(root.iterdir()) == []


# --- two runs at once -------------------------------------------------------------------------


BIG = {"big.csv": (1, 20_000)}


@pytest.mark.parametrize("lock_wait", [60.0, 0.2], ids=["waits", "refused"])
def test_two_ftp_runs_at_once_never_double(
    lock_wait: float,
    ftp_server_factory,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    make_source,
) -> None:
    GatedDownloads.reached.clear()
    GatedDownloads.gate.clear()
    server = ftp_server_factory(mlsd=True, handler_base=GatedDownloads)
    write_csv_files(server.root, BIG)
    source = make_source("twice")
    ftp = make_ftp_resource(server)
    try:
        first = spawn_run(ftp_run_args(ftp, pg_resource, source))
        wait_until(GatedDownloads.reached.is_set, "the first run's download (lock held)")
        sessions = len(sync_sessions(pg_conn, pg_resource.database))
        second = spawn_run(
            ftp_run_args(ftp, pg_resource, dataclasses.replace(source, lock_wait_seconds=lock_wait))
        )
        if lock_wait > 1:  # the second run is connected and polling the lock
            wait_until(lambda: len(sync_sessions(pg_conn, pg_resource.database)) > sessions,
                       "the second run to wait for the lock")  # fmt: skip
        else:
            second.wait(timeout=60)
    finally:
        GatedDownloads.gate.set()
    second_out, second_err = finish(second)
    _, first_err = finish(first)
    assert first.returncode == 0, first_err[-2000:]
    if lock_wait > 1:
        assert second.returncode == 0, second_err[-2000:]
        assert '"rows_loaded": 0' in second_out  # it waited, then found the file loaded
    else:
        assert second.returncode == 1 and "another run is syncing" in second_err
    assert ids_by_file(pg_conn, source) == expected_ids(BIG)


def test_two_mysql_runs_at_once_never_double(
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
    mysql_run_args: RunArgs,
) -> None:
    run_sql(
        src,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO items SELECT seq, MD5(seq) FROM seq_1_to_60000",
    )
    args = mysql_run_args(table="items", options={"batch_rows": 200})
    run_sql(src, "LOCK TABLES items WRITE")  # holds the first run inside its locked section
    try:
        first = spawn_run(args)
        wait_until(lambda: _blocked_reads(src, src_resource.database), "the first run's read",
                   every=0.05)  # fmt: skip
        sessions = len(sync_sessions(pg_conn, pg_resource.database))
        second = spawn_run(args)
        wait_until(lambda: len(sync_sessions(pg_conn, pg_resource.database)) > sessions,
                   "the second run to wait for the lock")  # fmt: skip
    finally:
        run_sql(src, "UNLOCK TABLES")
    for child in (first, second):
        _, stderr = finish(child)
        assert child.returncode == 0, stderr[-2000:]
    assert assert_same_table(src, pg_conn, target_schema, "items") == 60_000


def _blocked_reads(my: pymysql.Connection, database: str) -> int:
    with my.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s"
            " AND STATE LIKE '%%metadata lock%%'",
            (database,),
        )
        return cur.fetchone()[0]


def test_both_sides_first_runs_at_once_on_a_fresh_database(pg_server: ServerInfo) -> None:
    database = create_pg_database(pg_server, "sa_rel_ddl")
    resource = PostgresResource(host=pg_server.host, port=str(pg_server.port), user=pg_server.user,
                                database=database)  # fmt: skip
    try:
        with resource.connection() as ftp_side, resource.connection(autocommit=True) as mysql:
            ftp_side.execute("SELECT 1")  # open a transaction: the FTP side's DDL stays in it
            store.ensure_meta_tables(ftp_side)
            errors: list[BaseException] = []
            pid = mysql.info.backend_pid

            def mysql_side() -> None:
                try:
                    ensure_bookkeeping(mysql, "legacy")
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=mysql_side)
            thread.start()
            with pg_admin_connect(pg_server, database) as watcher:
                wait_until(lambda: _waiting_on_a_lock(watcher, pid), "the MySQL side to wait")
            ftp_side.commit()
            thread.join(timeout=30)
        assert errors == []
    finally:
        drop_pg_database(pg_server, database)


def _waiting_on_a_lock(pg: psycopg.Connection, pid: int) -> bool:
    row = pg.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    found = row.fetchone()
    return bool(found and found[0] in ("Lock", "Advisory"))
