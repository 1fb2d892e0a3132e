"""Deletes found by key ranges (`sync_assets.mysql.deletes`), on the real servers: exact
against the full key stream on the same data, adversarial key sets, concurrent inserts,
fallback for composite, text and sparse keys, and the delete guard."""

from __future__ import annotations

import itertools
import logging
import random
import secrets
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pymysql
import pytest
from psycopg import sql

from sync_assets.mysql import deletes, incremental
from sync_assets.mysql.catalog import read_source_table
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.job import Job
from sync_assets.mysql.state import staging_schema
from sync_assets.mysql.sync import DeleteGuardError, SyncReport, sync_table
from sync_assets.mysql.types import map_column
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.mysql.conftest import SyncFn, assert_same_table, run_sql

OLD = "2024-01-01 10:00:00"
TABLE = """CREATE TABLE t (
  id {key} PRIMARY KEY, v VARCHAR(40),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (updated_at))"""


def _ranges_used(report: SyncReport) -> bool:
    return any(n.startswith("deletes found by key ranges") for n in report.notes)


def _seed(src: pymysql.Connection, keys: list[int], key_type: str = "INT") -> None:
    run_sql(src, TABLE.format(key=key_type))
    for i in range(0, len(keys), 5000):
        values = ", ".join(f"({k}, 'v{k}', '{OLD}')" for k in keys[i : i + 5000])
        run_sql(src, f"INSERT INTO t VALUES {values}")


def _delete(src: pymysql.Connection, keys: list[int]) -> None:
    run_sql(src, f"DELETE FROM t WHERE id IN ({', '.join(map(str, keys))})")


def _unseen(src: pymysql.Connection, keys: list[int]) -> None:
    """Rows the incremental read cannot see: stamped far below the watermark."""
    values = ", ".join(f"({k}, 'unseen', '2000-01-01')" for k in keys)
    run_sql(src, f"INSERT INTO t VALUES {values}")


@pytest.fixture
def twin_schema(pg_conn: psycopg.Connection) -> Iterator[str]:
    """A second target schema: the same source synced with the full key stream."""
    name = f"legacy_{secrets.token_hex(4)}"
    yield name
    for schema in (name, staging_schema(name)):
        pg_conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _pg_keys(pg: psycopg.Connection, schema: str) -> set[int]:
    return {int(r[0]) for r in pg.execute(f"SELECT id FROM {schema}.t").fetchall()}


@pytest.fixture
def streamed_sync(
    monkeypatch: pytest.MonkeyPatch,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    twin_schema: str,
) -> SyncFn:
    """`streamed_sync(**options)`: table t synced into `twin_schema` by the full key stream."""

    def run(**options: Any) -> SyncReport:
        with monkeypatch.context() as patch:
            patch.setattr(incremental, "DELETE_METHOD", "keys")
            return sync_table(
                src_resource, pg_resource, TableOptions(name="t", **options),
                target_schema=twin_schema,
            )  # fmt: skip

    return run


# --- the checksum -----------------------------------------------------------------------------


def test_no_two_small_key_sets_of_a_bucket_share_a_checksum() -> None:
    """Exhaustive over a 512-value bucket: the BIT_XOR of key_hash tells apart every two
    different sets of up to 3 keys (equal counts: the count itself tells the rest apart)."""
    width = 512
    h = np.array([deletes.key_hash(e) for e in range(width)], dtype=np.uint64)
    assert int(h.max()) < 2**63 and len(set(h.tolist())) == width
    i, j = np.triu_indices(width, 1)
    pairs = h[i] ^ h[j]
    assert len(np.unique(pairs)) == len(pairs)
    triples = np.array(list(itertools.combinations(range(width), 3)), dtype=np.uint16)
    xor3 = np.sort(h[triples[:, 0]] ^ h[triples[:, 1]] ^ h[triples[:, 2]])
    assert not (xor3[1:] == xor3[:-1]).any()
    # The largest bucket's offsets keep every product below 2^63 (no overflow in MySQL).
    assert deletes.key_hash((1 << deletes.MAX_SHIFT) - 1) < 2**63


