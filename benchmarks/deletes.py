"""Deletes in proportion to the change (issue 18, target 3): the full key stream against the
key-range method, on the same data in the same run.

MariaDB loses `DELETED` rows (the first and last key among them) and `UPDATED` rows change;
then the engine's real entry point (`sync_table`, in this process, no Dagster) syncs the
table with each method in turn. After each run the deleted rows are put back into
PostgreSQL and the stored watermark reset (untimed), so every run meets the same state. The
figure compared is the engine's own `deletes` phase: finding and applying the deletes, in
the read snapshot and the writing transaction. Both methods must delete exactly the deleted
keys, and the table is checked value by value at the end.

Alone, on a table already generated (10M rows take minutes to generate on a shared machine):
`python -m benchmarks.deletes --mysql-db DB --rows N --repeats 3` loads it into a fresh
PostgreSQL database in-process, runs both methods, prints the medians (JSON) and drops the
PostgreSQL database; the MariaDB table keeps the deletes and updates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from benchmarks import dataset
from benchmarks.measure import Measurement
from benchmarks.project import MYSQL_TARGET_SCHEMA
from benchmarks.servers import BenchServers
from sync_assets.core.pg import META_SCHEMA
from sync_assets.mysql import deletes, incremental
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.snapshot import open_read_snapshot
from sync_assets.mysql.state import STATE_TABLE
from sync_assets.mysql.stream import raw_connection
from sync_assets.mysql.sync import SyncReport, sync_table
from sync_assets.resources import MySQLResource, PostgresResource

DELETED = 100
UPDATED = 300
METHODS = {"keys": "deletes: full key stream", "auto": "deletes: key ranges"}
GROUPED_COUNT_LABEL = "floor: MariaDB COUNT(*) per bucket"
TARGET = dataset.TABLE.lower()


def resources(servers: BenchServers, mysql_db: str, pg_db: str) -> tuple[Any, Any]:
    my, pg = servers.mysql, servers.pg
    return (
        MySQLResource(host=my.host, port=str(my.port), database=mysql_db, user=my.user,
                      password=my.password),
        PostgresResource(host=pg.host, port=str(pg.port), database=pg_db, user=pg.user,
                         password=pg.password),
    )  # fmt: skip


def chosen_keys(rows: int) -> tuple[list[int], list[int]]:
    """`DELETED` keys to delete (the first, the last, the others spread pseudo-randomly) and
    `UPDATED` other keys to update."""
    step = max((rows - 2) // (DELETED - 2), 1)
    inner = {2 + i * step + (i * 7919) % step for i in range(DELETED - 2)}
    gone = sorted({1, rows} | {k for k in inner if 1 < k < rows})
    kept = set(gone)
    updated = [k for k in range(5, rows, max(rows // UPDATED, 1)) if k not in kept][:UPDATED]
    return gone, updated


@dataclass
class DeleteBench:
    servers: BenchServers
    mysql_db: str
    pg_db: str
    schema: str
    log: Callable[[str], None]
    grouped_counts: list[GroupedCount] = field(default_factory=list)  # the floor, per round

    def options(self) -> TableOptions:
        return TableOptions(name=dataset.TABLE, max_delete_fraction=0.5)

    def sync(self, method: str) -> SyncReport:
        mysql, postgres = resources(self.servers, self.mysql_db, self.pg_db)
        saved = incremental.DELETE_METHOD
        incremental.DELETE_METHOD = method
        try:
            return sync_table(mysql, postgres, self.options(), target_schema=self.schema)
        finally:
            incremental.DELETE_METHOD = saved

    def change(self, gone: list[int], updated: list[int]) -> None:
        with self.servers.mysql_connect(self.mysql_db) as conn, conn.cursor() as cur:
            cur.execute(
                f"UPDATE `{dataset.TABLE}` SET `quantity` = `quantity` + 1,"
                f" `{dataset.UPDATE_COLUMN}` = CURRENT_TIMESTAMP"
                f" WHERE `id` IN ({', '.join(map(str, updated))})"
            )
            keys = ", ".join(map(str, gone))
            cur.execute(f"DELETE FROM `{dataset.TABLE}` WHERE `id` IN ({keys})")

    def save(self, conn: psycopg.Connection, gone: list[int]) -> str | None:
        """Keep the rows about to be deleted and the watermark, to restore them after a run."""
        conn.execute(f"DROP TABLE IF EXISTS {self.schema}._bench_gone")
        conn.execute(
            f"CREATE TABLE {self.schema}._bench_gone AS SELECT * FROM {self.schema}.{TARGET}"
            " WHERE id = ANY(%s)",
            (gone,),
        )
        return self.watermark(conn)

    def watermark(self, conn: psycopg.Connection) -> str | None:
        row = conn.execute(
            f"SELECT watermark FROM {META_SCHEMA}.{STATE_TABLE}"
            " WHERE target_schema = %s AND target_table = %s",
            (self.schema, TARGET),
        ).fetchone()
        return row[0] if row else None

    def restore(self, conn: psycopg.Connection, watermark: str | None) -> None:
        with conn.transaction():
            conn.execute(
                f"INSERT INTO {self.schema}.{TARGET} SELECT * FROM {self.schema}._bench_gone"
                " ON CONFLICT DO NOTHING"
            )
            conn.execute(
                f"UPDATE {META_SCHEMA}.{STATE_TABLE} SET watermark = %s"
                " WHERE target_schema = %s AND target_table = %s",
                (watermark, self.schema, TARGET),
            )

    def left(self, conn: psycopg.Connection, gone: list[int]) -> int:
        row = conn.execute(
            f"SELECT count(*) FROM {self.schema}.{TARGET} WHERE id = ANY(%s)", (gone,)
        ).fetchone()
        return int(row[0]) if row else -1

    def run(self, rows: int, repeats: int) -> dict[str, list[SyncReport]]:
        """Change MariaDB, then sync with each method `repeats` times (alternating order)."""
        gone, updated = chosen_keys(rows)
        results: dict[str, list[SyncReport]] = {m: [] for m in METHODS}
        self.grouped_counts = []
        with self.servers.pg_connect(self.pg_db) as conn:
            watermark = self.save(conn, gone)
            copy = self.extent(conn)
            self.change(gone, updated)
            for i in range(repeats):
                order = list(METHODS) if i % 2 == 0 else list(reversed(METHODS))
                for method in order:
                    conn.execute("CHECKPOINT")
                    report = self.sync(method)
                    results[method].append(report)
                    self.log(
                        f"{METHODS[method]}: deletes phase {report.phase_seconds.get('deletes')}s,"
                        f" {report.rows_deleted} deleted (round {i + 1})"
                    )
                    if self.left(conn, gone) != 0 or report.rows_deleted != len(gone):
                        raise RuntimeError(f"{method}: deleted {report.rows_deleted} rows")
                    if not (i == repeats - 1 and method == order[-1]):
                        self.restore(conn, watermark)
                self.grouped_counts.append(self.grouped_count(copy[2] - len(gone), copy))
            conn.execute(f"DROP TABLE {self.schema}._bench_gone")
        return results

    def extent(self, conn: psycopg.Connection) -> tuple[int, int, int]:
        """Lowest key, highest key and row count of the copy: what every sync meets (the
        deleted rows are put back between runs), so what the engine sizes its buckets by."""
        row = conn.execute(
            f"SELECT min(id), max(id), count(*) FROM {self.schema}.{TARGET}"
        ).fetchone()
        if row is None or row[0] is None:
            raise RuntimeError("the copy is empty: no buckets to summarise")
        return int(row[0]), int(row[1]), int(row[2])

    def grouped_count(self, source_rows: int, copy: tuple[int, int, int]) -> GroupedCount:
        """The cheapest statement measured that tells key ranges apart on MariaDB (its
        per-range reads of the clustered index cost more: benchmarks/delete_summaries.py): one
        `GROUP BY` scan over the buckets the engine chooses (bounds over both sides, the
        larger row count), counting only (the engine's summary adds a checksum per bucket),
        read through the engine's own connection (`raw_connection`) in its read snapshot."""
        mysql, _ = resources(self.servers, self.mysql_db, self.pg_db)
        with closing(raw_connection(mysql)) as conn, conn.cursor() as cur:
            open_read_snapshot(conn)
            cur.execute(f"SELECT MIN(`id`), MAX(`id`) FROM `{dataset.TABLE}`")
            (low, high), *_ = cur.fetchall()  # the whole result: the cursor is unbuffered
            if low is None:
                raise RuntimeError("the source table is empty: no buckets to summarise")
            b = deletes.choose_buckets(
                min(int(low), copy[0]), max(int(high), copy[1]), max(source_rows, copy[2])
            )
            if b is None:
                raise RuntimeError(f"keys {low}..{high} too sparse for buckets")
            started = time.monotonic()
            cur.execute(
                f"SELECT {deletes.mysql_bucket_sql('`id`', b)} AS b, COUNT(*)"
                f" FROM `{dataset.TABLE}` GROUP BY b ORDER BY NULL"
            )
            counts = [int(n) for _, n in cur.fetchall()]
            took = time.monotonic() - started
            cur.execute("COMMIT")
        if sum(counts) != source_rows:
            raise RuntimeError(f"grouped count: {sum(counts)} rows, the source has {source_rows}")
        return GroupedCount(took, len(counts), 1 << b.shift)


@dataclass(frozen=True)
class GroupedCount:
    seconds: float
    buckets: int  # non-empty buckets, as MariaDB returned them
    bucket_keys: int  # key values a bucket spans


def floor_measurement(floor: GroupedCount) -> Measurement:
    """The grouped count timed in this process (wall only), with the buckets it counted."""
    nan = float("nan")
    extra = {"buckets": floor.buckets, "bucket_keys": floor.bucket_keys}
    return Measurement(floor.seconds, nan, 0, nan, None, 0, load_before=_load(), extra=extra)


def as_measurement(report: SyncReport) -> Measurement:
    """The deletes phase as a measurement (wall only: it runs inside the engine's process)."""
    phases = report.phase_seconds
    return Measurement(
        wall=phases.get("deletes", float("nan")),
        cpu=float("nan"),
        peak_rss=0,
        server_cpu=float("nan"),
        first_row=None,
        returncode=0,
        load_before=_load(),
        extra={
            "sync_seconds": report.duration_seconds,
            "source_count_seconds": phases.get("source_count"),
            "ranges_mysql_seconds": phases.get("delete_ranges_mysql"),
            "ranges_pg_seconds": phases.get("delete_ranges_pg"),
            "rows_deleted": report.rows_deleted,
            "rows_updated": report.rows_updated,
            "notes": report.notes,
        },
    )


def _load() -> float:
    return os.getloadavg()[0]


def timed_full_load(servers: BenchServers, mysql_db: str, pg_db: str, schema: str) -> float:
    """A first load in-process (when the run measured no full sync to start from)."""
    mysql, postgres = resources(servers, mysql_db, pg_db)
    started = time.monotonic()
    sync_table(mysql, postgres, TableOptions(name=dataset.TABLE), target_schema=schema)
    return time.monotonic() - started


def medians(results: dict[str, list[SyncReport]]) -> dict[str, dict[str, float | None]]:
    """Per method, the median of each timed phase over the runs."""
    out: dict[str, dict[str, float | None]] = {}
    for method, reports in results.items():
        phases = {p for r in reports for p in r.phase_seconds}
        out[method] = {
            p: statistics.median(r.phase_seconds[p] for r in reports if p in r.phase_seconds)
            for p in sorted(phases)
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deletes")
    parser.add_argument("--mysql-db", required=True, help="database holding the generated table")
    parser.add_argument("--rows", type=int, required=True, help="rows the table was generated with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    servers = BenchServers.from_env()
    pg_db = servers.create_pg_database("deletes")
    try:
        took = timed_full_load(servers, args.mysql_db, pg_db, MYSQL_TARGET_SCHEMA)
        print(f"loaded in-process in {took:.1f}s", file=sys.stderr, flush=True)
        bench = DeleteBench(servers, args.mysql_db, pg_db, MYSQL_TARGET_SCHEMA,
                            lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
        results = bench.run(args.rows, args.repeats)
        figures = medians(results)
        keys, ranges = figures["keys"].get("deletes"), figures["auto"].get("deletes")
        grouped = statistics.median(g.seconds for g in bench.grouped_counts)
        print(json.dumps({"medians": figures, "ranges_over_keys": (ranges or 0) / (keys or 1),
                          "grouped_count_seconds": grouped,
                          "grouped_count_over_keys": grouped / (keys or 1),
                          "grouped_count_buckets": asdict(bench.grouped_counts[-1]),
                          "notes": results["auto"][-1].notes}, indent=1))  # fmt: skip
    finally:
        servers.drop_pg_database(pg_db)
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
