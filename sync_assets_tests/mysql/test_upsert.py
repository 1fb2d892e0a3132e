"""How staged rows are written: a few rows by key lookups that leave unchanged rows untouched
(not even locked), many rows by one INSERT ... ON CONFLICT pass; both count their inserts and
updates exactly and end with the same table."""

from __future__ import annotations

import psycopg
import pymysql
import pytest

from sync_assets.mysql import incremental as engine
from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

TABLE = """CREATE TABLE parts (
  id INT PRIMARY KEY, name VARCHAR(40), qty INT, active TINYINT(1),
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY (updated_at))"""
# The test tables are a page or two: the share decides which path runs.
LOOKUPS, ONE_PASS = 100.0, 0.0


def _seed(src: pymysql.Connection) -> None:
    rows = ", ".join(
        f"({i}, 'part {i}', {i}, {i % 2}, '2024-05-01 08:00:00')" for i in range(1, 51)
    )
    run_sql(src, TABLE, f"INSERT INTO parts VALUES {rows}")


def _change(src: pymysql.Connection) -> None:
    """One insert, two updates (one of them to the boolean), one delete: all at the watermark."""
    run_sql(
        src,
        "INSERT INTO parts VALUES (51, 'new', 1, 1, '2024-05-01 08:00:00')",
        "UPDATE parts SET qty = 700, updated_at = '2024-05-01 08:00:00' WHERE id = 7",
        "UPDATE parts SET active = 1 - active, updated_at = '2024-05-01 08:00:00' WHERE id = 8",
        "DELETE FROM parts WHERE id = 9",
    )


def _row_versions(pg: psycopg.Connection, schema: str) -> dict[int, tuple[str, str]]:
    """id → (xmin, xmax): xmin changes when a row is rewritten, xmax when it is locked."""
    rows = pg.execute(f"SELECT id, xmin::text, xmax::text FROM {schema}.parts").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


@pytest.mark.parametrize("share", [LOOKUPS, ONE_PASS], ids=["lookups", "one-pass"])
def test_unchanged_rows_are_not_rewritten_and_changes_are_counted(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    share: float,
) -> None:
    monkeypatch.setattr(engine, "LOOKUP_SHARE", share)
    _seed(src)
    sync("parts")
    before = _row_versions(pg_conn, target_schema)
    idle = sync("parts")  # every row sits at the watermark's timestamp: all 50 read again
    assert idle.mode == "incremental" and idle.rows_read == 50
    assert (idle.rows_inserted, idle.rows_updated) == (0, 0)
    versions = _row_versions(pg_conn, target_schema)
    assert {i for i in versions if versions[i][0] != before[i][0]} == set()  # none rewritten
    if share == LOOKUPS:  # ... nor locked: no WAL written for them
        assert versions == before and {xmax for _, xmax in before.values()} == {"0"}

    _change(src)
    changed = sync("parts")
    assert (changed.rows_inserted, changed.rows_updated, changed.rows_deleted) == (1, 2, 1)
    after = _row_versions(pg_conn, target_schema)
    assert {i for i in after if after[i][0] != versions.get(i, ("",))[0]} == {7, 8, 51}
    assert changed.row_count == changed.source_row_count == 50
    assert_same_table(src, pg_conn, target_schema, "parts")


def test_lookup_settings_last_for_the_block_only(pg_conn: psycopg.Connection) -> None:
    def settings() -> tuple[str, str]:
        row = pg_conn.execute(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"
        ).fetchone()
        assert row is not None
        return row[0], row[1]

    with pg_conn.transaction():
        with engine._planner_lookups(pg_conn):
            assert settings() == ("off", "off")
        assert settings() == ("on", "on")  # the delete check's anti-join may hash again
    with (
        pytest.raises(psycopg.errors.DivisionByZero),
        pg_conn.transaction(),
        engine._planner_lookups(pg_conn),
    ):
        pg_conn.execute("SELECT 1 / 0")
    assert settings() == ("on", "on")  # the rollback restored them
