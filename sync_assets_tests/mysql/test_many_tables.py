"""Many tables: batch steps (`MYSQL_TABLES_PER_STEP`) keep what one-table steps give.

- 20 tables through the real job (`dagster job execute`, multiprocess executor, a Dagster
  instance in PostgreSQL with the `mysql` pool limited to 2): every table exact, each with its
  materialisation and checks, 4 batch steps, never more MySQL sessions than the pool's limit
  although each step may run 3 tables at once.
- One table of a batch materialised alone (with a full refresh asked in the run config):
  only that table is synced.
- A broken table in a batch fails; the others materialise with their metadata and checks,
  and the failure names the table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pymysql
import pytest
import yaml

from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.definitions import ROW_COUNT_CHECK, build_mysql_defs
from sync_assets.mysql.steps import STEP_WORKERS_ENV, TABLES_PER_STEP_ENV, step_layout
from sync_assets.orchestration.local_executor import LOCAL_EXECUTOR_NAME
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.conftest import (
    REPO_ROOT,
    create_pg_database,
    drop_pg_database,
    mysql_admin_connect,
)
from sync_assets_tests.mysql.conftest import assert_same_table, run_sql

DAGSTER_BIN = str(Path(sys.executable).with_name("dagster"))
POOL_LIMIT = 2
# Generous: on the shared 2-core machine (load 20-30) the run took 7 minutes.
RUN_TIMEOUT_SECONDS = 1000


def _tables(src: pymysql.Connection, count: int, prefix: str = "t") -> list[str]:
    """`count` tables `<prefix>_00`...: a key, text with awkward characters, a decimal, a time."""
    names = [f"{prefix}_{n:02d}" for n in range(count)]
    for index, name in enumerate(names):
        run_sql(
            src,
            f"CREATE TABLE `{name}` (id INT PRIMARY KEY, label VARCHAR(40), amount DECIMAL(9,2),"
            " at DATETIME(6), changed TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)"
            " ON UPDATE CURRENT_TIMESTAMP(6))",
            f"INSERT INTO `{name}` (id, label, amount, at) SELECT seq,"
            f" CONCAT('row\\t', seq, '\\n✓'), seq * 1.25 - {index},"
            " TIMESTAMP'2024-02-29 23:59:59.5' + INTERVAL seq MINUTE"
            f" FROM seq_1_to_{50 + 10 * index}",
        )
    return names


def test_layout_default_keeps_one_step_per_table_up_to_fifty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TABLES_PER_STEP_ENV, raising=False)
    small = step_layout([f"t{n}" for n in range(50)])
    assert not small.batched and len(small.groups) == 50
    large = step_layout([f"t{n:03d}" for n in range(200)])
    assert large.batched and [len(g) for g in large.groups] == [25] * 8
    assert large.op_name(0) == "legacy_batch_01"
    monkeypatch.setenv(TABLES_PER_STEP_ENV, "25")
    assert [len(g) for g in step_layout([f"t{n}" for n in range(51)]).groups] == [17, 17, 17]
    monkeypatch.setenv(TABLES_PER_STEP_ENV, "1")
    assert not step_layout([f"t{n}" for n in range(200)]).batched


class SessionWatch:
    """Samples MariaDB's processlist: the most sessions on `database` at once (the watcher's
    own session and the test's, `mine`, excluded)."""

    def __init__(self, server: ServerInfo, database: str, mine: pymysql.Connection) -> None:
        self.server, self.database, self.peak = server, database, 0
        self.mine = mine.thread_id()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with mysql_admin_connect(self.server) as conn, conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                    " WHERE DB = %s AND ID NOT IN (CONNECTION_ID(), %s)",
                    (self.database, self.mine),
                )
                self.peak = max(self.peak, int(cur.fetchone()[0]))
                time.sleep(0.02)

    def __enter__(self) -> SessionWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def dagster_home(tmp_path: Path, pg_server: ServerInfo) -> Iterator[tuple[Path, str]]:
    """The project's dagster.yaml (storage in PostgreSQL) with the `mysql` pool limited."""
    database = create_pg_database(pg_server, "sa_dagster")
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["concurrency"]["pools"] = {"default_limit": POOL_LIMIT}
    for no_daemon_here in ("run_monitoring", "run_retries"):
        config.pop(no_daemon_here)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    yield home, database
    drop_pg_database(pg_server, database)


def _job_env(
    pg_server: ServerInfo,
    mysql_server: ServerInfo,
    src_db: str,
    pg_dbname: str,
    home: tuple[Path, str],
    target_schema: str,
    tables: list[str],
) -> dict[str, str]:
    return {
        **os.environ,
        "POSTGRES_HOST": pg_server.host, "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_USER": pg_server.user, "POSTGRES_PASSWORD": pg_server.password,
        "POSTGRES_DB": pg_dbname, "DAGSTER_PG_DB": home[1], "DAGSTER_HOME": str(home[0]),
        "MYSQL_HOST": mysql_server.host, "MYSQL_PORT": str(mysql_server.port),
        "MYSQL_USER": mysql_server.user, "MYSQL_PASSWORD": mysql_server.password,
        "MYSQL_DB": src_db, "MYSQL_TABLES": ",".join(tables),
        "MYSQL_TARGET_SCHEMA": target_schema, "SYNC_ASSETS_STATE_DIR": str(home[0] / "state"),
        "SYNC_EXECUTOR": "multiprocess", TABLES_PER_STEP_ENV: "5", STEP_WORKERS_ENV: "3",
    }  # fmt: skip


