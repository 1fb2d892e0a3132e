"""Dagster's PostgreSQL run and event-log storages, keeping a few connections open.

dagster-postgres opens a new connection (SQLAlchemy's NullPool) for every statement it runs
outside the webserver: every event stored, every read, every pool-slot claim. A step that
syncs 25 tables stores hundreds of events, and profiling one (docs/performance.md, many
tables) put 40% of its CPU in `connect` alone, and as much again on the server, which starts
a backend for each. Each event also reflected the `asset_keys` columns again (a few catalog
queries) to learn which schema version the storage has.

Here each process keeps up to `POOL_SIZE` idle connections per database, shared by its
instances (opened when needed, checked with a `SELECT 1` before reuse, so a restarted server
costs a reconnect, not a failed event, and replaced hourly), and each event-log storage
remembers the columns and tables it has found present: Dagster's migrations only add them,
and one found missing is looked up again next time; each run storage does the same for the
columns and tables Dagster's run-storage migrations add. The webserver
still applies Dagster's own `optimize_for_webserver` on top. Schedules keep dagster-postgres's
storage as it is: they are not on a run's path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log import EventLogStorage
from dagster._core.storage.runs import RunStorage
from dagster._core.storage.schedules import ScheduleStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine
from sqlalchemy.engine import Connection

# Connections a process keeps idle: the step's main thread and its table workers store events
# at once (`mysql/workers.py`). More threads at once get extra connections, closed after use
# (as before: never a wait for a free one).
POOL_SIZE = 4
POOL_RECYCLE_SECONDS = 3600

_ENGINES: dict[str, sqlalchemy.engine.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def pooled_engine(postgres_url: str) -> sqlalchemy.engine.Engine:
    """The process's AUTOCOMMIT engine for `postgres_url` (as dagster-postgres's, with a small
    pool instead of none). One per process and URL, shared by every instance: a Celery worker
    builds an instance per task and never disposes it, which must not leave a pool each."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(postgres_url)
        if engine is None:
            engine = _ENGINES[postgres_url] = create_pg_engine(
                postgres_url,
                isolation_level="AUTOCOMMIT",
                pool_size=POOL_SIZE,
                max_overflow=-1,
                pool_recycle=POOL_RECYCLE_SECONDS,
                pool_pre_ping=True,
            )
        return engine


def _forget_inherited_connections() -> None:
    """In a forked child: drop the parent's pooled connections without closing them (the
    parent still uses those sockets); the child opens its own (SQLAlchemy's advice)."""
    for engine in list(_ENGINES.values()):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


class PooledPostgresRunStorage(PostgresRunStorage):
    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True) -> None:
        self._present: set[str] = set()  # before Dagster's __init__, which may migrate
        super().__init__(postgres_url, should_autocreate_tables)
        self._engine.dispose()  # the NullPool engine: holds nothing
        self._engine = pooled_engine(self.postgres_url)

    # Dagster asks which of its migrations' columns and tables exist by reflecting the catalog
    # on every run write and many reads (7 reflections for a one-table run). Found present,
    # the answer is kept (migrations only add them); found missing, it is asked again.
    def _remembered(self, name: str, check: Callable[[], bool]) -> bool:
        if name in self._present:
            return True
        found = check()
        if found:
            self._present.add(name)
        return found

    def has_run_stats_index_cols(self) -> bool:
        return self._remembered("run_stats_index_cols", super().has_run_stats_index_cols)

    def has_backfill_id_column(self) -> bool:
        return self._remembered("backfill_id_column", super().has_backfill_id_column)

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._remembered("bulk_actions_selector", super().has_bulk_actions_selector_cols)

    def has_bulk_action_job_name_column(self) -> bool:
        return self._remembered("bulk_action_job_name", super().has_bulk_action_job_name_column)

    def has_backfill_tags_table(self) -> bool:
        return self._remembered("backfill_tags_table", super().has_backfill_tags_table)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()  # closes the idle connections; the engine stays usable


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True) -> None:
        super().__init__(postgres_url, should_autocreate_tables)
        self._engine.dispose()
        self._engine = pooled_engine(self.postgres_url)
        self._present_columns: set[str] = set()
        self._present_tables: set[str] = set()

    def has_asset_key_col(self, column_name: str) -> bool:
        return column_name in self._present_columns or super().has_asset_key_col(column_name)

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name in self._present_columns:
            return True
        found = super()._has_asset_key_col_on_connection(conn, column_name)
        if found:
            self._present_columns.add(column_name)
        return found

    def has_table(self, table_name: str) -> bool:
        if table_name in self._present_tables:
            return True
        found = super().has_table(table_name)
        if found:
            self._present_tables.add(table_name)
        return found

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledPostgresStorage(DagsterStorage):
    """dagster-postgres's three storages, the run and event-log ones pooled (above)."""

    def __init__(self, postgres_url: str) -> None:
        self._run_storage = PooledPostgresRunStorage(postgres_url)
        self._event_log_storage = PooledPostgresEventLogStorage(postgres_url)
        self._schedule_storage = PostgresScheduleStorage(postgres_url)
        super().__init__()

    @property
    def event_log_storage(self) -> EventLogStorage[Any]:
        return self._event_log_storage

    @property
    def run_storage(self) -> RunStorage[Any]:
        return self._run_storage

    @property
    def schedule_storage(self) -> ScheduleStorage[Any]:
        return self._schedule_storage
