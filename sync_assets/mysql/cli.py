"""`sync-assets refresh-mysql`: discover the base tables of MYSQL_DB and store the list.

The definitions are built from the stored list, so run this when tables are added or removed
(the deployment runs it before starting the code server). The list is also kept in PostgreSQL
(when POSTGRES_HOST is set): with MySQL down and no local list, the command restores it from
there and still fails.
"""

from __future__ import annotations

import argparse
import os
from contextlib import closing

import psycopg

from sync_assets.mysql import config
from sync_assets.mysql.catalog import list_base_tables
from sync_assets.mysql.naming import lower_names
from sync_assets.mysql.table_list_store import load_table_list, save_table_list
from sync_assets.resources import MySQLResource, PostgresResource, SourceUnavailableError


def refresh_tables(resource: MySQLResource) -> tuple[list[str], str]:
    with closing(resource.connect()) as conn:
        tables = list_base_tables(conn, resource.database)
    lower_names(tables, "table")  # refuse to store a list the definitions could not load
    return tables, str(config.write_table_list(tables, resource.database))


def postgres_from_env() -> PostgresResource | None:
    """The PostgreSQL resource when POSTGRES_HOST is set (the list's copy is optional)."""
    if not os.environ.get("POSTGRES_HOST"):
        return None
    return PostgresResource.from_env(resolved=True)


def _copy_to_postgres(tables: list[str], database: str) -> None:
    postgres = postgres_from_env()
    if postgres is None:
        return
    try:
        with postgres.connection(autocommit=True) as conn:
            save_table_list(conn, database, tables)
        print(f"kept a copy of the list in PostgreSQL {postgres.describe()}")
    except (SourceUnavailableError, psycopg.Error) as exc:  # the local list is what counts
        print(f"warning: no copy of the list in PostgreSQL ({type(exc).__name__})")


def _restore_from_postgres(database: str) -> None:
    """MySQL is down: with no local list, take the last one stored in PostgreSQL."""
    postgres = postgres_from_env()
    if config.state_file().is_file() or postgres is None:
        return
    try:
        with postgres.connection(autocommit=True) as conn:
            tables = load_table_list(conn, database)
    except (SourceUnavailableError, psycopg.Error) as exc:
        print(f"no list restored from PostgreSQL ({type(exc).__name__})")
        return
    if tables is not None:
        path = config.write_table_list(tables, database)
        print(f"restored the last known list ({len(tables)} table(s)) from PostgreSQL to {path}")


def _refresh(args: argparse.Namespace) -> int:
    mysql = MySQLResource.from_env(resolved=True)
    try:
        tables, path = refresh_tables(mysql)
    except SourceUnavailableError:
        _restore_from_postgres(mysql.database)
        raise  # still an error (exit 2, the message on stderr)
    print(f"stored {len(tables)} table(s) of MySQL database in {path}")
    _copy_to_postgres(tables, mysql.database)
    if args.verbose:
        for table in tables:
            print(f"  {table}")
    if os.environ.get(config.TABLES_ENV, "").strip():
        print(f"note: {config.TABLES_ENV} is set and takes precedence over the stored list")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "refresh-mysql",
        help="discover the base tables of MYSQL_DB and store the list the definitions use",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the table names")
    parser.set_defaults(func=_refresh)
