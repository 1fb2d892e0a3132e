"""The MySQL side's bookkeeping (`state.ensure_bookkeeping`), asked by every table's sync:
created under the project-wide DDL lock when missing, a plain look-up once present."""

import psycopg
import pytest

from sync_assets.core.locks import DDL_LOCK_NAME, lock_key
from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.state import ensure_bookkeeping, staging_schema
from sync_assets_tests.conftest import create_pg_database, drop_pg_database, pg_admin_connect

SCHEMA = "legacy"


def _schemas(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {name for (name,) in rows}


def test_present_bookkeeping_needs_no_ddl_lock_and_missing_parts_come_back(
    pg_server: ServerInfo,
) -> None:
    database = create_pg_database(pg_server, "sa_bookkeeping")
    try:
        with (
            pg_admin_connect(pg_server, database) as conn,
            pg_admin_connect(pg_server, database) as other,
        ):
            ensure_bookkeeping(conn, SCHEMA)
            assert {"sync_meta", SCHEMA, staging_schema(SCHEMA)} <= _schemas(conn)
            # Another run holds the DDL lock (e.g. creating its own tables): a table's sync
            # that finds everything in place does not wait for it.
            other.execute("SELECT pg_advisory_lock(%s)", (lock_key(DDL_LOCK_NAME),))
            conn.execute("SET statement_timeout = '3s'")
            ensure_bookkeeping(conn, SCHEMA)
            # Something missing: created again, under the lock (so it waits for it).
            conn.execute(f'DROP SCHEMA "{staging_schema(SCHEMA)}"')
            with pytest.raises(psycopg.errors.QueryCanceled):
                ensure_bookkeeping(conn, SCHEMA)
            other.execute("SELECT pg_advisory_unlock(%s)", (lock_key(DDL_LOCK_NAME),))
            ensure_bookkeeping(conn, SCHEMA)
            assert staging_schema(SCHEMA) in _schemas(conn)
    finally:
        drop_pg_database(pg_server, database)
