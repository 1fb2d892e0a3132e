"""Dates MySQL stores under ALLOW_INVALID_DATES (2020-02-30) have no PostgreSQL value."""

from __future__ import annotations

import datetime as dt

import psycopg
import pymysql

from sync_assets_tests.mysql.conftest import SyncFn, run_sql


def test_invalid_calendar_dates_become_counted_nulls(
    src: pymysql.Connection, sync: SyncFn, pg_conn: psycopg.Connection, target_schema: str
) -> None:
    run_sql(
        src,
        "CREATE TABLE bad_dates (k INT PRIMARY KEY, d DATE, dtm DATETIME, ts TIMESTAMP NULL)",
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        "INSERT INTO bad_dates VALUES"
        " (1, '2020-02-30', '2021-04-31 10:00:00', NULL),"
        " (2, '2020-02-29', '2021-04-30 10:00:00', '2021-04-30 10:00:00'),"
        " (3, '2019-02-29', NULL, NULL)",
        "SET SESSION sql_mode = DEFAULT",
    )
    report = sync("bad_dates")
    rows = pg_conn.execute(f"SELECT k, d, dtm FROM {target_schema}.bad_dates ORDER BY k").fetchall()
    assert rows == [
        (1, None, None),
        (2, dt.date(2020, 2, 29), dt.datetime(2021, 4, 30, 10, 0)),
        (3, None, None),
    ]
    assert report.adjusted_values == 3  # 2020-02-30, 2021-04-31 and 2019-02-29, counted
