"""What each shape of key summary costs the servers (issue 18, target 3): the engine's grouped
summary against the alternatives, one statement at a time, on a table already generated.

MariaDB: every shape below is run in interleaved rounds on the same connection; each reports
its wall time and the CPU of the server thread serving the connection (read from
/proc/<mariadbd>/task, so only for a server on this machine; the thread is found by a
`BENCHMARK()` it alone runs). Thread CPU is what the shape costs the server, whatever else
the shared machine does (not InnoDB's background read-ahead, which serves the primary-key
shapes' page reads: read their wall time too); wall time is what a run waits.

Every shape must agree with the others on what it summarises (the same row count; the range
reads the same buckets as the grouped scan), or the exit code is 1.

PostgreSQL (with `--pg-table`): the engine's summary and the 64-key bitmap on a table with an
integer `id`, the backend's CPU read the same way.

`python -m benchmarks.delete_summaries --mysql-db DB [--table T] [--rounds 3]
[--pg-db DB --pg-table T]` (the MariaDB table defaults to the generated `bench_orders`; any
table with a dense integer key `id` will do)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import dataset
from benchmarks.servers import BenchServers
from sync_assets.mysql import deletes

TICK = os.sysconf("SC_CLK_TCK")
PER_STATEMENT = 500  # bucket range reads joined by UNION ALL in one statement


def _cpu(stat_path: str) -> float:
    """User + system CPU seconds of one task (fields 14 and 15 of its stat line)."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:  # the process ended meanwhile
        return ""


def _tasks(pid: int) -> dict[str, float]:
    out = {}
    for path in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            out[path] = _cpu(path)
        except OSError:  # a thread ended meanwhile
            continue
    return out


def mariadb_thread(cur: Any) -> str | None:
    """/proc stat path of the MariaDB thread serving `cur`'s connection (the one that ran a
    `BENCHMARK()` meanwhile, among every local server's threads), or None."""
    pids = [
        int(Path(comm).parent.name)
        for comm in glob.glob("/proc/[0-9]*/comm")
        if _read(comm) in ("mariadbd", "mysqld")
    ]
    before = {k: v for pid in pids for k, v in _tasks(pid).items()}
    cur.execute("SELECT BENCHMARK(30000000, 1 + 1)")
    cur.fetchall()
    after = {k: v for pid in pids for k, v in _tasks(pid).items()}
    busiest = max(after, key=lambda k: after[k] - before.get(k, 0.0), default=None)
    return busiest if busiest and after[busiest] - before.get(busiest, 0.0) > 0.05 else None


def mysql_shapes(table: str, low: int, high: int) -> dict[str, list[str]]:
    """Statements per shape, for keys low..high of `table` (column `id`, dense)."""
    b = deletes.Buckets(low >> 9 << 9, 9, high)
    h = deletes._hash_sql(f"(id & {b.mask})", "^")
    last = (high - b.base) >> b.shift
    t = f"`{table}`"

    def union(aggregates: str) -> list[str]:
        reads = [
            f"SELECT {n}, {aggregates} FROM {t} FORCE INDEX (PRIMARY)"
            f" WHERE id BETWEEN {b.bounds(n, n)[0]} AND {b.bounds(n, n)[1]}"
            for n in range(last + 1)
        ]
        return [
            " UNION ALL ".join(reads[i : i + PER_STATEMENT])
            for i in range(0, len(reads), PER_STATEMENT)
        ]

    base64 = low >> 6 << 6
    return {
        "count": [f"SELECT COUNT(*) FROM {t}"],
        "count_primary": [f"SELECT COUNT(*) FROM {t} FORCE INDEX (PRIMARY)"],
        "count_xor_key": [f"SELECT COUNT(*), BIT_XOR(id) FROM {t}"],
        "count_xor_hash": [f"SELECT COUNT(*), BIT_XOR({h}) FROM {t}"],
        "summary_grouped": [
            f"SELECT {deletes.mysql_bucket_sql('id', b)} AS b, COUNT(*), BIT_XOR({h}) FROM {t}"
            " GROUP BY b ORDER BY NULL"
        ],
        "ranges_union": union(f"COUNT(*), BIT_XOR({h})"),
        "ranges_union_count": union("COUNT(*)"),
        "bitmap64_grouped": [
            f"SELECT (id - {base64}) >> 6 AS b, BIT_OR(1 << (id & 63)) FROM {t}"
            " GROUP BY b ORDER BY NULL"
        ],
    }


