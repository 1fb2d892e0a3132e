"""`sync-assets refresh-mysql`: discover the base tables of MYSQL_DB and store the list.

The definitions are built from the stored list, so run this when tables are added or removed
(the deployment runs it before starting the code server).
"""

from __future__ import annotations

import argparse
import os
from contextlib import closing

from sync_assets.mysql import config
from sync_assets.mysql.catalog import list_base_tables
from sync_assets.mysql.naming import lower_names
from sync_assets.resources import MySQLResource


def refresh_tables(resource: MySQLResource) -> tuple[list[str], str]:
    with closing(resource.connect()) as conn:
        tables = list_base_tables(conn, resource.database)
    lower_names(tables, "table")  # refuse to store a list the definitions could not load
    return tables, str(config.write_table_list(tables, resource.database))


def _refresh(args: argparse.Namespace) -> int:
    tables, path = refresh_tables(MySQLResource.from_env(resolved=True))
    print(f"stored {len(tables)} table(s) of MySQL database in {path}")
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
