"""Many small tables in one run (issue 18, target 4):

    .venv/bin/python -m benchmarks.many_tables --tables 200 --rows 1000

Creates `--tables` tables of `--rows` rows in a throwaway MariaDB database, then runs
`mysql_sync_job` the way an operator's run worker does: `dagster job execute` on a Dagster
instance in PostgreSQL (the project's `dagster.yaml`, its `mysql` pool limit included), with
the jobs' default multiprocess executor. Three runs, each timed from process launch to exit
with the peak RSS of the whole process tree (run process and every step process):

- a one-table run (`MYSQL_TABLES` set to one table, first load into a fresh PostgreSQL
  database): the fixed cost of a run,
- the first load of every table (another fresh database), so that
  per-table overhead = (first load wall - one-table wall) / (tables - 1),
- the same job again with nothing changed.

Every table is then checked value-exact against MariaDB (`benchmarks.verify`). The step
layout follows the production settings (`MYSQL_TABLES_PER_STEP`, `MYSQL_STEP_WORKERS`);
`--tables-per-step` / `--step-workers` set them for the runs. Exit code 1 when a run fails,
a table differs, or the first load misses `--target-seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.dataset import parse_size
from benchmarks.measure import Measurement, PgProbe, run_measured
from benchmarks.scaleout import DAGSTER_BIN, dagster_home, make_tables
from benchmarks.servers import BenchServers
from benchmarks.verify import compare, mysql_fingerprint, pg_fingerprint

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB = "mysql_sync_job"
SCHEMA = "legacy"
TARGET_SECONDS = 60.0
RSS_LIMIT_MB = 250.0


@dataclass
class RunFigures:
    """One timed run of the job."""

    name: str
    tables: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float  # MariaDB (the whole server: other sessions too) + PostgreSQL
    pg_cpu_s: float  # PostgreSQL: the backends of the target and Dagster databases
    peak_rss_mb: float
    load_before: float
    steps: int = 0
    engine_median_s: float = 0.0  # the tables' own sync time (`duration_seconds` metadata)


@dataclass
class Report:
    tables: int
    rows: int
    tables_per_step: str
    step_workers: str
    runs: list[RunFigures] = field(default_factory=list)
    exact_tables: int = 0
    mismatches: list[str] = field(default_factory=list)

    def run(self, name: str) -> RunFigures:
        return next(r for r in self.runs if r.name == name)

    @property
    def per_table_overhead_s(self) -> float:
        first, one = self.run("first load"), self.run("one table")
        return (first.wall_s - one.wall_s) / max(self.tables - 1, 1)

    @property
    def per_table_cpu_s(self) -> float:
        first, one = self.run("first load"), self.run("one table")
        return (first.cpu_s - one.cpu_s) / max(self.tables - 1, 1)

    @property
    def per_table_pg_cpu_s(self) -> float:
        first, one = self.run("first load"), self.run("one table")
        return (first.pg_cpu_s - one.pg_cpu_s) / max(self.tables - 1, 1)


def log(message: str) -> None:
    print(f"[many_tables {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """The Dagster instance (PostgreSQL) and the production variables of the runs."""

    def __init__(self, servers: BenchServers, database: str, tables: list[str], work: Path):
        self.servers, self.database, self.tables, self.work = servers, database, tables, work
        self.dagster_db = servers.create_pg_database("many_dagster")
        self.target_dbs: list[str] = []
        self.measurements: dict[str, Measurement] = {}  # by run name, for `scripts/bench`
        dagster_home(work)

    def env(self, tables: Sequence[str], settings: dict[str, str]) -> dict[str, str]:
        pg, my = self.servers.pg, self.servers.mysql
        return {
            **os.environ, **settings,
            "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_USER": pg.user,
            "POSTGRES_PASSWORD": pg.password, "POSTGRES_DB": self.target_dbs[-1],
            "DAGSTER_PG_DB": self.dagster_db, "DAGSTER_HOME": str(self.work / "home"),
            "MYSQL_HOST": my.host, "MYSQL_PORT": str(my.port), "MYSQL_USER": my.user,
            "MYSQL_PASSWORD": my.password, "MYSQL_DB": self.database,
            "MYSQL_TABLES": ",".join(tables), "MYSQL_TARGET_SCHEMA": SCHEMA,
            "SYNC_ASSETS_STATE_DIR": str(self.work / "state"), "SYNC_EXECUTOR": "multiprocess",
        }  # fmt: skip

    def fresh_target(self) -> None:
        """The following runs write into a new, empty PostgreSQL database."""
        self.target_dbs.append(self.servers.create_pg_database("many_target"))

    def run(self, name: str, tables: Sequence[str], settings: dict[str, str]) -> RunFigures:
        argv = [DAGSTER_BIN, "job", "execute", "-m", "sync_assets.definitions", "-j", JOB]
        # PostgreSQL's share: the backends of the target and of Dagster's storage.
        probe = PgProbe(self.servers.pg_conninfo(), self.target_dbs[-1], (self.dagster_db,))
        measured = run_measured(argv, env=self.env(tables, settings), probe=probe, cwd=REPO_ROOT)
        if measured.returncode != 0:
            raise RuntimeError(f"{name}: exit {measured.returncode}\n{measured.stdout[-4000:]}")
        self.measurements[name] = measured
        figures = _figures(name, len(tables), measured)
        figures.steps, figures.engine_median_s = self._run_events(settings, tables)
        return figures

    def _run_events(self, settings: dict[str, str], tables: Sequence[str]) -> tuple[int, float]:
        """Steps of the latest run, and the median of its tables' `duration_seconds`."""
        import dagster as dg

        saved = dict(os.environ)
        os.environ.update(self.env(tables, settings))
        try:
            with dg.DagsterInstance.get() as instance:
                run = instance.get_runs(limit=1)[0]
                steps = {
                    e.step_key
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                }
                durations = [
                    float(m.value)
                    for e in instance.all_logs(
                        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                    )
                    for k, m in e.asset_materialization.metadata.items()  # type: ignore[union-attr]
                    if k == "duration_seconds"
                ]
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return len(steps), round(statistics.median(durations), 3) if durations else 0.0

    def check_exact(self, report: Report) -> None:
        """Every table value-exact against MariaDB (fingerprints computed by both servers)."""
        with (
            self.servers.mysql_connect(self.database) as my,
            self.servers.pg_connect(self.target_dbs[-1]) as pg,
        ):
            for table in self.tables:
                result = compare(
                    mysql_fingerprint(my, self.database, table, "id"),
                    pg_fingerprint(pg, SCHEMA, table, "id"),
                )
                if result.ok:
                    report.exact_tables += 1
                else:
                    report.mismatches.append(f"{table}: {result.describe()}")

    def close(self) -> None:
        for name in self.target_dbs:
            self.servers.drop_pg_database(name)
        self.servers.drop_pg_database(self.dagster_db)


