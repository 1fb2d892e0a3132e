"""Finding the rows MySQL deleted by comparing key ranges instead of streaming every key.

Both servers summarise the primary key by buckets of 2^shift consecutive key values: per
bucket a row count and the BIT_XOR of a hash of the key's position in the bucket (`key_hash`).
MySQL does it in the run's read snapshot, PostgreSQL in the writing transaction after the
upserts, at the same time. Equal buckets hold the same keys (up to a hash collision, below);
a bucket only PostgreSQL has is deleted whole; for a bucket both have but which differs, the
MySQL keys of that bucket are read and compared one by one. So the work that grows with the
table is one aggregate scan per server; keys cross the wire only for the buckets that differ.

Why this checksum. Sums are exact but MariaDB adds them in DECIMAL (slow), and sums of a
key, its square and its cube (no collision below 4 differing keys a side) cost 4x the
count; MD5 of each key costs ~1.3 us a row on MariaDB (10x the count). BIT_XOR of a
multiply-xorshift-multiply hash costs integer operations only, is the same 63-bit value on
both servers (no overflow: each product stays below 2^63), and, checked exhaustively for
512-key buckets, no two different sets of 1, 2 or 3 keys share it (the test suite re-checks
this). A bucket is misjudged equal only when PostgreSQL has keys MySQL lacks *and* MySQL has
as many keys PostgreSQL lacks (rows the incremental read could not see) with the same XOR: a
missed delete, never a wrong one, that the next full refresh or `deletes` run repairs.

Only a single integer primary key is summarised this way. Composite and text keys (MySQL's
collations compare 'a' = 'A ' where PostgreSQL compares bytes) and keys too sparse for
buckets (`MAX_SHIFT`) use the full key stream (`incremental._stream_missing`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.pg import copy_statement, ident
from sync_assets.mysql import upsert_sql
from sync_assets.mysql.job import Job, temp_table
from sync_assets.mysql.naming import mq
from sync_assets.mysql.stream import copy_query
from sync_assets.mysql.types import ColumnMapping, row_expression

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
BUCKET_ROWS = 512  # rows per bucket aimed at: about n/512 summary rows a side
MAX_SHIFT = 20  # a bucket spans at most 2^20 key values (keeps the hash's products < 2^63)
MAX_SPAN = 1 << 62  # key offsets are BIGINT on both servers
RANGES_PER_QUERY = 500  # MySQL key reads of the differing buckets, in statements this long
# key_hash's constants: odd; e * _MUL1 < 2^63 for e < 2^MAX_SHIFT, and (32 bits) * _MUL2 too.
_MUL1 = 0x4F1BBCDCBFB
_MUL2 = 0x5BD1E995
_LOW32 = 0xFFFFFFFF


def key_hash(offset: int) -> int:
    """The per-key hash both servers compute (reference for the tests): multiply, fold the
    high bits down, multiply again."""
    a = offset * _MUL1
    return ((a ^ (a >> 29)) & _LOW32) * _MUL2


def range_key(key_mappings: list[ColumnMapping]) -> ColumnMapping | None:
    """The key column the range method can use (one integer column), else None."""
    if len(key_mappings) != 1:
        return None
    key = key_mappings[0]
    if key.source.data_type not in INTEGER_TYPES or key.pg_type == "boolean":
        return None
    return key


@dataclass(frozen=True)
class Buckets:
    """Bucket b holds the keys base + b*2^shift ... base + (b+1)*2^shift - 1. `base` is a
    multiple of 2^shift, so a key's offset in its bucket is its own low bits (`key & mask`,
    the same in two's complement on both servers), one subtraction less per row."""

    base: int
    shift: int
    top: int  # the highest key on either side: bounds stop there (and inside the key type)

    def bounds(self, first: int, last: int) -> tuple[int, int]:
        """Lowest and highest key of buckets first..last."""
        high = self.base + ((last + 1) << self.shift) - 1
        return self.base + (first << self.shift), min(high, self.top)

    @property
    def mask(self) -> int:
        return (1 << self.shift) - 1


def choose_buckets(low: int, high: int, rows: int) -> Buckets | None:
    """Buckets over keys low..high holding about BUCKET_ROWS of `rows` keys each, or None
    when the keys are too sparse (or too far apart) for buckets to pay."""
    span = high - low + 1
    if span > MAX_SPAN:
        return None
    shift = max(0, math.ceil(math.log2(span * BUCKET_ROWS / max(rows, 1))))
    return Buckets(low >> shift << shift, shift, high) if shift <= MAX_SHIFT else None


