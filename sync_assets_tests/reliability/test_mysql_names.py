"""MySQL table and column names shaped like SQL injection, paths and schema-qualified names:
each becomes exactly one table in the target schema, values intact, and nothing else changes.

Backticks, quotes, spaces, reserved words and non-ASCII in ordinary names are proven by
mysql/test_identifiers.py.
"""

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.core.pg import IdentifierError
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import build_table_asset
from sync_assets.mysql.naming import mq
from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

pytestmark = pytest.mark.slow

HOSTILE_TABLES = [
    'x"; DROP SCHEMA public CASCADE; --',
    "legacy.evil",
    "../../etc/passwd",
    "`); DROP TABLE t; --",
    'public"."canary',
]
HOSTILE_COLUMNS = ["`id`", 'a"b', "c;d", "from", "e`f g", "x'); DROP TABLE y; --"]


def _schemas(pg: psycopg.Connection) -> set[str]:
    return {name for (name,) in pg.execute("SELECT nspname FROM pg_namespace").fetchall()}


def _tables_in(pg: psycopg.Connection, schema: str) -> set[str]:
    rows = pg.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r'",
        (schema,),
    ).fetchall()
    return {name for (name,) in rows}


def test_hostile_table_and_column_names_stay_inside_the_target_schema(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    pg_conn.execute("CREATE TABLE IF NOT EXISTS public.canary (id int)")
    columns = ", ".join(f"{mq(c)} VARCHAR(20)" for c in HOSTILE_COLUMNS[1:])
    for table in HOSTILE_TABLES:
        run_sql(
            src,
            f"CREATE TABLE {mq(table)} ({mq(HOSTILE_COLUMNS[0])} INT PRIMARY KEY, {columns})",
            f"INSERT INTO {mq(table)} VALUES (1, 'a\"b', 'c;d', 'DROP', '`', ''''), (2, NULL,"
            " NULL, NULL, NULL, NULL)",
        )
    schemas_before = _schemas(pg_conn) | {"sync_meta"}

    for table in HOSTILE_TABLES:
        report = sync(table)
        assert (report.target_schema, report.target_table) == (target_schema, table.lower())
        assert assert_same_table(src, pg_conn, target_schema, table) == 2
        sync(table)  # a second (incremental or full) run on the same names

    assert _tables_in(pg_conn, target_schema) == {t.lower() for t in HOSTILE_TABLES}
    new_schemas = _schemas(pg_conn) - schemas_before
    assert all(s.startswith(target_schema) for s in new_schemas), new_schemas  # its staging
    assert [s for s in new_schemas if s != target_schema and _tables_in(pg_conn, s)] == []
    assert "canary" in _tables_in(pg_conn, "public")
    keys = {
        build_table_asset(t, TableOptions(name=t), target_schema)[1].key for t in HOSTILE_TABLES
    }
    assert len(keys) == len(HOSTILE_TABLES)  # distinct, valid Dagster asset keys
    assert all(dg.AssetKey(key.path) == key for key in keys)


def test_a_name_too_long_for_postgresql_is_a_clear_error(
    src: pymysql.Connection, sync: SyncFn, target_schema: str
) -> None:
    name = "t" * 64  # MySQL's limit; PostgreSQL's is 63 bytes
    run_sql(src, f"CREATE TABLE {name} (id INT PRIMARY KEY)")
    with pytest.raises(IdentifierError, match="longer than PostgreSQL's 63-byte limit"):
        sync(name)
