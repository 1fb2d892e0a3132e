"""PostgreSQL writing shared by both sides: identifiers, COPY in text format, metadata schema.

COPY text format is the fastest safe path: each value is escaped here (backslash, tab, newline,
carriage return) and NULL is written as `\\N`, so no string from a source can break a row.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

META_SCHEMA = "sync_meta"

# Maximum PostgreSQL identifier length in bytes; longer names would be silently truncated.
MAX_IDENTIFIER_BYTES = 63

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"


class IdentifierError(ValueError):
    """A source name cannot be used as a PostgreSQL identifier (clear message, names it)."""


def check_identifier(name: str, what: str = "identifier") -> str:
    """Validate a name before it is quoted: non-empty, no NUL, fits PostgreSQL's 63 bytes."""
    if not name or "\x00" in name:
        raise IdentifierError(f"{what} {name!r} is empty or contains a NUL character")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"{what} {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit"
        )
    return name


def ident(*parts: str) -> sql.Identifier:
    """A quoted, validated (optionally schema-qualified) identifier."""
    return sql.Identifier(*(check_identifier(p) for p in parts))


def copy_line(values: Sequence[str | None]) -> str:
    """One COPY text-format line from already-stringified values (None becomes NULL)."""
    return "\t".join(COPY_NULL if v is None else v.translate(_COPY_ESCAPES) for v in values) + "\n"


def copy_statement(
    table: sql.Composable, columns: Sequence[str], freeze: bool = False
) -> sql.Composed:
    """`COPY table (columns) FROM STDIN` in text format; FREEZE for a table created in the same
    transaction (its rows are written already frozen: no later vacuum pass over them)."""
    return sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        table,
        sql.SQL(", ").join(ident(c) for c in columns),
        sql.SQL(" (FREEZE)" if freeze else ""),
    )


def ensure_schema(cur: psycopg.Cursor, schema: str) -> None:
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))


def table_exists(cur: psycopg.Cursor, schema: str, table: str) -> bool:
    cur.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, table).as_string(cur),)
    )
    row = cur.fetchone()
    return bool(row and row[0])


def relation_identifier(database: str, schema: str, table: str) -> str:
    """The `db.schema.table` string the Dagster UI shows as the asset's relation."""
    return f"{database}.{schema}.{table}"
