"""PostgreSQL side of the FTP engine: the ledger, the rejects table and the target tables.

Bookkeeping lives in `sync_meta` (core.pg.META_SCHEMA): `ftp_ledger` has one row per
(source, remote path) — the current version of that file, how many bytes and lines of it are
consumed, and its status — and `ftp_rejects` one row per rejected line. A file's rows, its
rejects and its ledger row are written in the same transaction. `ftp_retired` keeps what a
replaced version had consumed, so that its content is recognised when it reappears under
another name (log rotation, rotation.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import psycopg
from psycopg import sql

from sync_assets.core import pg
from sync_assets.core.locks import ddl_transaction
from sync_assets.core.pg import META_SCHEMA, ensure_schema, ident

LEDGER = "ftp_ledger"
REJECTS = "ftp_rejects"
RETIRED = "ftp_retired"
# A replaced version's content is looked for under new names this long (a rotated file
# normally shows up in the same or the next run).
RETIRED_KEEP_DAYS = 30

# Ledger statuses.
LOADED = "loaded"  # every complete line up to offset_bytes is in the table
REJECTED = "rejected"  # every line was rejected: the file is kept on the server
FAILED = "failed"  # the file could not be parsed at all: kept, retried when it changes
DELETED = "deleted"  # loaded, then deleted from the server after commit
MOVED = "moved"  # its content continues under another path (rotated or moved away)

# The provenance that is constant per file reaches the rows through column defaults read
# from transaction-local settings (`set_config(name, value, true)`, made by the fast path
# once per file transaction, before its first COPY), instead of being sent and parsed on
# every line. The default calls one of the functions below; they are declared IMMUTABLE so
# that COPY evaluates each default once when it starts (PostgreSQL folds immutable calls with
# constant arguments), not once per row.
# That is sound here because the settings only change between statements: each COPY sees the
# values its transaction set. Without a setting (a hand-written INSERT) the text/integer
# defaults are NULL, so `_source_file`/`_file_version` (NOT NULL) refuse the row. The
# line-by-line path sends every provenance value explicitly, as before.
SETTINGS = {
    "_source_file": ("sync_assets.source_file", "ftp_setting_text"),
    "_file_version": ("sync_assets.file_version", "ftp_setting_int"),
    "_file_mtime": ("sync_assets.file_mtime", "ftp_setting_time"),
    "_run_id": ("sync_assets.run_id", "ftp_setting_text"),
}
_SETTING_FUNCTIONS = {
    "ftp_setting_text": "text",
    "ftp_setting_int": "integer",
    "ftp_setting_time": "timestamptz",
}


def provenance_default(column: str) -> sql.Composed:
    setting, function = SETTINGS[column]
    return sql.SQL("{}({})").format(ident(META_SCHEMA, function), sql.Literal(setting))


PROVENANCE_DDL = sql.SQL(
    "_source_file text NOT NULL DEFAULT {}, _file_version integer NOT NULL DEFAULT {},"
    " _line_number bigint NOT NULL, _file_mtime timestamptz DEFAULT {},"
    " _ingested_at timestamptz NOT NULL DEFAULT now(), _run_id text DEFAULT {}"
).format(
    *(provenance_default(c) for c in ("_source_file", "_file_version", "_file_mtime", "_run_id"))
)


@dataclass
class FileIdentity:
    """Which file (and version, in which run) a row comes from: its provenance columns."""

    source: str
    path: str
    version: int
    mtime: datetime | None
    run_id: str

    def provenance(self) -> dict[str, str]:
        """The per-file provenance columns' values, as the fast path's settings carry them
        (an empty setting is NULL, see the setting functions)."""
        return {
            "_source_file": self.path,
            "_file_version": str(self.version),
            "_file_mtime": self.mtime.isoformat() if self.mtime else "",
            "_run_id": self.run_id,
        }


@dataclass
class LedgerEntry:
    source: str
    path: str
    version: int
    size: int
    mtime: datetime | None
    head_hash: str | None
    head_len: int
    offset_bytes: int
    lines_consumed: int
    rows_loaded: int
    rows_rejected: int
    status: str
    format: str | None
    error: str | None = None
    delete_error: str | None = None
    # The time as a LIST-only server listed it (its own zone and precision, stored as is):
    # an unchanged file is recognised from the listing alone (listtime.py).
    listed_mtime: datetime | None = None
    # sha256 of the last `tail_len` (<= 1 KiB) bytes before offset_bytes: with head_hash,
    # what recognises this content under another name (rotation.py).
    tail_hash: str | None = None
    tail_len: int = 0


_LEDGER_COLUMNS = tuple(f.name for f in fields(LedgerEntry))
# Columns added after the first release, added to older ledgers when missing.
_ADDED_COLUMNS = {
    "listed_mtime": "timestamptz",
    "tail_hash": "text",
    "tail_len": "integer NOT NULL DEFAULT 0",
}
# What a retired version keeps: enough to resume its content under another path.
_RETIRED_COLUMNS = (
    "source", "path", "version", "size", "mtime", "head_hash", "head_len", "offset_bytes",
    "lines_consumed", "rows_loaded", "rows_rejected", "status", "format", "tail_hash",
    "tail_len",
)  # fmt: skip


def ensure_meta_tables(conn: psycopg.Connection) -> None:
    # Every bookkeeping DDL of both sides takes the one project-wide lock: no collision left
    # to retry (CREATE ... IF NOT EXISTS is not safe against a concurrent creator otherwise).
    with ddl_transaction(conn) as cur:
        _create_meta_tables(cur)


def _create_meta_tables(cur: psycopg.Cursor) -> None:
    ensure_schema(cur, META_SCHEMA)
    cur.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
            source text NOT NULL, path text NOT NULL, version integer NOT NULL DEFAULT 1,
            size bigint NOT NULL, mtime timestamptz, head_hash text,
            head_len integer NOT NULL DEFAULT 0, offset_bytes bigint NOT NULL DEFAULT 0,
            lines_consumed bigint NOT NULL DEFAULT 0, rows_loaded bigint NOT NULL DEFAULT 0,
            rows_rejected bigint NOT NULL DEFAULT 0, status text NOT NULL, format text,
            error text, delete_error text, delete_attempts integer NOT NULL DEFAULT 0,
            first_seen timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(), run_id text,
            PRIMARY KEY (source, path))"""
        ).format(ident(META_SCHEMA, LEDGER))
    )
    _add_missing_columns(cur)
    cur.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
            source text NOT NULL, path text NOT NULL, version integer NOT NULL,
            size bigint NOT NULL, mtime timestamptz, head_hash text NOT NULL,
            head_len integer NOT NULL, offset_bytes bigint NOT NULL,
            lines_consumed bigint NOT NULL, rows_loaded bigint NOT NULL,
            rows_rejected bigint NOT NULL, status text NOT NULL, format text NOT NULL,
            tail_hash text NOT NULL, tail_len integer NOT NULL,
            retired_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, path, version))"""
        ).format(ident(META_SCHEMA, RETIRED))
    )
    cur.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
            id bigserial PRIMARY KEY, source text NOT NULL, path text NOT NULL,
            version integer NOT NULL, line_number bigint NOT NULL, raw text,
            reason text NOT NULL, run_id text,
            rejected_at timestamptz NOT NULL DEFAULT now())"""
        ).format(ident(META_SCHEMA, REJECTS))
    )
    cur.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS ftp_rejects_file ON {} (source, path)").format(
            ident(META_SCHEMA, REJECTS)
        )
    )
    for function, pg_type in _SETTING_FUNCTIONS.items():
        cur.execute("SELECT to_regprocedure(%s)", (f"{META_SCHEMA}.{function}(text)",))
        row = cur.fetchone()
        if row is not None and row[0] is not None:
            continue  # created once: no catalog churn (and no lock) on every run
        cur.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}(setting text) RETURNS {} LANGUAGE sql IMMUTABLE"
                " AS $$ SELECT nullif(current_setting(setting, true), '')::{} $$"
            ).format(ident(META_SCHEMA, function), sql.SQL(pg_type), sql.SQL(pg_type))
        )


