"""Dagster's own storage (runs, event logs, schedules), configured by the old container's variables.

`dagster.yaml` names this class (`storage: custom:`), so a deployment needs no variable beyond
the ones the replaced container had:

- `POSTGRES_HOST` set: PostgreSQL at POSTGRES_HOST:POSTGRES_PORT (default 5432) as
  POSTGRES_USER / POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), with POSTGRES_SSLMODE and
  POSTGRES_SSLROOTCERT: the same settings, read by the same function, as the sync's own
  connections (`core.settings.postgres_params_from_env`). The database is `DAGSTER_PG_DB`
  when set (its default schema, as earlier releases used it); otherwise `POSTGRES_DB`, in a
  schema of its own (`DAGSTER_PG_SCHEMA`, default `dagster`), created at first start: the
  owner of POSTGRES_DB needs no further privilege and Dagster's tables never mix with the
  synced ones.
- `POSTGRES_HOST` unset (a laptop running `dagster dev`): Dagster's default SQLite storage in
  `$DAGSTER_HOME/storage` (else `./.dagster_home/storage`), with a log line saying so.

Every connection setting is read in `connection_settings()` only; `env_prefix: DAGSTER_PG`
in the storage's config reads DAGSTER_PG_HOST, DAGSTER_PG_USER, ... instead, for a storage
role of its own. The instance configuration itself carries no secret (it travels on run
workers' command lines): the password is read from the environment in each process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from dagster import Field
from dagster._config.config_schema import UserConfigSchema
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log import EventLogStorage
from dagster._core.storage.runs import RunStorage
from dagster._core.storage.schedules import ScheduleStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_postgres.utils import get_conn_string
from psycopg import sql

from sync_assets.core.pooled_storage import PooledPostgresStorage
from sync_assets.core.settings import ConfigError, postgres_params_from_env, require

LOG = logging.getLogger("sync_assets.instance_storage")
DEFAULT_SCHEMA = "dagster"
LOCAL_HOME = ".dagster_home"
# A schema name we create and put in search_path: plain lower-case identifiers only.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PgConnection:
    host: str
    port: int
    user: str
    password: str
    database: str
    schema: str | None  # None: the database's default schema (public)
    sslmode: str
    sslrootcert: str | None

    def __repr__(self) -> str:  # never print the password
        return (
            f"PgConnection(host={self.host!r}, port={self.port}, user={self.user!r},"
            f" database={self.database!r}, schema={self.schema!r})"
        )


def connection_settings(
    env: Mapping[str, str] | None = None, prefix: str = "POSTGRES"
) -> PgConnection | None:
    """Where Dagster's storage lives, from the environment; None when <prefix>_HOST is unset."""
    env = os.environ if env is None else env
    if not env.get(f"{prefix}_HOST", ""):
        return None
    params = postgres_params_from_env(env, prefix=prefix)
    dagster_db = env.get("DAGSTER_PG_DB", "")
    schema = None if dagster_db else env.get("DAGSTER_PG_SCHEMA") or DEFAULT_SCHEMA
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigError(f"DAGSTER_PG_SCHEMA must match {_SCHEMA_NAME.pattern}, got {schema!r}")
    return PgConnection(
        host=params["host"],
        port=params["port"],
        user=params["user"],
        password=params["password"] or "",
        database=dagster_db or require("POSTGRES_DB", env.get("POSTGRES_DB")),
        schema=schema,
        sslmode=params["sslmode"],
        sslrootcert=params.get("sslrootcert"),
    )


def ensure_schema(conn: PgConnection) -> None:
    """Create the storage schema if missing (only then is CREATE on the database needed)."""
    if conn.schema is None:
        return
    with psycopg.connect(
        host=conn.host,
        port=conn.port,
        user=conn.user,
        password=conn.password or None,
        dbname=conn.database,
        sslmode=conn.sslmode,
        sslrootcert=conn.sslrootcert,
        autocommit=True,
    ) as pg:
        exists = pg.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (conn.schema,)
        ).fetchone()
        if exists:
            return
        # Another role (webserver/daemon) may create it at the same moment.
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            pg.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(conn.schema))
            )


def postgres_url(conn: PgConnection) -> str:
    # psycopg2: dagster-postgres 0.29 closes psycopg 3 connections it means to keep (its
    # statement-timeout hook), and SQLAlchemy 2.1 picks psycopg 3 for a bare "postgresql".
    params = {"sslmode": conn.sslmode}
    if conn.sslrootcert:
        params["sslrootcert"] = conn.sslrootcert
    if conn.schema:
        params["options"] = f"-csearch_path={conn.schema}"
    return get_conn_string(
        username=conn.user,
        password=conn.password,
        hostname=conn.host,
        db_name=conn.database,
        port=str(conn.port),
        params=params,
        scheme="postgresql+psycopg2",
    )


def local_storage_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    home = env.get("DAGSTER_HOME")
    return (Path(home) if home else Path.cwd() / LOCAL_HOME) / "storage"


def build_storage(prefix: str = "POSTGRES") -> DagsterStorage:
    conn = connection_settings(prefix=prefix)
    if conn is None:
        base_dir = local_storage_dir()
        LOG.info("POSTGRES_HOST is not set: Dagster's storage is SQLite in %s", base_dir)
        base_dir.mkdir(parents=True, exist_ok=True)
        return DagsterSqliteStorage.from_local(str(base_dir))
    ensure_schema(conn)
    return PooledPostgresStorage(postgres_url(conn))  # dagster-postgres's, pooled


class SyncAssetsStorage(DagsterStorage, ConfigurableClass):
    """PostgreSQL (or, with no POSTGRES_HOST, SQLite) storage chosen from the environment."""

    def __init__(
        self, inst_data: ConfigurableClassData | None = None, env_prefix: str = "POSTGRES"
    ) -> None:
        self._inst_data = inst_data
        self._inner = build_storage(env_prefix)
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {"env_prefix": Field(str, is_required=False, default_value="POSTGRES")}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, object]
    ) -> SyncAssetsStorage:
        return cls(inst_data=inst_data, env_prefix=str(config_value.get("env_prefix", "POSTGRES")))

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self._inner.event_log_storage

    @property
    def run_storage(self) -> RunStorage:
        return self._inner.run_storage

    @property
    def schedule_storage(self) -> ScheduleStorage:
        return self._inner.schedule_storage