def _figures(name: str, tables: int, m: Measurement) -> RunFigures:
    return RunFigures(
        name=name,
        tables=tables,
        wall_s=round(m.wall, 2),
        cpu_s=round(m.cpu, 2),
        server_cpu_s=round(m.server_cpu, 2),
        pg_cpu_s=round(m.pg_cpu, 2),
        peak_rss_mb=round(m.peak_rss / 2**20, 1),
        load_before=round(m.load_before, 2),
    )


def table(report: Report) -> str:
    lines = [
        f"{report.tables} tables x {report.rows:,} rows, `{JOB}` by `dagster job execute`,"
        f" {os.cpu_count()} cores; MYSQL_TABLES_PER_STEP={report.tables_per_step},"
        f" MYSQL_STEP_WORKERS={report.step_workers}",
        "",
        "| run | tables | steps | wall s | CPU s | server CPU s (PostgreSQL) | peak RSS MB"
        " | engine median s | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report.runs:
        lines.append(
            f"| {r.name} | {r.tables} | {r.steps} | {r.wall_s} | {r.cpu_s}"
            f" | {r.server_cpu_s} ({r.pg_cpu_s}) | {r.peak_rss_mb} | {r.engine_median_s}"
            f" | {r.load_before} |"
        )
    lines += [
        "",
        f"per-table overhead (first load - one table) / {report.tables - 1}:"
        f" {report.per_table_overhead_s:.3f} s wall, {report.per_table_cpu_s:.3f} client CPU-s,"
        f" {report.per_table_pg_cpu_s:.3f} PostgreSQL CPU-s",
        f"value-exact: {report.exact_tables} of {report.tables} tables",
        *report.mismatches,
    ]
    return "\n".join(lines)


def verdicts(report: Report, target_seconds: float) -> list[str]:
    """The failed targets (empty: all met)."""
    failed = []
    first = report.run("first load")
    if first.wall_s > target_seconds:
        failed.append(f"first load {first.wall_s} s > {target_seconds} s")
    # The target is the run over every table; the one-table run (a step per table, so a
    # step process beside the run's) is the fixed-cost reference.
    peak = max(r.peak_rss_mb for r in report.runs if r.tables == report.tables)
    if peak >= RSS_LIMIT_MB:
        failed.append(f"peak RSS {peak} MB >= {RSS_LIMIT_MB} MB")
    if report.exact_tables != report.tables:
        failed.append(f"{report.tables - report.exact_tables} table(s) not exact")
    return failed


RUNS = ("one table", "first load", "no change")


def measure(
    servers: BenchServers, mysql_db: str, tables: int, rows: int, settings: dict[str, str]
) -> tuple[Report, dict[str, Measurement]]:
    """The three runs (`RUNS`) over `tables` generated tables of `rows` rows, every table then
    checked value-exact; the generated database and the run's PostgreSQL databases dropped."""
    work = Path(tempfile.mkdtemp(prefix="sa_many_tables_"))
    log(f"generating {tables} tables x {rows:,} rows in {mysql_db}")
    names = make_tables(servers, mysql_db, tables, rows)
    report = Report(
        tables,
        rows,
        settings.get("MYSQL_TABLES_PER_STEP", "default"),
        settings.get("MYSQL_STEP_WORKERS", "default"),
    )
    bench = Bench(servers, mysql_db, names, work)
    try:
        # The one-table run first, into a database of its own: a first load, like the next.
        for name, selected in zip(RUNS, (names[:1], names, names), strict=True):
            if name != "no change":
                bench.fresh_target()
            log(name)
            report.runs.append(bench.run(name, selected, settings))
            log(json.dumps(asdict(report.runs[-1])))
        bench.check_exact(report)
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
        with servers.mysql_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{mysql_db}`")
    return report, bench.measurements


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many_tables")
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--rows", default="1000", help="rows per table (an integer, 10k, 1M)")
    parser.add_argument("--tables-per-step", default="", help="MYSQL_TABLES_PER_STEP for the runs")
    parser.add_argument("--step-workers", default="", help="MYSQL_STEP_WORKERS for the runs")
    parser.add_argument("--target-seconds", type=float, default=TARGET_SECONDS)
    parser.add_argument("--mysql-db", default="sa_bench_many")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.tables < 2:
        parser.error("--tables must be at least 2")
    rows = parse_size(args.rows)
    settings = {
        name: value
        for name, value in (
            ("MYSQL_TABLES_PER_STEP", args.tables_per_step),
            ("MYSQL_STEP_WORKERS", args.step_workers),
        )
        if value
    }
    servers = BenchServers.from_env()
    try:
        report, _ = measure(servers, args.mysql_db, args.tables, rows, settings)
    finally:
        servers.stop()
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (args.results / f"many_tables-{stamp}.json").write_text(json.dumps(asdict(report), indent=2))
    print(table(report))
    failed = verdicts(report, args.target_seconds)
    for line in failed:
        print(f"NOT MET: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