# key_hash in SQL: {0} the offset in the bucket, {1} the dialect's XOR operator.
_HASH_SQL = "(((({0} * {m1}) {1} (({0} * {m1}) >> 29)) & {low}) * {m2})"


def _hash_sql(offset: str, xor: str) -> str:
    return _HASH_SQL.format(offset, xor, m1=_MUL1, m2=_MUL2, low=_LOW32)


def mysql_bucket_sql(column: str, b: Buckets) -> str:
    """The bucket number of MySQL's key `column` (an SQL expression, already quoted)."""
    return f"({column} - {int(b.base)}) >> {b.shift}"


def mysql_summary_sql(job: Job, key: ColumnMapping, b: Buckets) -> str:
    """Per bucket: its number, row count and BIT_XOR of key_hash (MySQL's bitwise operators
    work on unsigned 64-bit values; every value here stays below 2^63)."""
    c = mq(key.source.name)
    h = _hash_sql(f"({c} & {b.mask})", "^")
    return (
        f"SELECT {mysql_bucket_sql(c, b)} AS b, COUNT(*), BIT_XOR({h})"
        f" FROM {job.source_sql} GROUP BY b ORDER BY NULL"
    )


def pg_summary_sql(job: Job, key: ColumnMapping, b: Buckets) -> sql.Composed:
    """The same summary of the target table (`#` is PostgreSQL's XOR)."""
    column = ident(key.target)
    if key.pg_type.startswith("numeric"):  # BIGINT UNSIGNED: offsets fit bigint (MAX_SPAN)
        d = sql.SQL("(({} - {}::numeric)::bigint)").format(column, sql.Literal(b.base))
        low = d
    else:
        d = sql.SQL("({}::bigint - {}::bigint)").format(column, sql.Literal(b.base))
        low = sql.SQL("{}::bigint").format(column)
    offset = sql.SQL("({} & {})").format(low, sql.Literal(b.mask))
    h = sql.SQL(_hash_sql("{0}", "#")).format(offset)
    return sql.SQL("SELECT {} >> {}, count(*), bit_xor({}) FROM {} GROUP BY 1").format(
        d, sql.Literal(b.shift), h, job.target_ident
    )


Summary = dict[int, tuple[int, int]]


def _mysql_summary(job: Job, my: pymysql.Connection, key: ColumnMapping, b: Buckets) -> Summary:
    with job.report.timed("delete_ranges_mysql"), my.cursor() as cur:
        cur.execute(mysql_summary_sql(job, key, b))
        return {int(r[0]): (int(r[1]), int(r[2])) for r in cur.fetchall()}


def _pg_summary(job: Job, pg: psycopg.Connection, key: ColumnMapping, b: Buckets) -> Summary:
    with job.report.timed("delete_ranges_pg"):
        rows = pg.execute(pg_summary_sql(job, key, b)).fetchall()
    return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}


def _key_bounds(
    job: Job, pg: psycopg.Connection, my: pymysql.Connection, key: ColumnMapping
) -> tuple[int, int] | None:
    """Lowest and highest key over both sides (index lookups), None when both are empty."""
    with my.cursor() as cur:
        c = mq(key.source.name)
        cur.execute(f"SELECT MIN({c}), MAX({c}) FROM {job.source_sql}")
        mine = cur.fetchone()
    theirs = pg.execute(
        sql.SQL("SELECT min({0}), max({0}) FROM {1}").format(ident(key.target), job.target_ident)
    ).fetchone()
    values = [int(v) for v in (*(mine or ()), *(theirs or ())) if v is not None]
    return (min(values), max(values)) if values else None


@dataclass
class Differences:
    """Buckets whose summaries differ: only in PostgreSQL (all their rows are deletes), or
    on both sides (their MySQL keys must be read)."""

    buckets: Buckets
    pg_only: list[int]
    mixed: list[int]
    compared: int  # buckets compared in all


def compare(mine: Summary, theirs: Summary, b: Buckets) -> Differences:
    """The buckets PostgreSQL holds that differ from MySQL's (MySQL-only buckets hold no
    row to delete)."""
    pg_only = sorted(n for n in theirs if n not in mine)
    mixed = sorted(n for n, v in theirs.items() if n in mine and mine[n] != v)
    return Differences(b, pg_only, mixed, len(mine.keys() | theirs.keys()))


