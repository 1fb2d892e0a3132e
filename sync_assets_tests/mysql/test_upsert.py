"""How staged rows are written: a few rows by key lookups that leave unchanged rows untouched
(not even locked), many rows by one INSERT ... ON CONFLICT pass; both count their inserts and
updates exactly and end with the same table."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql
import pytest

from sync_assets.mysql import incremental as engine
from sync_assets.mysql import stream
from sync_assets.mysql.state import load_state
from sync_assets.mysql.upsert_sql import Upsert
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


def _count_calls(monkeypatch: pytest.MonkeyPatch, calls: list[str], *names: str) -> None:
    """Record which of Upsert's statements each batch built."""
    for name in names:
        original = getattr(Upsert, name)

        def spy(self: Upsert, _original: Any = original, _name: str = name) -> Any:
            calls.append(_name)
            return _original(self)

        monkeypatch.setattr(Upsert, name, spy)


def test_batches_cross_from_lookups_to_one_pass_and_count_exactly(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch holds at most two chunks of 5 rows (one page of stage); the target is one page,
    # so with a share of 1.0 the first batch is written by lookups and the others in one pass.
    monkeypatch.setattr(stream, "QUEUE_DEPTH", 1)
    monkeypatch.setattr(engine, "LOOKUP_SHARE", 1.0)
    _seed(src)
    sync("parts", batch_rows=5)
    run_sql(
        src,
        "UPDATE parts SET qty = qty + 1000, updated_at = '2024-05-01 08:00:00' WHERE id % 5 = 0",
        "INSERT INTO parts SELECT seq, CONCAT('new ', seq), seq, seq % 2, '2024-05-01 08:00:00'"
        " FROM seq_51_to_60",
    )
    calls: list[str] = []
    _count_calls(monkeypatch, calls, "update_changed", "on_conflict")
    report = sync("parts", batch_rows=5)
    assert report.mode == "incremental" and report.rows_read == 60
    assert (report.rows_inserted, report.rows_updated, report.rows_deleted) == (10, 10, 0)
    assert calls[0] == "update_changed" and "on_conflict" in calls
    assert report.row_count == report.source_row_count == 60
    assert_same_table(src, pg_conn, target_schema, "parts")


def test_a_failure_after_some_batches_were_written_leaves_the_previous_state(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "QUEUE_DEPTH", 1)  # many batches of at most 10 rows
    _seed(src)
    sync("parts")
    table = f"SELECT *, xmin::text FROM {target_schema}.parts ORDER BY id"
    before = pg_conn.execute(table).fetchall()
    mark = load_state(pg_conn, target_schema, "parts")
    run_sql(
        src,
        "UPDATE parts SET qty = qty + 1, updated_at = '2024-05-01 08:00:00'",
        "INSERT INTO parts VALUES (51, 'new', 1, 1, '2024-05-01 08:00:00')",
    )
    write, written = engine._BatchWriter.write, []

    def failing(self: Any) -> None:
        if len(written) == 2:
            raise RuntimeError("disk full")
        write(self)
        written.append(self.job.report.rows_updated)

    monkeypatch.setattr(engine._BatchWriter, "write", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        sync("parts", batch_rows=5)
    assert written[-1] > 0  # rows were updated before the failure ...
    assert pg_conn.execute(table).fetchall() == before  # ... and rolled back with it
    assert load_state(pg_conn, target_schema, "parts") == mark
    monkeypatch.undo()
    again = sync("parts", batch_rows=5)
    assert (again.rows_inserted, again.rows_updated) == (1, 50)
    assert_same_table(src, pg_conn, target_schema, "parts")
