"""Bookkeeping in PostgreSQL (`core.pg.META_SCHEMA`): one row per synced table.

Written in the same transaction as the data, so the watermark can never run ahead of (or
behind) what the table holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
from psycopg import sql

from sync_assets.core.locks import ddl_transaction
from sync_assets.core.pg import META_SCHEMA, derived_name, ensure_schema, ident

STATE_TABLE = "mysql_tables"


@dataclass(frozen=True)
class TableState:
    mode: str
    cursor_column: str | None
    watermark: str | None
    primary_key: list[str]


def staging_schema(target_schema: str) -> str:
    """A schema of our own for staging tables: a staging table can never be (or drop) a table
    someone else owns, and it carries the target's own name, so it moves in with SET SCHEMA."""
    return derived_name(target_schema, "sync_staging")


def _bookkeeping_present(conn: psycopg.Connection, target_schema: str) -> bool:
    """The state table and both schemas exist (one catalog look-up, no lock)."""
    names = [
        ident(META_SCHEMA, STATE_TABLE).as_string(conn),
        ident(target_schema).as_string(conn),
        ident(staging_schema(target_schema)).as_string(conn),
    ]
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regnamespace(%s) IS NOT NULL"
        " AND to_regnamespace(%s) IS NOT NULL",
        names,
    ).fetchone()
    return bool(row and row[0])


def ensure_bookkeeping(conn: psycopg.Connection, target_schema: str) -> None:
    """Create the schemas and the state table once (serialised: concurrent runs race on DDL).

    Every table's sync asks; once they exist (nearly always) a single look-up answers, without
    the project-wide DDL lock that would queue a batch step's workers behind each other."""
    if _bookkeeping_present(conn, target_schema):
        return
    with ddl_transaction(conn) as cur:
        ensure_schema(cur, META_SCHEMA)
        ensure_schema(cur, target_schema)
        ensure_schema(cur, staging_schema(target_schema))
        cur.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                    target_schema text NOT NULL,
                    target_table text NOT NULL,
                    source_table text NOT NULL,
                    mode text NOT NULL,
                    cursor_column text,
                    watermark text,
                    primary_key jsonb NOT NULL DEFAULT '[]',
                    synced_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (target_schema, target_table))"""
            ).format(ident(META_SCHEMA, STATE_TABLE))
        )


def load_state(conn: psycopg.Connection, schema: str, table: str) -> TableState | None:
    row = conn.execute(
        sql.SQL(
            "SELECT mode, cursor_column, watermark, primary_key FROM {}"
            " WHERE target_schema = %s AND target_table = %s"
        ).format(ident(META_SCHEMA, STATE_TABLE)),
        (schema, table),
    ).fetchone()
    if row is None:
        return None
    return TableState(row[0], row[1], row[2], list(row[3] or []))


def save_state(
    conn: psycopg.Connection, schema: str, table: str, source_table: str, state: TableState
) -> None:
    conn.execute(
        sql.SQL(
            """INSERT INTO {} AS s (target_schema, target_table, source_table, mode,
                   cursor_column, watermark, primary_key, synced_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (target_schema, target_table) DO UPDATE SET
                   source_table = EXCLUDED.source_table, mode = EXCLUDED.mode,
                   cursor_column = EXCLUDED.cursor_column, watermark = EXCLUDED.watermark,
                   primary_key = EXCLUDED.primary_key, synced_at = now()"""
        ).format(ident(META_SCHEMA, STATE_TABLE)),
        (
            schema,
            table,
            source_table,
            state.mode,
            state.cursor_column,
            state.watermark,
            json.dumps(state.primary_key),
        ),
    )