def test_both_servers_compute_the_reference_summary(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    """Signed and unsigned BIGINT keys at the ends of their ranges: MariaDB's and
    PostgreSQL's summaries equal the Python reference, bucket by bucket."""
    keys = [-(2**62), -(2**62) + 1, -5, 0, 7, 2**61, 2**61 + 513]
    run_sql(src, TABLE.format(key="BIGINT"))
    run_sql(src, "INSERT INTO t (id, v) VALUES " + ", ".join(f"({k}, 'x')" for k in keys))
    sync("t")
    b = deletes.Buckets(min(keys) >> deletes.MAX_SHIFT << deletes.MAX_SHIFT, deletes.MAX_SHIFT,
                        max(keys))  # fmt: skip
    expected: dict[int, tuple[int, int]] = {}
    for k in keys:
        d = k - b.base
        n, x = expected.get(d >> b.shift, (0, 0))
        expected[d >> b.shift] = (n + 1, x ^ deletes.key_hash(k & b.mask))
    job = _job_for(target_schema, src)
    key = job["key"]
    with src.cursor() as cur:
        cur.execute(deletes.mysql_summary_sql(job["job"], key, b))
        mine = {int(r[0]): (int(r[1]), int(r[2])) for r in cur.fetchall()}
    theirs = {
        int(r[0]): (int(r[1]), int(r[2]))
        for r in pg_conn.execute(deletes.pg_summary_sql(job["job"], key, b)).fetchall()
    }
    assert mine == theirs == expected


def _job_for(schema: str, src: pymysql.Connection) -> dict[str, Any]:
    """A Job for table t of the test database (for calling the summary builders)."""
    with src.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        database = cur.fetchone()[0]
    source = read_source_table(src, database, "t")
    names = {c.name: c.name.lower() for c in source.columns}
    job = Job(
        source, database, names, TableOptions(name="t"), schema, "t", None,
        SyncReport("t", schema, "t"), logging.getLogger(__name__),
    )  # fmt: skip
    key = map_column(source.columns[0], "id")
    return {"job": job, "key": key}


# --- exactness on the real servers -------------------------------------------------------------


def test_random_deletes_equal_the_full_key_stream(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    streamed_sync: SyncFn,
    target_schema: str,
    twin_schema: str,
) -> None:
    """First and last key, a whole range, adjacent keys and random ones, plus updates and
    inserts: both methods delete the same keys, and the copy equals MySQL."""
    rng = random.Random(18)
    keys = list(range(1, 20_001))
    _seed(src, keys)
    sync("t")
    streamed_sync()
    gone = {1, 20_000, 5_000, 5_001, 5_002} | set(range(7_000, 9_100))
    gone |= set(rng.sample(keys, 60))
    _delete(src, sorted(gone))
    run_sql(
        src,
        "UPDATE t SET v = 'changed' WHERE id % 97 = 0",
        "INSERT INTO t (id, v) VALUES (20001, 'new'), (30000, 'far')",
    )
    ranged, streamed = sync("t", max_delete_fraction=0.9), streamed_sync(max_delete_fraction=0.9)
    assert _ranges_used(ranged) and not _ranges_used(streamed)
    assert ranged.rows_deleted == streamed.rows_deleted == len(gone)
    assert _pg_keys(pg_conn, target_schema) == _pg_keys(pg_conn, twin_schema)
    assert ranged.row_count == ranged.source_row_count == 20_002 - len(gone)
    assert_same_table(src, pg_conn, target_schema, "t")


@pytest.mark.parametrize(
    ("deleted", "unseen"),
    [
        ([10, 13], [11, 12]),  # equal count, sum and XOR of the keys themselves
        ([0, 4, 7, 11], [1, 2, 9, 10]),  # equal count and sums of key, square and cube
        ([600], [601]),  # one for one, adjacent
    ],
)
def test_deletes_hidden_behind_rows_the_increment_missed_are_found(
    deleted: list[int],
    unseen: list[int],
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    streamed_sync: SyncFn,
    target_schema: str,
    twin_schema: str,
) -> None:
    """Key sets that defeat count + sum checksums: MySQL lost `deleted` and holds `unseen`
    rows PostgreSQL never got (stamped below the watermark), as many, in the same bucket."""
    base = 1_000
    present = [k for k in range(base, base + 2_000) if k - base not in unseen]
    _seed(src, present)
    sync("t")
    streamed_sync()
    _delete(src, [base + k for k in deleted])
    _unseen(src, [base + k for k in unseen])
    ranged, streamed = sync("t", deletes="always"), streamed_sync(deletes="always")
    assert _ranges_used(ranged)
    assert ranged.rows_deleted == streamed.rows_deleted == len(deleted)
    assert _pg_keys(pg_conn, target_schema) == _pg_keys(pg_conn, twin_schema)
    assert not _pg_keys(pg_conn, target_schema) & {base + k for k in deleted}


class _WritesDuringTheRun(logging.LoggerAdapter):
    """When the engine announces its plan (the read snapshot is open), another session
    commits `statement`: rows beyond the watermark, and an update of a kept row."""

    def __init__(self, src: pymysql.Connection, statement: str) -> None:
        super().__init__(logging.getLogger(__name__), {})
        self.src, self.statement = src, statement

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if "watermark" in str(msg) and self.statement:
            run_sql(self.src, self.statement)
            self.statement = ""
        super().info(msg, *args, **kwargs)


def test_concurrent_writes_beyond_the_snapshot_wait_for_the_next_run(
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    _seed(src, list(range(1, 5_001)))
    sync("t")
    _delete(src, [10, 2_000, 4_999])
    log = _WritesDuringTheRun(
        src,
        "INSERT INTO t (id, v) VALUES (4998, 'x'), (6000, 'beyond'), (6001, 'beyond')"
        " ON DUPLICATE KEY UPDATE v = 'x'",
    )
    options = TableOptions(name="t")
    during = sync_table(src_resource, pg_resource, options, log=log, target_schema=target_schema)
    assert not log.statement and _ranges_used(during)
    assert during.rows_deleted == 3 and during.rows_inserted == 0
    assert during.row_count == during.source_row_count == 4_997
    _delete(src, [3_000])
    after = sync("t")
    assert (after.rows_inserted, after.rows_updated, after.rows_deleted) == (2, 1, 1)
    assert_same_table(src, pg_conn, target_schema, "t")


@pytest.mark.parametrize("key_type", ["BIGINT", "BIGINT UNSIGNED", "SMALLINT", "INT UNSIGNED"])
def test_every_integer_key_type_at_its_ends(
    key_type: str,
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    top = {
        "BIGINT": 2**63 - 1,
        "BIGINT UNSIGNED": 2**64 - 1,
        "SMALLINT": 2**15 - 1,
        "INT UNSIGNED": 2**32 - 1,
    }[key_type]
    keys = list(range(top - 3_000, top + 1))
    _seed(src, keys, key_type)
    sync("t")
    _delete(src, [top, top - 1, top - 3_000, top - 1_500])
    report = sync("t")
    assert _ranges_used(report) and report.rows_deleted == 4
    assert_same_table(src, pg_conn, target_schema, "t")


# --- fallback and guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("create", "rows", "gone"),
    [
        (  # MySQL compares 'a' = 'A' = 'a ' here; PostgreSQL compares bytes
            "CREATE TABLE t (id VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY,"
            " updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE"
            " CURRENT_TIMESTAMP)",
            "('a', '{old}'), ('B', '{old}'), ('c', '{old}'), ('Ü', '{old}')",
            "id IN ('b', 'C')",
        ),
        (
            "CREATE TABLE t (a INT, b INT, updated_at TIMESTAMP NOT NULL DEFAULT"
            " CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (a, b))",
            "(1, 1, '{old}'), (1, 2, '{old}'), (2, 1, '{old}'), (2, 2, '{old}')",
            "(a, b) IN ((1, 2), (2, 1))",
        ),
        (  # keys far apart: buckets would hold one key each
            TABLE.format(key="BIGINT"),
            "(1, 'x', '{old}'), (100000000000, 'x', '{old}'), (200000000000, 'x', '{old}'),"
            " (300000000000, 'x', '{old}')",
            "id IN (1, 200000000000)",
        ),
    ],
)
def test_keys_the_ranges_cannot_summarise_are_streamed(
    create: str,
    rows: str,
    gone: str,
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    target_schema: str,
) -> None:
    run_sql(src, create, f"INSERT INTO t VALUES {rows.format(old=OLD)}")
    sync("t")
    run_sql(src, f"DELETE FROM t WHERE {gone}")
    report = sync("t", max_delete_fraction=0.6)
    assert report.rows_deleted == 2 and not _ranges_used(report)
    assert report.row_count == report.source_row_count == 2
    assert_same_table(src, pg_conn, target_schema, "t")


def test_the_delete_guard_still_fires(
    src: pymysql.Connection, pg_conn: psycopg.Connection, sync: SyncFn, target_schema: str
) -> None:
    _seed(src, list(range(1, 3_001)))
    sync("t")
    run_sql(src, "DELETE FROM t WHERE id > 1000 AND id % 10 <> 0")
    with pytest.raises(DeleteGuardError, match="would delete 1800 of 3000 rows"):
        sync("t")
    assert pg_conn.execute(f"SELECT count(*) FROM {target_schema}.t").fetchone() == (3000,)
    run_sql(src, "DELETE FROM t")
    with pytest.raises(DeleteGuardError, match="returned no rows"):
        sync("t")
    emptied = sync("t", max_delete_fraction=1.0)
    assert emptied.rows_deleted == 3000 and emptied.row_count == 0


def test_negative_keys_and_empty_buckets_equal_the_full_key_stream(
    src: pymysql.Connection,
    pg_conn: psycopg.Connection,
    sync: SyncFn,
    streamed_sync: SyncFn,
    target_schema: str,
    twin_schema: str,
) -> None:
    """Keys on both sides of zero with wide empty stretches between them (buckets MySQL and
    PostgreSQL both lack, and buckets emptied by the deletes): both methods delete the same
    keys, among them a whole negative bucket and the lowest key."""
    keys = [*range(-6_000, -3_000), *range(-40, 40), *range(90_000, 93_000)]
    _seed(src, keys, "BIGINT")
    sync("t")
    streamed_sync()
    gone = [-6_000, -1, 0, 1, 92_999, *range(-4_000, -3_000)]
    _delete(src, gone)
    ranged, streamed = sync("t", deletes="always"), streamed_sync(deletes="always")
    assert _ranges_used(ranged) and not _ranges_used(streamed)
    assert ranged.rows_deleted == streamed.rows_deleted == len(gone)
    assert _pg_keys(pg_conn, target_schema) == _pg_keys(pg_conn, twin_schema)
    assert _pg_keys(pg_conn, target_schema) == set(keys) - set(gone)
    assert_same_table(src, pg_conn, target_schema, "t")
