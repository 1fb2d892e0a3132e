"""Odd identifiers: reserved words, mixed case, spaces, non-ASCII, backticks, quotes."""

from __future__ import annotations

import psycopg
import pymysql
from psycopg import sql

from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

ODD_TABLE = "Order Details `Ünïcode` \"q\" 'it'"


def test_odd_identifiers_round_trip(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    quoted = "`" + ODD_TABLE.replace("`", "``") + "`"
    run_sql(
        src,
        f"""CREATE TABLE {quoted} (
            `select` INT PRIMARY KEY, `MixedCase` VARCHAR(10), `with space` INT,
            `naïve` TEXT, `back``tick` INT, `quo"te` INT, `it's` INT, `Group` DATE,
            `changed at` TIMESTAMP NOT NULL DEFAULT NOW() ON UPDATE NOW())""",
        f"INSERT INTO {quoted} VALUES (1, 'Ab', 2, 'é', 3, 4, 5, '2024-02-29', NOW()),"
        f" (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NOW())",
    )
    report = sync(ODD_TABLE)
    assert report.target_table == ODD_TABLE.lower()
    assert [name for name, _ in report.columns] == [
        "select", "mixedcase", "with space", "naïve", "back`tick", 'quo"te', "it's", "group",
        "changed at",
    ]  # fmt: skip
    assert_same_table(src, pg_conn, target_schema, ODD_TABLE)
    again = sync(ODD_TABLE)
    assert again.mode == "incremental" and again.rows_updated == 0
    pk = pg_conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (sql.Identifier(target_schema, ODD_TABLE.lower()).as_string(pg_conn),),
    ).fetchall()
    assert pk == [("select",)]


def test_unique_keys_are_recreated(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(
        src,
        "CREATE TABLE u (id INT PRIMARY KEY, a INT, b INT, c VARCHAR(30),"
        " UNIQUE KEY (a, b), UNIQUE KEY (c(5)))",
        "INSERT INTO u VALUES (1, 1, 1, 'x'), (2, 1, 2, NULL)",
    )
    sync("u")
    sync("u", mode="full_refresh")  # the swap renames indexes without name clashes
    indexes = pg_conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'u'"
        " ORDER BY indexname",
        (target_schema,),
    ).fetchall()
    defs = " | ".join(d for (d,) in indexes)
    assert "UNIQUE INDEX u_key1 ON" in defs and "(a, b)" in defs and "u_pkey" in defs
    assert len(indexes) == 2  # the prefix index on c(5) has no PostgreSQL equivalent