def find_differences(
    job: Job, pg: psycopg.Connection, my: pymysql.Connection, key: ColumnMapping, rows: int
) -> Differences | None:
    """Summarise both sides at once (MySQL in a worker thread); None when the keys are too
    sparse for buckets. The caller must not use `my` meanwhile."""
    with job.report.timed("delete_ranges_bounds"):
        bounds = _key_bounds(job, pg, my, key)
    if bounds is None:
        return Differences(Buckets(0, 0, 0), [], [], 0)
    b = choose_buckets(*bounds, rows)
    if b is None:
        return None
    with ThreadPoolExecutor(1, thread_name_prefix="mysql-ranges") as pool:
        mine = pool.submit(_mysql_summary, job, my, key, b)
        theirs = _pg_summary(job, pg, key, b)
        return compare(mine.result(), theirs, b)


def runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted bucket numbers → (first, last) of each run of consecutive ones."""
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None and prev is not None:
            yield start, prev
        start = prev = n
    if start is not None and prev is not None:
        yield start, prev


def key_ranges(numbers: list[int], b: Buckets) -> list[tuple[int, int]]:
    """The key ranges covered by the buckets `numbers`, adjacent buckets merged."""
    return [b.bounds(first, last) for first, last in runs(numbers)]


def _read_mysql_keys(
    job: Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    key: ColumnMapping,
    ranges: list[tuple[int, int]],
) -> tuple[sql.Identifier, int]:
    """Copy MySQL's keys within `ranges` (primary-key range reads) into a temporary table."""
    keys = temp_table(pg, "_sync_range_keys", [key])
    copy_stmt = copy_statement(keys, [key.target])
    c = mq(key.source.name)
    read = 0
    for i in range(0, len(ranges), RANGES_PER_QUERY):
        part = ranges[i : i + RANGES_PER_QUERY]
        where = " OR ".join(f"{c} BETWEEN {int(lo)} AND {int(hi)}" for lo, hi in part)
        select = f"SELECT {row_expression([key])} FROM {job.source_sql} WHERE {where}"
        with pg.cursor() as cur:
            read += copy_query(
                my, select, (), cur, copy_stmt, job.options.batch_rows * 4, job.options.fast_reader
            ).rows
    pg.execute(sql.SQL("ANALYZE {}").format(keys))
    return keys, read


def _in_ranges(key: ColumnMapping) -> sql.Composed:
    """`JOIN unnest(%s, %s) AS r (lo, hi)` on the target row t's key (parameters: the lows
    and highs of the ranges)."""
    array = sql.SQL(key.pg_type + "[]")
    return sql.SQL(
        "JOIN unnest(%s::{}, %s::{}) AS r (lo, hi) ON t.{} BETWEEN r.lo AND r.hi"
    ).format(array, array, ident(key.target))


def _bounds(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    return [lo for lo, _ in ranges], [hi for _, hi in ranges]


def collect_deletes(
    job: Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    key: ColumnMapping,
    diff: Differences,
) -> sql.Identifier:
    """A temporary table of the target's keys that MySQL's snapshot lacks: every key of the
    PostgreSQL-only buckets, and those of the differing buckets missing from MySQL's keys."""
    gone = temp_table(pg, "_sync_gone", [key])
    insert = sql.SQL("INSERT INTO {} SELECT t.{} FROM {} AS t ").format(
        gone, ident(key.target), job.target_ident
    )
    whole = key_ranges(diff.pg_only, diff.buckets)
    if whole:
        pg.execute(insert + _in_ranges(key), _bounds(whole))
    mixed = key_ranges(diff.mixed, diff.buckets)
    read = 0
    if mixed:
        with job.report.timed("delete_ranges_keys"):
            keys, read = _read_mysql_keys(job, pg, my, key, mixed)
        missing = upsert_sql.missing_from(keys, [key])
        pg.execute(insert + _in_ranges(key) + sql.SQL(" WHERE ") + missing, _bounds(mixed))
    job.report.notes.append(
        f"deletes found by key ranges: {len(diff.pg_only) + len(diff.mixed)} of"
        f" {diff.compared} buckets of {1 << diff.buckets.shift} key values differed;"
        f" {read} MySQL keys read"
    )
    return gone