def _add_missing_columns(cur: psycopg.Cursor) -> None:
    cur.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        (META_SCHEMA, LEDGER),
    )
    present = {row[0] for row in cur.fetchall()}
    for column, definition in _ADDED_COLUMNS.items():
        if column not in present:  # checked first: no ACCESS EXCLUSIVE lock on every run
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    ident(META_SCHEMA, LEDGER), ident(column), sql.SQL(definition)
                )
            )


def ensure_target_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    with ddl_transaction(conn) as cur:
        _create_target_table(cur, schema, table)


def _create_target_table(cur: psycopg.Cursor, schema: str, table: str) -> None:
    ensure_schema(cur, schema)
    cur.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(ident(schema, table), PROVENANCE_DDL)
    )


def table_columns(cur: psycopg.Cursor, schema: str, table: str) -> dict[str, str]:
    """Column name → type (the base spelling, as information_schema's data_type), in order."""
    return pg.table_columns(cur, schema, table, modifiers=False)


ROW_COUNT_TIMEOUT = "5s"


def exact_row_count(cur: psycopg.Cursor, schema: str, table: str) -> int:
    """count(*) inside the caller's transaction, cancelled after ROW_COUNT_TIMEOUT."""
    return pg.exact_row_count(cur, schema, table, timeout=ROW_COUNT_TIMEOUT)


