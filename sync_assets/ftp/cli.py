"""Operator commands of the FTP side: `ftp-ledger` (what was loaded) and `reingest`.

Both read the PostgreSQL settings from the same variables as the code location
(POSTGRES_HOST, POSTGRES_DB, ...). `reingest` removes a file's rows, rejects and ledger row in
one transaction, under the source's advisory lock, so the next run loads it again exactly once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import psycopg
from psycopg import sql

from sync_assets.core.locks import advisory_lock
from sync_assets.core.names import ftp_source_lock
from sync_assets.core.pg import META_SCHEMA, ident, table_exists
from sync_assets.core.settings import ConfigError
from sync_assets.ftp import store
from sync_assets.ftp.config import SourceConfig, load_sources
from sync_assets.resources import PostgresResource

LEDGER_COLUMNS = (
    "source",
    "path",
    "version",
    "status",
    "size",
    "offset_bytes",
    "rows_loaded",
    "rows_rejected",
    "updated_at",
    "error",
    "delete_error",
)


def find_source(name: str, sources: Sequence[SourceConfig] | None = None) -> SourceConfig:
    for source in sources if sources is not None else load_sources():
        if source.name == name:
            return source
    raise ConfigError(f"no FTP source named {name!r} in the project config")


def show_ledger(
    conn: psycopg.Connection, source: str | None, status: str | None, limit: int
) -> list[tuple]:
    filters = []
    params: list[object] = []
    if source:
        filters.append(sql.SQL("source = %s"))
        params.append(source)
    if status:
        filters.append(sql.SQL("status = %s"))
        params.append(status)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {}{} ORDER BY source, path LIMIT %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in LEDGER_COLUMNS),
        ident(META_SCHEMA, store.LEDGER),
        where,
    )
    return conn.execute(query, [*params, limit]).fetchall()


def reingest(
    conn: psycopg.Connection, source: SourceConfig, paths: Sequence[str], failed: bool
) -> dict[str, int]:
    """Forget files so the next run loads them again; returns rows removed per path.

    `conn` must be in autocommit mode: the lock is session-level, the removal one transaction.
    """
    with (
        advisory_lock(conn, ftp_source_lock(source.name), source.lock_wait_seconds),
        conn.transaction(),
    ):
        targets = list(paths)
        if failed:
            found = conn.execute(
                sql.SQL("SELECT path FROM {} WHERE source = %s AND status = %s").format(
                    ident(META_SCHEMA, store.LEDGER)
                ),
                (source.name, store.FAILED),
            ).fetchall()
            targets += [row[0] for row in found]
        removed: dict[str, int] = {}
        with conn.cursor() as cur:
            has_table = table_exists(cur, source.schema, source.table_name)
            for path in dict.fromkeys(targets):
                removed[path] = _forget(cur, source, path, has_table)
        return removed


def _forget(cur: psycopg.Cursor, source: SourceConfig, path: str, has_table: bool) -> int:
    count = 0
    if has_table:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE _source_file = %s").format(
                ident(source.schema, source.table_name)
            ),
            (path,),
        )
        count = cur.rowcount
    for table in (store.REJECTS, store.LEDGER):
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE source = %s AND path = %s").format(
                ident(META_SCHEMA, table)
            ),
            (source.name, path),
        )
    return count


def _cmd_ledger(args: argparse.Namespace) -> int:
    with PostgresResource.from_env(resolved=True).connection(autocommit=True) as conn:
        store.ensure_meta_tables(conn)
        found = show_ledger(conn, args.source, args.status, args.limit)
    print("\t".join(LEDGER_COLUMNS))
    for row in found:
        print("\t".join("" if v is None else str(v) for v in row))
    print(f"({len(found)} file(s))", file=sys.stderr)
    return 0


def _cmd_reingest(args: argparse.Namespace) -> int:
    source = find_source(args.source)
    if not args.paths and not args.failed:
        raise ConfigError("give remote path(s) to reingest, or --failed")
    with PostgresResource.from_env(resolved=True).connection(autocommit=True) as conn:
        store.ensure_meta_tables(conn)
        removed = reingest(conn, source, args.paths, args.failed)
    for path, count in removed.items():
        print(f"{path}: {count} row(s) removed; loaded again on the next run")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    ledger = subparsers.add_parser("ftp-ledger", help="show the FTP file ledger")
    ledger.add_argument("--source", help="only this log source")
    ledger.add_argument("--status", choices=["loaded", "rejected", "failed", "deleted", "moved"])
    ledger.add_argument("--limit", type=int, default=1000)
    ledger.set_defaults(func=_cmd_ledger)

    again = subparsers.add_parser(
        "reingest",
        help="load FTP files again: removes their rows, rejects and ledger entry first",
    )
    again.add_argument("--source", required=True, help="log source name")
    again.add_argument("paths", nargs="*", help="remote paths as shown by ftp-ledger")
    again.add_argument("--failed", action="store_true", help="all files with status failed")
    again.set_defaults(func=_cmd_reingest)
