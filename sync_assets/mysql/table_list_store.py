"""A copy of the discovered MySQL table list in PostgreSQL (`sync_meta.mysql_table_list`).

`refresh-mysql` writes it next to the local state file. A code server started where that file
is missing (a new container or pod without the state volume) while MySQL is down restores the
last known list from it, so it still serves the same assets. Read only by the command, never
at definitions load (no network I/O there).
"""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

from sync_assets.core.locks import ddl_transaction
from sync_assets.core.pg import META_SCHEMA, ensure_schema, ident

LIST_TABLE = "mysql_table_list"


def save_table_list(conn: psycopg.Connection, database: str, tables: list[str]) -> None:
    with ddl_transaction(conn) as cur:
        ensure_schema(cur, META_SCHEMA)
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (mysql_database text PRIMARY KEY,"
                " tables jsonb NOT NULL, refreshed_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident(META_SCHEMA, LIST_TABLE))
        )
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (mysql_database, tables) VALUES (%s, %s) ON CONFLICT"
                " (mysql_database) DO UPDATE SET tables = EXCLUDED.tables, refreshed_at = now()"
            ).format(ident(META_SCHEMA, LIST_TABLE)),
            (database, json.dumps(tables)),
        )


def load_table_list(conn: psycopg.Connection, database: str) -> list[str] | None:
    """The stored list of `database`, or None when there is none (or no table yet)."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (sql.Identifier(META_SCHEMA, LIST_TABLE).as_string(conn),),
    ).fetchone()
    if not (exists and exists[0]):
        return None
    row = conn.execute(
        sql.SQL("SELECT tables FROM {} WHERE mysql_database = %s").format(
            ident(META_SCHEMA, LIST_TABLE)
        ),
        (database,),
    ).fetchone()
    return [str(t) for t in row[0]] if row else None