def pg_shapes(table: str) -> dict[str, str]:
    h = deletes._hash_sql("(id::bigint & 511)", "#")
    return {
        "count": f"SELECT count(*) FROM {table}",
        "summary_grouped": f"SELECT id::bigint >> 9, count(*), bit_xor({h}) FROM {table}"
        " GROUP BY 1",
        "bitmap64_grouped": f"SELECT id >> 6, bit_or(1::bigint << (id & 63)) FROM {table}"
        " GROUP BY 1",
    }


def run_mysql(
    servers: BenchServers, db: str, rounds: int, table: str = dataset.TABLE
) -> dict[str, Any]:
    """Medians per shape, and whether the shapes agree on what they summarise."""
    with servers.mysql_connect(db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT MIN(id), MAX(id) FROM `{table}`")
        low, high = cur.fetchone()
        shapes = mysql_shapes(table, int(low), int(high))
        thread = mariadb_thread(cur)
        runs: dict[str, list[tuple[float, float]]] = {s: [] for s in shapes}
        results: dict[str, list[tuple[int, ...]]] = {}
        for _ in range(rounds):
            for name, statements in shapes.items():
                cpu0, t0 = _cpu(thread) if thread else 0.0, time.monotonic()
                results[name] = []
                for s in statements:
                    cur.execute(s)
                    results[name] += [tuple(int(v) for v in row) for row in cur.fetchall()]
                wall = time.monotonic() - t0
                runs[name].append((wall, _cpu(thread) - cpu0 if thread else float("nan")))
                print(f"mariadb {name}: {wall:.2f}s, thread CPU {runs[name][-1][1]:.2f}s",
                      file=sys.stderr, flush=True)  # fmt: skip
    return {"shapes": _medians(runs), "agree": agreement(results)}


def agreement(results: dict[str, list[tuple[int, ...]]]) -> dict[str, bool]:
    """The shapes count the same rows, and the range reads give the grouped summary's
    buckets (empty ranges left out)."""
    n = results["count"][0][0]
    bitmap_keys = sum(bin(bits).count("1") for _, bits in results["bitmap64_grouped"])
    grouped = {r[0]: r[1:] for r in results["summary_grouped"]}
    ranged = {r[0]: r[1:] for r in results["ranges_union"] if r[1] > 0}
    counted = {r[0]: r[1] for r in results["ranges_union_count"] if r[1] > 0}
    return {
        "counts": n
        == results["count_primary"][0][0]
        == results["count_xor_key"][0][0]
        == results["count_xor_hash"][0][0]
        == sum(c for c, _ in grouped.values())
        == bitmap_keys,
        "ranges_equal_grouped": ranged == grouped
        and counted == {b: c for b, (c, _) in grouped.items()},
    }


def run_pg(servers: BenchServers, db: str, table: str, rounds: int) -> dict[str, dict[str, float]]:
    with servers.pg_connect(db) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("SET max_parallel_workers_per_gather = 0")
        runs: dict[str, list[tuple[float, float]]] = {}
        for work_mem in ("4MB", "64MB"):
            conn.execute(f"SET work_mem = '{work_mem}'")
            for _ in range(rounds):
                for name, statement in pg_shapes(table).items():
                    cpu0, t0 = _cpu(f"/proc/{pid}/stat"), time.monotonic()
                    conn.execute(statement).fetchall()
                    key = f"{name} (work_mem {work_mem})"
                    cpu = _cpu(f"/proc/{pid}/stat") - cpu0
                    runs.setdefault(key, []).append((time.monotonic() - t0, cpu))
    return _medians(runs)


def _medians(runs: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "wall_s": round(statistics.median(w for w, _ in r), 3),
            "cpu_s": round(statistics.median(c for _, c in r), 3),
        }
        for name, r in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delete_summaries")
    parser.add_argument("--mysql-db", required=True, help="database holding the generated table")
    parser.add_argument("--table", default=dataset.TABLE, help="a table with an integer key id")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-db", help="PostgreSQL database of --pg-table")
    parser.add_argument("--pg-table", help="a PostgreSQL table with an integer column id")
    args = parser.parse_args(argv)
    servers = BenchServers.from_env()
    try:
        out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
        out["mariadb"] = run_mysql(servers, args.mysql_db, args.rounds, args.table)
        if args.pg_db and args.pg_table:
            out["postgresql"] = run_pg(servers, args.pg_db, args.pg_table, args.rounds)
        out["load_after"] = os.getloadavg()[0]
        print(json.dumps(out, indent=1))
    finally:
        servers.stop()
    return 0 if all(out["mariadb"]["agree"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
