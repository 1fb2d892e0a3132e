"""A table holding every type and edge value of the mapping round-trips exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pymysql
import pytest

from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

EDGE_TABLE = """
CREATE TABLE edge (
  id INT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
  i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED,
  i64 BIGINT, u64 BIGINT UNSIGNED,
  flag TINYINT(1), notflag TINYINT(1),
  b1 BIT(1), b12 BIT(12), b64 BIT(64),
  d DECIMAL(65,30), d2 DECIMAL(10,2),
  f FLOAT, g DOUBLE,
  day DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), yr YEAR,
  latin VARCHAR(50) CHARACTER SET latin1, utf TEXT CHARACTER SET utf8mb4,
  fixed CHAR(5), blank VARCHAR(10),
  bin BINARY(4), vbin VARBINARY(20), blb BLOB,
  en ENUM('small', 'big', 'x y'), st SET('a', 'b', 'c d'),
  js JSON, geo GEOMETRY
) CHARACTER SET utf8mb4
"""

ROWS = [
    # every column NULL (except the key)
    "INSERT INTO edge (id) VALUES (1)",
    # minimum / lower edges
    """INSERT INTO edge VALUES (2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
       -9223372036854775808, 0, 0, 0, b'0', b'000000000000', b'0',
       '-99999999999999999999999999999999999.999999999999999999999999999999', -0.01,
       -3.4028235e38, -1.7976931348623157e308,
       '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000001',
       '1970-01-01 00:00:01.000', '-838:59:59.000000', 1901,
       '', '', '', '', x'00000000', x'', x'', '', '', '[]', ST_GeomFromText('POINT(0 0)'))""",
    # maximum / upper edges, odd text
    """INSERT INTO edge VALUES (3, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647,
       4294967295, 9223372036854775807, 18446744073709551615, 1, 2, b'1', b'111111111111',
       b'1111111111111111111111111111111111111111111111111111111111111111',
       '99999999999999999999999999999999999.999999999999999999999999999999', 12345678.99,
       0.1, 0.30000000000000004,
       '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999',
       '2038-01-19 03:14:07.999', '838:59:59.999999', 2155,
       'café ÿ', 'emoji 😀 𝄞 中文 \\\\N tab\\there\\nnew\\rcr \\\\ back \\\\x00 end',
       'ab', 'x', x'DEADBEEF', x'000102030405ff', x'5c4e0a0d09',
       'x y', 'a,c d', '{"k": [1, 2.5, "v\\\\u00e9"], "n": null}',
       ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'))""",
    # COPY-syntax collisions, NUL characters, trailing spaces, 24h+ negative times
    """INSERT INTO edge (id, utf, latin, fixed, blank, tm, f, g, en, st, blb)
       VALUES (4, CONCAT('a', CHAR(0), 'b', CHAR(0)), '\\\\N', 'a  ', '  ', '-00:00:00.5',
       16777217, 1e-300, 'big', '', CONCAT('\\\\', CHAR(9), CHAR(10), CHAR(13)))""",
    """INSERT INTO edge (id, utf, blank, tm) VALUES (5, '\\\\N', '\\\\', '100:00:01')""",
]


@pytest.mark.parametrize("fast_reader", [True, False], ids=["bulk_reader", "pymysql_reader"])
def test_every_type_round_trips(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
    fast_reader: bool,
) -> None:
    run_sql(src, "SET SESSION sql_mode = ''", EDGE_TABLE, *ROWS)
    # Zero dates need a permissive sql_mode, as on the legacy servers.
    run_sql(
        src,
        "SET SESSION sql_mode = ''",
        "INSERT INTO edge (id, day, dtm, ts) VALUES"
        " (6, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),"
        " (7, '2020-00-15', '2020-02-00 10:00:00', NULL)",
    )
    report = sync("edge", fast_reader=fast_reader)
    assert report.mode == "full_refresh"
    assert report.row_count == report.source_row_count == 7
    # 3 zero values in row 6, 2 partial-zero dates in row 7, 2 NUL characters in row 4.
    assert report.adjusted_values == 7
    assert_same_table(src, pg_conn, target_schema, "edge")

    types = dict(report.columns)
    assert types["u64"] == "numeric(20,0)" and types["u32"] == "bigint"
    assert types["flag"] == "boolean" and types["notflag"] == "smallint"
    assert types["ts"] == "timestamptz" and types["dtm6"] == "timestamp"
    assert types["tm"] == "interval" and types["st"] == "text[]" and types["js"] == "jsonb"
    assert types["fixed"] == "character(5)" and types["bin"] == "bytea"

    row = pg_conn.execute(
        f"SELECT u64, d, f::float8, g, ts, tm, utf, latin, blank, st, b64, dtm6"
        f" FROM {target_schema}.edge WHERE id = 3"
    ).fetchone()
    assert row[0] == Decimal("18446744073709551615")
    assert row[1] == Decimal("99999999999999999999999999999999999.999999999999999999999999999999")
    assert row[2] == 0.10000000149011612 and row[3] == 0.30000000000000004
    assert row[4] == dt.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=dt.UTC)
    assert row[5] == dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)
    assert row[6] == "emoji 😀 𝄞 中文 \\N tab\there\nnew\rcr \\ back \\x00 end"
    assert row[7] == "café ÿ"
    assert row[9] == ["a", "c d"] and row[10] == "1" * 64
    assert row[11] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)

    nulls = pg_conn.execute(
        f"SELECT utf IS NULL, blank, latin, tm, f, st, blb FROM {target_schema}.edge"
        " WHERE id IN (1, 4) ORDER BY id"
    ).fetchall()
    assert nulls[0][0] is True and nulls[0][1] is None  # NULL stays NULL
    assert nulls[1][1] == "  " and nulls[1][2] == "\\N"  # empty/blank/`\N` text stay text
    assert nulls[1][3] == -dt.timedelta(microseconds=500000)
    assert nulls[1][4] == 16777216.0  # FLOAT's nearest float32, not a 6-digit rendering
    assert nulls[1][5] == [] and bytes(nulls[1][6]) == b"\\\t\n\r"
    zero = pg_conn.execute(f"SELECT day, dtm, ts FROM {target_schema}.edge WHERE id = 6").fetchone()
    assert zero == (None, None, None)
    with pytest.raises(psycopg.errors.CheckViolation), pg_conn.transaction():
        pg_conn.execute(f"UPDATE {target_schema}.edge SET en = 'medium' WHERE id = 1")
