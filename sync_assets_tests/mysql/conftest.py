"""Helpers for the MySQL engine tests: a fresh MySQL database and PostgreSQL schema per test,
and a value-by-value comparison of a MySQL table with its PostgreSQL copy."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import sql

from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.state import staging_schema
from sync_assets.mysql.sync import SyncReport, sync_table
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.conftest import (
    create_mysql_database,
    drop_mysql_database,
    make_mysql_resource,
    mysql_admin_connect,
)


@pytest.fixture
def src_db(mysql_server: ServerInfo) -> Iterator[str]:
    """A fresh, empty MariaDB database for one test."""
    name = create_mysql_database(mysql_server, "sa_my")
    yield name
    drop_mysql_database(mysql_server, name)


@pytest.fixture
def src(mysql_server: ServerInfo, src_db: str) -> Iterator[pymysql.Connection]:
    conn = mysql_admin_connect(mysql_server, src_db)
    yield conn
    conn.close()


@pytest.fixture
def src_resource(mysql_server: ServerInfo, src_db: str) -> MySQLResource:
    return make_mysql_resource(mysql_server, src_db)


@pytest.fixture
def target_schema(pg_conn: psycopg.Connection) -> Iterator[str]:
    """A PostgreSQL schema of its own for one test (dropped after)."""
    name = f"legacy_{secrets.token_hex(4)}"
    yield name
    for schema in (name, staging_schema(name)):
        pg_conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run_sql(conn: pymysql.Connection, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


SyncFn = Callable[..., SyncReport]


@pytest.fixture
def sync(src_resource: MySQLResource, pg_resource: PostgresResource, target_schema: str) -> SyncFn:
    """`sync("table", mode=..., ...)`: run the engine on one table of `src_db`."""

    def run(table: str, **options: Any) -> SyncReport:
        return sync_table(
            src_resource, pg_resource, TableOptions(name=table, **options),
            target_schema=target_schema,
        )  # fmt: skip

    return run


# --- comparison -------------------------------------------------------------------------------


def mysql_rows(conn: pymysql.Connection, table: str) -> tuple[list[str], list[tuple]]:
    """All rows of `table` with pymysql's own conversions (spatial as WKT, FLOAT exact)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        cols = cur.fetchall()
        spatial = {"geometry", "point", "linestring", "polygon", "multipolygon"}
        exprs = []
        for name, data_type in cols:
            quoted = f"`{name.replace('`', '``')}`"
            if data_type in spatial:
                quoted = f"ST_AsText({quoted})"
            elif data_type == "float":  # MySQL prints FLOAT with 6 digits: compare the exact value
                quoted = f"CAST({quoted} AS DOUBLE)"
            exprs.append(quoted)
        cur.execute(f"SELECT {', '.join(exprs)} FROM `{table.replace('`', '``')}`")
        return [n for n, _ in cols], list(cur.fetchall())


def pg_rows(
    conn: psycopg.Connection, schema: str, table: str, columns: list[str]
) -> tuple[list[str], list[tuple]]:
    types = dict(
        conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (sql.Identifier(schema, table).as_string(conn),),
        ).fetchall()
    )
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(schema, table)
        )
    ).fetchall()
    return [types[c] for c in columns], rows


def expected_value(value: Any, pg_type: str) -> Any:
    """What PostgreSQL must hold for a MySQL value (the documented mapping)."""
    if value is None:
        return None
    if isinstance(value, str) and pg_type in {"date", "timestamp without time zone"}:
        return None  # zero dates, returned as text by pymysql, become NULL
    if pg_type == "timestamp with time zone":
        return None if isinstance(value, str) else value.replace(tzinfo=dt.UTC)
    if pg_type == "boolean":
        return bool(value)
    if pg_type == "text[]":
        return sorted(value) if isinstance(value, set) else sorted(filter(None, value.split(",")))
    if pg_type == "jsonb":
        return json.loads(value)
    if pg_type == "real":
        return value  # compared after float32 rounding in `same`
    if pg_type.startswith("bit("):
        width = int(pg_type[4:-1])
        return format(int.from_bytes(value, "big"), f"0{width}b")
    if isinstance(value, str):
        return value.replace("\x00", "")
    return value


def actual_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type.startswith("character(") and isinstance(value, str):
        return value.rstrip(" ")  # MySQL CHAR returns values without their padding
    if pg_type == "text[]":
        return sorted(value)
    if pg_type == "bytea":
        return bytes(value)
    if pg_type.startswith("bit("):
        return str(value)
    if isinstance(value, Decimal) and pg_type.startswith("numeric"):
        return value
    return value


def same(expected: Any, actual: Any, pg_type: str) -> bool:
    if pg_type == "real" and expected is not None and actual is not None:
        return struct.pack("f", expected) == struct.pack("f", actual)
    return expected == actual


def _primary_key(conn: pymysql.Connection, table: str, names: list[str]) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (table,),
        )
        return [names.index(name) for (name,) in cur.fetchall()] or [0]


def assert_same_table(
    my: pymysql.Connection, pg: psycopg.Connection, schema: str, table: str
) -> int:
    """Every value of every row equal (rows matched on the primary key); returns the row count."""
    names, source = mysql_rows(my, table)
    targets = [n.lower() for n in names]
    types, copied = pg_rows(pg, schema, table.lower(), targets)
    assert len(copied) == len(source), f"{table}: {len(copied)} rows vs {len(source)}"
    key = _primary_key(my, table, names)
    by_key = {tuple(row[i] for i in key): row for row in copied}
    for row in source:
        pg_row = by_key[tuple(expected_value(row[i], types[i]) for i in key)]
        for name, pg_type, want, got in zip(names, types, row, pg_row, strict=True):
            exp, act = expected_value(want, pg_type), actual_value(got, pg_type)
            assert same(exp, act, pg_type), (
                f"{table}.{name} ({pg_type}) row {row[key[0]]!r}: MySQL {want!r} → expected"
                f" {exp!r}, PostgreSQL has {act!r}"
            )
    return len(source)