def table_row_estimate(cur: psycopg.Cursor, schema: str, table: str) -> int:
    cur.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
        (sql.Identifier(schema, table).as_string(cur),),
    )
    row = cur.fetchone()
    return max(int(row[0]), 0) if row and row[0] is not None else 0


def add_column(cur: psycopg.Cursor, schema: str, table: str, column: str, pg_type: str) -> None:
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            ident(schema, table), ident(column), sql.SQL(_known_type(pg_type))
        )
    )


def widen_to_double(cur: psycopg.Cursor, schema: str, table: str, column: str) -> None:
    cur.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE double precision").format(
            ident(schema, table), ident(column)
        )
    )


def _known_type(pg_type: str) -> str:
    # Types are ours (from types.py), never from a file; checked anyway before use in DDL.
    allowed = {"bigint", "double precision", "boolean", "timestamp with time zone", "text"}
    if pg_type not in allowed:
        raise ValueError(f"unexpected column type {pg_type!r}")
    return pg_type


def load_ledger(conn: psycopg.Connection, source: str) -> dict[str, LedgerEntry]:
    query = sql.SQL("SELECT {} FROM {} WHERE source = %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _LEDGER_COLUMNS), ident(META_SCHEMA, LEDGER)
    )
    with conn.cursor() as cur:
        cur.execute(query, (source,))
        return {row[1]: LedgerEntry(*row) for row in cur.fetchall()}


def save_entry(cur: psycopg.Cursor, entry: LedgerEntry, run_id: str) -> None:
    """Insert or replace the ledger row of a file (inside the caller's transaction)."""
    columns = (*_LEDGER_COLUMNS, "run_id")
    values = [getattr(entry, c) for c in _LEDGER_COLUMNS] + [run_id]
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[2:]
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (source, path) DO UPDATE SET {},"
            " updated_at = now()"
        ).format(
            ident(META_SCHEMA, LEDGER),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            updates,
        ),
        values,
    )


