"""One table materialised as an operator does (`dagster asset materialize --select`, the same
job the UI's "Materialize selected" launches): its single step runs in the run's process, no
step process beside it. Two tables, or `single_step_in_process: false`, keep a step process
each (the multiprocess executor announces every process it starts)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.steps import TABLES_PER_STEP_ENV
from sync_assets.orchestration.local_executor import SINGLE_STEP_FIELD
from sync_assets_tests.conftest import REPO_ROOT
from sync_assets_tests.mysql.conftest import assert_same_table
from sync_assets_tests.mysql.test_many_tables import (  # noqa: F401 (dagster_home: a fixture)
    DAGSTER_BIN,
    RUN_TIMEOUT_SECONDS,
    _job_env,
    _run_events,
    _tables,
    dagster_home,
)

KEEP_STEP_PROCESS = {"execution": {"config": {"multiprocess": {SINGLE_STEP_FIELD: False}}}}


def _materialize(env: dict[str, str], tables: list[str], config: dict | None = None) -> list:
    selection = ",".join(f"legacy/{t}" for t in tables)
    argv = [DAGSTER_BIN, "asset", "materialize", "-m", "sync_assets.definitions", "--select",
            selection, *(["--config-json", json.dumps(config)] if config else [])]  # fmt: skip
    run = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    dagster_run, events = _run_events(env)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    return events


def _of_type(events: list, kind: dg.DagsterEventType) -> list:
    return [e for e in events if e.dagster_event_type == kind]


@pytest.mark.timeout(900)
def test_one_table_runs_in_the_run_process_and_several_keep_step_processes(
    pg_server: ServerInfo,
    mysql_server: ServerInfo,
    src: pymysql.Connection,
    src_db: str,
    pg_dbname: str,
    pg_conn: psycopg.Connection,
    target_schema: str,
    dagster_home: tuple[Path, str],  # noqa: F811
) -> None:
    tables = _tables(src, 2)
    env = _job_env(pg_server, mysql_server, src_db, pg_dbname, dagster_home, target_schema, tables)
    env[TABLES_PER_STEP_ENV] = "1"  # a step per table, as for up to 50 tables by default

    for selected, config, step_processes in (
        ([tables[0]], None, 0),
        (tables, None, 2),
        ([tables[1]], KEEP_STEP_PROCESS, 1),
    ):
        events = _materialize(env, selected, config)
        started = _of_type(events, dg.DagsterEventType.STEP_START)
        assert len(started) == len(selected), [e.step_key for e in started]
        workers = _of_type(events, dg.DagsterEventType.STEP_WORKER_STARTING)
        assert len(workers) == step_processes, (selected, config)
        done = _of_type(events, dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert sorted(e.asset_materialization.asset_key.path[-1] for e in done) == selected
        checks = _of_type(events, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        assert checks and all(
            e.dagster_event.event_specific_data.asset_key.path[-1] in selected for e in checks
        )
    for table in tables:
        assert_same_table(src, pg_conn, target_schema, table)
