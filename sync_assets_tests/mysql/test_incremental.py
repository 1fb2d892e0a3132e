"""Incremental sync: inserts, updates (even at the watermark's timestamp), late commits,
deletes; a run with no change writes nothing; the delete guard; the advisory lock."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.core.locks import LockBusyError, advisory_lock
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import VALUES_CHECK, build_mysql_defs
from sync_assets.mysql.sync import DeleteGuardError, sync_table
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

TABLE = """CREATE TABLE orders (
  id INT PRIMARY KEY, item VARCHAR(40), qty INT,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (updated_at))"""


def _versions(pg: psycopg.Connection, schema: str) -> dict[int, str]:
    """Row id → xmin: changes whenever PostgreSQL writes the row."""
    rows = pg.execute(f"SELECT id, xmin::text FROM {schema}.orders").fetchall()
    return dict(rows)


def _seed(src: pymysql.Connection, rows: int = 10) -> None:
    values = ", ".join(f"({i}, 'item {i}', {i}, '2024-01-01 10:00:00')" for i in range(1, rows + 1))
    run_sql(src, TABLE, f"INSERT INTO orders VALUES {values}")


def test_changes_arrive_and_an_unchanged_run_writes_nothing(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    _seed(src)
    first = sync("orders")
    assert first.mode == "full_refresh" and first.reason == "first load"
    assert first.watermark == "2024-01-01 10:00:00.000000"

    before = _versions(pg_conn, target_schema)
    idle = sync("orders")
    assert idle.mode == "incremental"
    assert (idle.rows_inserted, idle.rows_updated, idle.rows_deleted) == (0, 0, 0)
    assert _versions(pg_conn, target_schema) == before  # not one row rewritten

    run_sql(
        src,
        "INSERT INTO orders VALUES (11, 'new', 1, '2024-01-01 10:05:00')",
        # same timestamp as the stored watermark: must still be picked up
        "UPDATE orders SET qty = 100, updated_at = '2024-01-01 10:00:00' WHERE id = 2",
        # a late commit: newer than the watermark's row, older than the new maximum
        "UPDATE orders SET item = 'late', updated_at = '2024-01-01 10:03:00' WHERE id = 3",
        "DELETE FROM orders WHERE id = 4",
    )
    changed = sync("orders")
    assert changed.mode == "incremental"
    assert (changed.rows_inserted, changed.rows_updated, changed.rows_deleted) == (1, 2, 1)
    assert changed.watermark == "2024-01-01 10:05:00.000000"
    assert changed.row_count == changed.source_row_count == 10
    assert_same_table(src, pg_conn, target_schema, "orders")

    # A row committed late with a timestamp inside the overlap window below the watermark.
    run_sql(src, "UPDATE orders SET qty = 7 WHERE id = 5")
    run_sql(src, "UPDATE orders SET updated_at = '2024-01-01 10:01:00' WHERE id = 5")
    late = sync("orders")
    assert (late.rows_inserted, late.rows_updated, late.rows_deleted) == (0, 1, 0)
    assert_same_table(src, pg_conn, target_schema, "orders")

    before = _versions(pg_conn, target_schema)
    again = sync("orders")
    assert (again.rows_inserted, again.rows_updated, again.rows_deleted) == (0, 0, 0)
    assert _versions(pg_conn, target_schema) == before


def test_a_future_timestamp_does_not_hide_later_rows(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    _seed(src)
    sync("orders")
    run_sql(src, "INSERT INTO orders VALUES (50, 'future', 1, '2037-12-31 00:00:00')")
    report = sync("orders")
    assert report.rows_inserted == 1 and "cursor values in the future" in " ".join(report.notes)
    assert report.watermark is not None and report.watermark < "2037"
    run_sql(src, "INSERT INTO orders (id, item, qty) VALUES (51, 'now', 1)")  # stamped NOW()
    later = sync("orders")
    assert later.rows_inserted == 1 and later.rows_updated == 0  # the future row: not rewritten
    assert_same_table(src, pg_conn, target_schema, "orders")


def test_delete_guard_refuses_to_wipe_the_copy(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    _seed(src)
    sync("orders")
    run_sql(src, "DELETE FROM orders WHERE id > 2")
    with pytest.raises(DeleteGuardError, match="would delete 8 of 10 rows"):
        sync("orders")
    assert pg_conn.execute(f"SELECT count(*) FROM {target_schema}.orders").fetchone() == (10,)

    run_sql(src, "DELETE FROM orders")
    with pytest.raises(DeleteGuardError, match="returned no rows"):
        sync("orders")
    with pytest.raises(DeleteGuardError, match="returned no rows"):
        sync("orders", mode="full_refresh")
    assert pg_conn.execute(f"SELECT count(*) FROM {target_schema}.orders").fetchone() == (10,)

    emptied = sync("orders", max_delete_fraction=1.0)
    assert emptied.rows_deleted == 10 and emptied.row_count == 0


def test_full_refresh_on_request_and_deletes_always(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    _seed(src)
    sync("orders")
    # Insert one row and delete another: equal counts in MySQL, but after the upsert the copy
    # has one row more, so `deletes: auto` compares the keys and finds the deleted row.
    run_sql(
        src,
        "INSERT INTO orders VALUES (99, 'x', 1, '2024-01-01 10:00:00')",
        "DELETE FROM orders WHERE id = 1",
    )
    report = sync("orders")
    assert (report.rows_inserted, report.rows_deleted) == (1, 1)
    assert_same_table(src, pg_conn, target_schema, "orders")
    # `deletes: always` compares keys even when nothing changed (and deletes nothing).
    always = sync("orders", deletes="always")
    assert (always.rows_inserted, always.rows_updated, always.rows_deleted) == (0, 0, 0)
    role = f"reader_{target_schema}"
    pg_conn.execute(f'CREATE ROLE "{role}"')
    try:
        pg_conn.execute(f'GRANT SELECT ON {target_schema}.orders TO "{role}"')
        full = sync("orders", mode="full_refresh")
        assert full.mode == "full_refresh" and full.reason == "full refresh configured"
        assert full.rows_replaced == 10 and full.row_count == 10
        assert_same_table(src, pg_conn, target_schema, "orders")
        granted = pg_conn.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, f"{target_schema}.orders")
        ).fetchone()
        assert granted == (True,)  # the swap kept the grant
    finally:
        pg_conn.execute(f'DROP OWNED BY "{role}"')
        pg_conn.execute(f'DROP ROLE "{role}"')


def test_two_runs_on_one_table_never_interleave(
    src: pymysql.Connection, pg_resource: PostgresResource, sync: SyncFn, target_schema: str
) -> None:
    _seed(src)
    with (
        pg_resource.connection(autocommit=True) as other_run,
        advisory_lock(other_run, f"mysql:{target_schema}.orders"),
        pytest.raises(LockBusyError, match="another run is syncing"),
    ):
        sync("orders", lock_wait_seconds=0.3)
    assert sync("orders").row_count == 10


def test_values_check_finds_what_an_incremental_run_cannot_see(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    target_schema: str,
) -> None:
    _seed(src)
    config_file = tmp_path / "sync_assets.yaml"
    config_file.write_text("mysql:\n  tables:\n    orders:\n      verify_values: true\n")
    monkeypatch.setenv("SYNC_ASSETS_CONFIG", str(config_file))
    monkeypatch.setenv("MYSQL_TABLES", "orders")
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    assets = [a for a in build_mysql_defs().assets if isinstance(a, dg.AssetsDefinition)]
    resources = {"mysql": src_resource, "postgres": pg_resource}

    def checks() -> dict[str, dg.AssetCheckEvaluation]:
        result = dg.materialize(assets, resources=resources)
        return {c.check_name: c for c in result.get_asset_check_evaluations()}

    assert all(c.passed for c in checks().values())
    # A change stamped far below the watermark (outside the overlap window): invisible to the
    # incremental read, but the value check sees it and fails, naming the key.
    run_sql(src, "UPDATE orders SET qty = 999, updated_at = '2000-01-01' WHERE id = 6")
    found = checks()
    assert found["row_count_matches_source"].passed
    values = found[VALUES_CHECK]
    assert not values.passed
    assert values.metadata["mismatched_rows"].value == 1
    assert values.metadata["sample_primary_keys"].value == "6"


class _WritesDuringTheRun(logging.LoggerAdapter):
    """The engine's log: when it announces its plan (the MySQL read snapshot is open, nothing is
    read yet), another session commits new rows, as the legacy application would."""

    def __init__(self, src: pymysql.Connection, statements: list[str]) -> None:
        super().__init__(logging.getLogger(__name__), {})
        self.src, self.statements = src, statements

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if "watermark" in str(msg) and self.statements:
            run_sql(self.src, self.statements.pop(0))
        super().info(msg, *args, **kwargs)


@pytest.mark.parametrize("mode", ["full_refresh", "incremental"])
def test_rows_committed_during_a_run_wait_for_the_next_one(
    mode: str,
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    """The source is counted late (while PostgreSQL upserts), yet in the read snapshot: the
    count, the rows and the watermark all describe the same instant."""
    _seed(src)
    sync("orders")
    log = _WritesDuringTheRun(src, ["INSERT INTO orders (id, item, qty) VALUES (77, 'late', 1)"])
    options = TableOptions(name="orders", mode=mode)
    during = sync_table(src_resource, pg_resource, options, log=log, target_schema=target_schema)
    assert not log.statements  # the insert happened inside the run
    assert during.mode == mode
    assert during.source_row_count == during.row_count == 10 and during.counts_match
    assert pg_conn.execute(
        f"SELECT count(*) FROM {target_schema}.orders WHERE id = 77"
    ).fetchone() == (0,)
    after = sync("orders")
    assert after.row_count == after.source_row_count == 11
    assert_same_table(src, pg_conn, target_schema, "orders")