def _run_events(env: dict[str, str]) -> tuple[dg.DagsterRun, list[dg.EventLogEntry]]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with dg.DagsterInstance.get() as instance:
            run = instance.get_runs(limit=1)[0]
            return run, list(instance.all_logs(run.run_id))
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.timeout(1200)
def test_twenty_tables_through_the_real_job_in_batch_steps(
    pg_server: ServerInfo,
    mysql_server: ServerInfo,
    src: pymysql.Connection,
    src_db: str,
    pg_dbname: str,
    pg_conn: psycopg.Connection,
    target_schema: str,
    dagster_home: tuple[Path, str],
) -> None:
    tables = _tables(src, 20)
    env = _job_env(pg_server, mysql_server, src_db, pg_dbname, dagster_home, target_schema, tables)
    argv = [DAGSTER_BIN, "job", "execute", "-m", "sync_assets.definitions", "-j", "mysql_sync_job"]
    with SessionWatch(mysql_server, src_db, src) as sessions:
        run = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # Three tables at once per step, two steps at once: the pool still bounds the reads.
    assert 1 <= sessions.peak <= POOL_LIMIT, sessions.peak

    for table in tables:
        assert_same_table(src, pg_conn, target_schema, table)
    dagster_run, events = _run_events(env)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    started = {e.step_key for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START}
    assert {s for s in started if s.startswith("legacy_")} == {
        f"legacy_batch_0{n}" for n in range(1, 5)
    }
    materialized = {
        e.asset_materialization.asset_key.path[-1]: e.asset_materialization.metadata
        for e in events
        if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    assert sorted(materialized) == tables
    for index, table in enumerate(tables):
        assert materialized[table]["dagster/row_count"].value == 50 + 10 * index
        assert materialized[table]["mode"].value == "full_refresh"
    checks = [
        e.dagster_event.event_specific_data
        for e in events
        if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    passed = {c.asset_key.path[-1] for c in checks if c.check_name == ROW_COUNT_CHECK and c.passed}
    assert passed == set(tables)


@pytest.fixture
def batch_of_six(
    monkeypatch: pytest.MonkeyPatch, src: pymysql.Connection, target_schema: str
) -> tuple[list[str], list[dg.AssetsDefinition]]:
    """Six tables in one batch step (two synced at once): the tables and the assets."""
    tables = _tables(src, 6)
    monkeypatch.setenv("MYSQL_TABLES", ",".join(tables))
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    monkeypatch.setenv(TABLES_PER_STEP_ENV, str(len(tables)))
    monkeypatch.setenv(STEP_WORKERS_ENV, "2")
    defs = build_mysql_defs()
    return tables, [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]


def _copied(pg_conn: psycopg.Connection, schema: str) -> list[str]:
    rows = pg_conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
        (schema,),
    ).fetchall()
    return [name for (name,) in rows]


def test_one_table_of_a_batch_alone_with_its_run_config(
    batch_of_six: tuple[list[str], list[dg.AssetsDefinition]],
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    _, assets = batch_of_six
    [batch] = [a for a in assets if a.op.name.startswith("legacy_batch")]
    resources = {"mysql": src_resource, "postgres": pg_resource}
    key = dg.AssetKey(["legacy", "t_03"])
    result = dg.materialize(assets, resources=resources, selection=[key])
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [key]
    assert _copied(pg_conn, target_schema) == ["t_03"]

    # The launchpad's run config of the batch op, for a run of that one table.
    action = {"full_refresh": True, "reason": "suspect copy", "requested_by": "ops"}
    run_config = {"ops": {batch.op.name: {"config": action}}}
    result = dg.materialize(assets, resources=resources, selection=[key], run_config=run_config)
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["mode_reason"].value.startswith("full refresh requested from the UI")
    assert metadata["action"].value == "full_refresh"
    assert _copied(pg_conn, target_schema) == ["t_03"]
    assert_same_table(src, pg_conn, target_schema, "t_03")


def test_a_broken_table_fails_alone(
    batch_of_six: tuple[list[str], list[dg.AssetsDefinition]],
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    tables, assets = batch_of_six
    run_sql(src, "DROP TABLE t_02")  # gone from MySQL after the definitions were built
    result = dg.materialize(
        assets,
        resources={"mysql": src_resource, "postgres": pg_resource},
        raise_on_error=False,
    )
    assert not result.success
    done = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert done == set(tables) - {"t_02"}
    for event in result.get_asset_materialization_events():
        assert event.materialization.metadata["dagster/row_count"].value > 0
    checks = {
        e.asset_key.path[-1]
        for e in result.get_asset_check_evaluations()
        if e.check_name == ROW_COUNT_CHECK and e.passed
    }
    assert checks == done
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("1 table(s) failed: t_02 (TableNotFoundError"), message
    assert _copied(pg_conn, target_schema) == sorted(done)
    for table in done:
        assert_same_table(src, pg_conn, target_schema, table)


LOAD = """
import sys
from dagster._core.definitions.reconstruct import (
    ReconstructableRepository, initialize_repository_def_from_pointer)
from dagster._serdes import deserialize_value, serialize_value
recon = ReconstructableRepository.for_module("sync_assets.definitions", "defs")
carried = sys.stdin.readline().strip()
if carried:  # a run worker or step process: rebuilt from the run's load data
    repo = recon.with_repository_load_data(deserialize_value(carried)).get_definition()
else:  # the code server
    repo = initialize_repository_def_from_pointer(recon.pointer)
    print(serialize_value(repo.repository_load_data))
print(" ".join(sorted(repo.get_job("mysql_sync_job").graph.node_dict)))
"""


def _load(tmp_path: Path, per_step: str, stdin: str = "") -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "SYNC_ASSETS_"))}
    env.update({"SYNC_ASSETS_STATE_DIR": str(tmp_path), "MYSQL_TABLES": "a,b,c"})
    env[TABLES_PER_STEP_ENV] = per_step
    result = subprocess.run(
        [sys.executable, "-c", LOAD], input=stdin, capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_the_step_layout_travels_with_the_run(tmp_path: Path) -> None:
    """A step process rebuilds the code server's ops, whatever its own variable says."""
    load_data, server_ops = _load(tmp_path, per_step="2")
    assert {"legacy_batch_01", "legacy_batch_02"} <= set(server_ops.split())
    assert _load(tmp_path, per_step="1", stdin=load_data + "\n") == [server_ops]
    assert "legacy__a" in _load(tmp_path, per_step="1")[1].split()  # not carried: its own


def _mysql_job(defs: dg.Definitions) -> dg.JobDefinition:
    return defs.resolve_job_def("mysql_sync_job")


def test_batch_steps_run_in_the_run_process_unless_steps_go_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Batched tables: the in-process executor by default (no step process beside the run's);
    a step per table keeps the multiprocess default; a Kubernetes executor keeps its own."""
    from sync_assets.definitions import build_definitions

    monkeypatch.setenv("SYNC_ASSETS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MYSQL_TABLES", ",".join(f"t{n:02d}" for n in range(60)))
    monkeypatch.setenv("SYNC_EXECUTOR", "multiprocess")
    monkeypatch.delenv(TABLES_PER_STEP_ENV, raising=False)
    job = _mysql_job(build_definitions())
    assert job.run_config["execution"] == {"config": {"in_process": {}}}
    assert job.executor_def.name == LOCAL_EXECUTOR_NAME  # the launchpad may choose
    monkeypatch.setenv(TABLES_PER_STEP_ENV, "1")
    assert "execution" not in _mysql_job(build_definitions()).run_config
    monkeypatch.delenv(TABLES_PER_STEP_ENV)
    monkeypatch.setenv("SYNC_EXECUTOR", "k8s")
    job = _mysql_job(build_definitions())
    assert "execution" not in job.run_config
    assert job.executor_def.name == "sync_assets_k8s"


@pytest.fixture
def env_for(
    pg_server: ServerInfo,
    mysql_server: ServerInfo,
    src_db: str,
    pg_dbname: str,
    target_schema: str,
    dagster_home: tuple[Path, str],
) -> Callable[[list[str]], dict[str, str]]:
    """The job's environment for some tables (`_job_env` with this test's servers)."""
    servers = (pg_server, mysql_server, src_db, pg_dbname, dagster_home, target_schema)
    return lambda tables: _job_env(*servers, tables)


@pytest.mark.timeout(1200)
def test_a_batched_run_is_one_process_and_multiprocess_stays_a_choice(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    target_schema: str,
    tmp_path: Path,
    env_for: Callable[[list[str]], dict[str, str]],
) -> None:
    tables = _tables(src, 4)
    env = {**env_for(tables), TABLES_PER_STEP_ENV: "2"}
    argv = [DAGSTER_BIN, "job", "execute", "-m", "sync_assets.definitions", "-j", "mysql_sync_job"]
    multiprocess = tmp_path / "multiprocess.yaml"
    multiprocess.write_text(yaml.safe_dump({"execution": {"config": {"multiprocess": {}}}}))
    for extra, in_process in (([], True), (["-c", str(multiprocess)], False)):
        run = subprocess.run(
            argv + extra, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        dagster_run, events = _run_events(env)
        assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
        started = [e for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START]
        assert {e.step_key for e in started} >= {"legacy_batch_01", "legacy_batch_02"}
        # The multiprocess executor announces each step process it starts.
        workers = [
            e for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_WORKER_STARTING
        ]
        assert len(workers) == (0 if in_process else len(started))
        materialized = {
            e.asset_materialization.asset_key.path[-1]
            for e in events
            if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        }
        assert materialized == set(tables)
        for table in tables:
            assert_same_table(src, pg_conn, target_schema, table)
