"""Dagster's storage in PostgreSQL keeps a few connections per process (core/pooled_storage.py).

Real PostgreSQL, the project's dagster.yaml: the events of a second run are stored over the
connections the first one opened (dagster-postgres alone opens one per statement and keeps
none), and connections the server has dropped are replaced before use, no event lost.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from sync_assets.core.pooled_storage import POOL_SIZE
from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import (
    REPO_ROOT,
    create_pg_database,
    drop_pg_database,
    pg_admin_connect,
)


@dg.asset
def counted() -> int:
    return 1


@pytest.fixture
def instance(
    pg_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DagsterInstance, str]]:
    database = create_pg_database(pg_server, "sa_pooled")
    env = {
        "POSTGRES_HOST": pg_server.host, "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_USER": pg_server.user, "POSTGRES_PASSWORD": pg_server.password,
        "DAGSTER_PG_DB": database,
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as dagster_instance:
        yield dagster_instance, database
    drop_pg_database(pg_server, database)


def _backends(server: ServerInfo, database: str) -> set[int]:
    with pg_admin_connect(server) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return {pid for (pid,) in rows}


def _first_run(instance: tuple[DagsterInstance, str], server: ServerInfo) -> set[int]:
    """Materialise once; the storage's backends left open (its pool) after the run."""
    assert dg.materialize([counted], instance=instance[0]).success
    return _backends(server, instance[1])


def test_runs_reuse_a_few_connections(
    instance: tuple[DagsterInstance, str], pg_server: ServerInfo
) -> None:
    dagster_instance, database = instance
    kept = _first_run(instance, pg_server)
    assert 1 <= len(kept) <= 2 * POOL_SIZE  # run storage and event log, each its pool
    assert dg.materialize([counted], instance=dagster_instance).success
    assert _backends(pg_server, database) == kept  # no connection opened for the second run
    # Another instance in the same process (a Celery worker builds one per task, never
    # disposed) uses the same connections.
    other = DagsterInstance.from_ref(dagster_instance.get_ref())
    assert dg.materialize([counted], instance=other).success
    assert _backends(pg_server, database) == kept
    assert len(dagster_instance.get_runs()) == 3


def test_connections_dropped_by_the_server_are_replaced(
    instance: tuple[DagsterInstance, str], pg_server: ServerInfo
) -> None:
    dagster_instance, database = instance
    kept = _first_run(instance, pg_server)
    with pg_admin_connect(pg_server) as conn:
        for pid in kept:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    result = dg.materialize([counted], instance=dagster_instance)
    assert result.success
    events = dagster_instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    assert len(events) == 1
    assert not kept & _backends(pg_server, database)


def test_a_second_run_reflects_no_catalog(instance: tuple[DagsterInstance, str]) -> None:
    """The run and event-log storages remember the migration columns and tables they found:
    a run in a process that has seen one queries no catalog (dagster-postgres alone reflects
    the `runs` columns on each run write, 7 times for a one-table run). Fails if Dagster
    renames the checks the storage overrides."""
    dagster_instance, _ = instance
    assert dg.materialize([counted], instance=dagster_instance).success
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    try:
        assert dg.materialize([counted], instance=dagster_instance).success
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    assert any("INSERT INTO runs" in s for s in statements)  # the listener saw the run
    assert [s for s in statements if "pg_catalog" in s] == []