def record_listed(
    conn: psycopg.Connection, source: str, listed: list[tuple[str, int, datetime]]
) -> None:
    """Remember how the LIST server lists these (path, version) files: one statement."""
    if not listed:
        return
    paths, versions, stamps = (list(column) for column in zip(*listed, strict=True))
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "UPDATE {} AS l SET listed_mtime = u.listed FROM unnest(%s::text[],"
                " %s::integer[], %s::timestamptz[]) AS u(path, version, listed)"
                " WHERE l.source = %s AND l.path = u.path AND l.version = u.version"
            ).format(ident(META_SCHEMA, LEDGER)),
            (paths, versions, stamps, source),
        )


def load_retired(conn: psycopg.Connection, source: str) -> list[LedgerEntry]:
    """The retired versions of `source` still looked for (older ones are forgotten here)."""
    table = ident(META_SCHEMA, RETIRED)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE source = %s AND retired_at < now() - %s::interval"
            ).format(table),
            (source, f"{RETIRED_KEEP_DAYS} days"),
        )
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE source = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in _RETIRED_COLUMNS), table
            ),
            (source,),
        )
        return [LedgerEntry(**dict(zip(_RETIRED_COLUMNS, row, strict=True))) for row in cur]


def retire(cur: psycopg.Cursor, previous: LedgerEntry) -> None:
    """Keep what `previous` had consumed before its path's row is overwritten by a new
    version (same transaction). FOR UPDATE: if a rotated copy claimed it meanwhile (status
    `moved`, see `claim`), the row no longer qualifies and nothing is kept twice."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in _RETIRED_COLUMNS)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} WHERE source = %s AND path = %s"
            " AND version = %s AND status IN (%s, %s) AND tail_hash IS NOT NULL"
            " AND head_hash IS NOT NULL AND format IS NOT NULL FOR UPDATE"
            " ON CONFLICT DO NOTHING"
        ).format(ident(META_SCHEMA, RETIRED), columns, columns, ident(META_SCHEMA, LEDGER)),
        (previous.source, previous.path, previous.version, LOADED, REJECTED),
    )


def claim(cur: psycopg.Cursor, seen: LedgerEntry, moved_to: str) -> bool:
    """Take over the content `seen` (inside the new path's transaction): its ledger row
    becomes `moved`, or its retired row is removed. False if another path took it first (or
    it changed): the caller must not resume from it."""
    cur.execute(
        sql.SQL(
            "UPDATE {} SET status = %s, error = %s, updated_at = now() WHERE source = %s"
            " AND path = %s AND version = %s AND offset_bytes = %s AND status IN (%s, %s)"
        ).format(ident(META_SCHEMA, LEDGER)),
        (MOVED, f"continues as {moved_to}", seen.source, seen.path, seen.version,
         seen.offset_bytes, LOADED, REJECTED),
    )  # fmt: skip
    if cur.rowcount:
        return True
    cur.execute(
        sql.SQL(
            "DELETE FROM {} WHERE source = %s AND path = %s AND version = %s AND offset_bytes = %s"
        ).format(ident(META_SCHEMA, RETIRED)),
        (seen.source, seen.path, seen.version, seen.offset_bytes),
    )
    return cur.rowcount > 0


def record_delete(conn: psycopg.Connection, source: str, path: str, error: str | None) -> None:
    """After a delete attempt: status `deleted`, or the error kept for the next run's retry."""
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "UPDATE {} SET status = CASE WHEN %(err)s::text IS NULL THEN %(deleted)s"
                " ELSE status END, delete_error = %(err)s,"
                " delete_attempts = delete_attempts + 1, updated_at = now()"
                " WHERE source = %(source)s AND path = %(path)s"
            ).format(ident(META_SCHEMA, LEDGER)),
            {"err": error, "deleted": DELETED, "source": source, "path": path},
        )


def copy_rejects_statement() -> sql.Composed:
    return sql.SQL(
        "COPY {} (source, path, version, line_number, raw, reason, run_id) FROM STDIN"
    ).format(ident(META_SCHEMA, REJECTS))
