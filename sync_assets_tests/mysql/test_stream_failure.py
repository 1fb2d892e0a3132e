"""A copy stopped mid-stream (an interrupt, a lost PostgreSQL connection): the half-read MySQL
result is not drained (pymysql would read every remaining row of a large table when the cursor
is collected); the connection is closed and the error reaches the caller at once."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from sync_assets.mysql import stream
from sync_assets.resources import MySQLResource


class Interrupted(BaseException):
    """Stands for Dagster's interrupt, raised in the copying thread after the first chunk."""


def _interrupt(rows: int) -> None:
    raise Interrupted(rows)


def test_a_copy_stopped_mid_stream_closes_the_half_read_connection(
    src_resource: MySQLResource, pg_conn: psycopg.Connection
) -> None:
    pg_conn.execute("CREATE TEMP TABLE numbers (n bigint)")
    raw = stream.raw_connection(src_resource)
    select = "SELECT CAST(seq AS CHAR) FROM seq_1_to_3000000"
    copy = sql.SQL("COPY numbers FROM STDIN")
    # pymysql's own reader (fast=False) is the one that drains; the wire reader left pymysql
    # out of step and the collected cursor failed on a packet sequence error instead
    with pg_conn.cursor() as cur, pytest.raises(Interrupted):
        stream.copy_query(raw, select, (), cur, copy, 5000, fast=False, progress=_interrupt)
    assert not raw.open  # closed, not left to drain the ~3M rows still unread
    pg_conn.rollback()
