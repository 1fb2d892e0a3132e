"""Schema drift: added, widened, dropped and incompatibly changed columns."""

from __future__ import annotations

import psycopg
import pymysql

from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

TABLE = """CREATE TABLE items (
  id INT PRIMARY KEY, qty SMALLINT, price DECIMAL(5,2), code CHAR(3), note VARCHAR(20),
  active TINYINT(1),
  updated_at DATETIME(6) NOT NULL DEFAULT NOW(6) ON UPDATE NOW(6))"""
ROWS = """INSERT INTO items VALUES
  (1, 10, 1.50, 'abc', 'one', 1, '2024-01-01'), (2, 20, 999.99, 'x', 'two', 0, '2024-01-01')"""


def _pg_types(pg: psycopg.Connection, schema: str) -> dict[str, str]:
    return dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'items'",
            (schema,),
        ).fetchall()
    )


def test_widened_types_are_widened_in_place(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(src, TABLE, ROWS)
    sync("items")
    run_sql(
        src,
        "ALTER TABLE items MODIFY qty BIGINT, MODIFY price DECIMAL(12,4), MODIFY code CHAR(10)",
        "UPDATE items SET qty = 9000000000, price = 12345678.1234, code = 'abcdefghij'"
        " WHERE id = 1",
    )
    report = sync("items")
    assert report.mode == "incremental"
    assert sorted(report.widened_columns) == ["code", "price", "qty"]
    assert (report.rows_inserted, report.rows_updated) == (0, 1)  # counted without the side
    assert _pg_types(pg_conn, target_schema)["qty"] == "bigint"
    assert_same_table(src, pg_conn, target_schema, "items")


def test_added_column_arrives_with_every_value(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(src, TABLE, ROWS)
    sync("items")
    # The new column's default fills old rows without touching their cursor.
    run_sql(src, "ALTER TABLE items ADD COLUMN colour VARCHAR(10) NOT NULL DEFAULT 'red'")
    report = sync("items")
    assert report.mode == "full_refresh" and "'colour' was added" in report.reason
    assert report.added_columns == ["colour"]
    assert_same_table(src, pg_conn, target_schema, "items")


def test_dropped_column_is_kept_with_its_values(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(src, TABLE, ROWS)
    sync("items")
    run_sql(src, "ALTER TABLE items DROP COLUMN note", "INSERT INTO items (id, qty) VALUES (3, 3)")
    report = sync("items")
    assert report.mode == "incremental" and report.dropped_columns == ["note"]
    notes = pg_conn.execute(f"SELECT id, note FROM {target_schema}.items ORDER BY id").fetchall()
    assert notes == [(1, "one"), (2, "two"), (3, None)]

    # A later full refresh (here forced by an added column) still keeps the old values.
    run_sql(src, "ALTER TABLE items ADD COLUMN extra INT DEFAULT 5")
    again = sync("items")
    assert again.mode == "full_refresh" and again.dropped_columns == ["note"]
    notes = pg_conn.execute(f"SELECT id, note FROM {target_schema}.items ORDER BY id").fetchall()
    assert notes == [(1, "one"), (2, "two"), (3, None)]


def test_incompatible_change_triggers_a_full_refresh(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(src, TABLE, ROWS)
    sync("items")
    run_sql(
        src, "ALTER TABLE items MODIFY qty VARCHAR(10)", "UPDATE items SET qty = 'ten' WHERE id=1"
    )
    report = sync("items")
    assert report.mode == "full_refresh"
    assert "'qty' changed incompatibly: smallint → text" in report.reason
    assert _pg_types(pg_conn, target_schema)["qty"] == "text"
    assert_same_table(src, pg_conn, target_schema, "items")


def test_boolean_column_receiving_other_values_becomes_smallint(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(src, TABLE, ROWS)
    assert dict(sync("items").columns)["active"] == "boolean"
    run_sql(src, "UPDATE items SET active = 2 WHERE id = 2")
    report = sync("items")
    assert report.mode == "full_refresh" and "other than 0/1" in report.reason
    # The full refresh guessed boolean again (the copy had it so), COPY refused the 2, and the
    # third attempt scanned the column: each restart wrote nothing and is named.
    assert [n.split(":")[0] for n in report.notes] == [
        "started over as a full refresh",
        "started over",
    ]
    assert _pg_types(pg_conn, target_schema)["active"] == "smallint"
    assert_same_table(src, pg_conn, target_schema, "items")


def test_tinyint1_types_are_guessed_without_a_scan_and_checked_by_copy(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(
        src,
        "CREATE TABLE flags (id INT PRIMARY KEY, yes_no TINYINT(1), level TINYINT(1) UNSIGNED)",
        "INSERT INTO flags VALUES (1, 1, 0), (2, 0, 1), (3, NULL, 255), (4, 1, NULL)",
    )
    first = sync("flags", mode="full_refresh")
    assert dict(first.columns) == {"id": "integer", "yes_no": "boolean", "level": "smallint"}
    assert any("holds other values" in n for n in first.notes)  # the guess failed once
    assert first.row_count == first.source_row_count == 4
    assert_same_table(src, pg_conn, target_schema, "flags")
    # The copy holds `level` as an integer now: the next full refresh scans that column first
    # and guesses only `yes_no`, so it needs no second attempt.
    again = sync("flags", mode="full_refresh")
    assert dict(again.columns) == dict(first.columns) and again.notes == []
    assert_same_table(src, pg_conn, target_schema, "flags")
    # Once MySQL holds only 0/1 there, the scan lets `level` become boolean.
    run_sql(src, "UPDATE flags SET level = 1 WHERE id = 3")
    assert dict(sync("flags", mode="full_refresh").columns)["level"] == "boolean"
    assert_same_table(src, pg_conn, target_schema, "flags")


def test_enum_gains_a_value(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    run_sql(
        src,
        "CREATE TABLE sizes (id INT PRIMARY KEY, size ENUM('s', 'm', 'it''s', 'back\\\\slash'),"
        " updated_at DATETIME(6) NOT NULL DEFAULT NOW(6) ON UPDATE NOW(6))",
        "INSERT INTO sizes (id, size) VALUES (1, 's'), (2, 'it''s'), (3, 'back\\\\slash')",
    )
    sync("sizes")
    run_sql(
        src,
        "ALTER TABLE sizes MODIFY size ENUM('s', 'm', 'it''s', 'back\\\\slash', 'xl')",
        "INSERT INTO sizes (id, size) VALUES (4, 'xl')",
    )
    report = sync("sizes")
    assert report.mode == "incremental" and report.rows_inserted == 1
    assert_same_table(src, pg_conn, target_schema, "sizes")
    checks = pg_conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
        " AND contype = 'c'",
        (f"{target_schema}.sizes",),
    ).fetchall()
    assert len(checks) == 1 and "'xl'" in checks[0][0] and "'back\\slash'" in checks[0][0]
