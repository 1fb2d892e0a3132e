"""PostgreSQL plumbing shared by both sides: identifiers, COPY in text format, introspection.

COPY text format is the fastest safe path: each value is escaped here (backslash, tab, newline,
carriage return) and NULL is written as `\\N`, so no string from a source can break a row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import psycopg
from psycopg import sql

META_SCHEMA = "sync_meta"

# Maximum PostgreSQL identifier length in bytes; longer names would be silently truncated.
MAX_IDENTIFIER_BYTES = 63

# The characters COPY text gives a meaning to, and their escapes (backslash first: the bytes
# form is applied as successive replacements).
COPY_SPECIALS = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
COPY_ESCAPES = str.maketrans(COPY_SPECIALS)
COPY_BYTE_ESCAPES = tuple((k.encode(), v.encode()) for k, v in COPY_SPECIALS.items())
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


def short_hash(text: str) -> str:
    """8 hex digits naming `text` stably (same in every process and release)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


def with_suffix(name: str, suffix: str) -> str:
    """`name` cut (at a character boundary) so that name + suffix fits the identifier limit."""
    room = MAX_IDENTIFIER_BYTES - len(suffix.encode("utf-8"))
    return name.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix


def derived_name(base: str, suffix: str) -> str:
    """`base_suffix`, shortened with a hash of `base` when it would exceed the limit (never
    truncated silently: two long bases stay two names)."""
    name = f"{base}_{suffix}"
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    return with_suffix(base, f"_{short_hash(base)}_{suffix}")


def ident(*parts: str) -> sql.Identifier:
    """A quoted, validated (optionally schema-qualified) identifier."""
    return sql.Identifier(*(check_identifier(p) for p in parts))


def copy_line(values: Sequence[str | None]) -> str:
    """One COPY text-format line from already-stringified values (None becomes NULL)."""
    return "\t".join(COPY_NULL if v is None else v.translate(COPY_ESCAPES) for v in values) + "\n"


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


_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, CASE WHEN %s THEN a.atttypmod END)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def table_columns(
    conn: psycopg.Connection | psycopg.Cursor, schema: str, table: str, modifiers: bool = True
) -> dict[str, str]:
    """Column name → type as `format_type` spells it, in table order ({} if no such table).

    With `modifiers=False` the base spelling (`numeric`, `character varying`, `timestamp with
    time zone`), as information_schema's `data_type` gives it."""
    return dict(conn.execute(_COLUMNS_SQL, (modifiers, schema, table)).fetchall())


def exact_row_count(
    conn: psycopg.Connection | psycopg.Cursor, schema: str, table: str, timeout: str | None = None
) -> int:
    """count(*) of `schema.table` in the caller's transaction; with `timeout` (e.g. "5s") the
    statement is cancelled after it (SET LOCAL: the caller must be in a transaction)."""
    if timeout is not None:
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout)))
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident(schema, table))).fetchone()
    return int(row[0]) if row else 0
