"""Scale-out benchmark: both executors on the same tables in the same run.

    .venv/bin/python -m benchmarks.scaleout --tables 50 --rows 200k --workers 1,2,3

`mysql_sync_job` copies `--tables` tables of `--rows` rows each into a fresh PostgreSQL
database per measurement, once on Dagster's multiprocess executor (one host, its default of
one process per core) and once on the Celery executor with 1, 2, 3... `sync-assets worker`
processes (concurrency 1 each) on a throwaway Redis broker. Each run is `dagster job execute`
on a Dagster instance in PostgreSQL, as in production.

Reported per configuration: wall time of the run (process launch to exit), steps/s, and the
per-step overhead: the median time from the executor handing a step out (multiprocess:
STEP_WORKER_STARTING; Celery: its "Submitting celery task" engine event) to that step's
STEP_START, i.e. process start-up or queue + worker pick-up + code location load (for Celery
it includes the wait in the queue while every worker is busy), and the slot overhead per step:
(slots x wall - sum of step durations) / steps, the time each step costs its process or worker
beyond its own work, idle slots included. All workers
run on this machine: with fewer cores than workers the figures show overhead, not speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from psycopg import sql

from benchmarks.dataset import parse_size
from benchmarks.servers import BenchServers
from sync_assets.devtools.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER_BIN = str(Path(sys.executable).with_name("dagster"))
CELERY_SUBMIT = "Submitting celery task for step"
RUN_TIMEOUT_SECONDS = 3600


@dataclass
class Result:
    executor: str
    workers: int
    wall_seconds: float
    steps: int
    rows: int
    overhead_median_s: float
    overhead_p90_s: float
    step_median_s: float
    slot_overhead_s: float


def log(message: str) -> None:
    print(f"[scaleout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_tables(servers: BenchServers, database: str, tables: int, rows: int) -> list[str]:
    """`tables` copies of one generated table (id, label, amount, updated_at)."""
    names = [f"s_{index:03d}" for index in range(tables)]
    with servers.mysql_connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"USE `{database}`")
        cur.execute(
            f"CREATE TABLE `{names[0]}` (id INT PRIMARY KEY, label VARCHAR(40),"
            " amount DECIMAL(12,2), updated_at DATETIME(6))"
        )
        cur.execute(
            f"INSERT INTO `{names[0]}` SELECT seq, CONCAT('row-', seq), seq * 1.25,"
            f" TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
        )
        for name in names[1:]:
            cur.execute(f"CREATE TABLE `{name}` LIKE `{names[0]}`")
            cur.execute(f"INSERT INTO `{name}` SELECT * FROM `{names[0]}`")
    return names


def dagster_home(work: Path) -> Path:
    """`work/home` with the project's dagster.yaml, minus what only a daemon acts on (no
    daemon runs in a benchmark: run monitoring and run retries would never happen)."""
    home = work / "home"
    home.mkdir()
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config.pop("run_monitoring", None)
    config.pop("run_retries", None)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


class Bench:
    def __init__(self, servers: BenchServers, database: str, tables: list[str], work: Path):
        self.servers, self.database, self.tables, self.work = servers, database, tables, work
        self.dagster_db = servers.create_pg_database("dagster")
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        dagster_home(work)

    def env(self, target_db: str, executor: str) -> dict[str, str]:
        pg, my = self.servers.pg, self.servers.mysql
        return {
            **os.environ,
            "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_USER": pg.user,
            "POSTGRES_PASSWORD": pg.password, "POSTGRES_DB": target_db,
            "DAGSTER_PG_DB": self.dagster_db, "DAGSTER_HOME": str(self.work / "home"),
            "MYSQL_HOST": my.host, "MYSQL_PORT": str(my.port), "MYSQL_USER": my.user,
            "MYSQL_PASSWORD": my.password, "MYSQL_DB": self.database,
            "MYSQL_TABLES": ",".join(self.tables),
            "SYNC_ASSETS_STATE_DIR": str(self.work / "state"),
            "SYNC_EXECUTOR": executor,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
        }  # fmt: skip

    def measure(self, executor: str, workers: int) -> Result:
        target = self.servers.create_pg_database("scaleout")
        env = self.env(target, executor)
        started: list[subprocess.Popen] = []
        try:
            for index in range(workers if executor == "celery" else 0):
                started.append(self._worker(env, index))
            began = time.monotonic()
            run = subprocess.run(
                [DAGSTER_BIN, "job", "execute", "-m", "sync_assets.definitions",
                 "-j", "mysql_sync_job"],
                cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                timeout=RUN_TIMEOUT_SECONDS,
            )  # fmt: skip
            wall = time.monotonic() - began
            if run.returncode != 0:
                raise RuntimeError(f"{executor} x{workers} failed:\n{run.stdout[-3000:]}")
            return self._result(executor, workers, wall, env, target)
        finally:
            for proc in started:
                proc.terminate()
                proc.wait(timeout=60)
            self.servers.drop_pg_database(target)

    def _worker(self, env: dict[str, str], index: int) -> subprocess.Popen:
        log_path = self.work / f"worker{index}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync_assets.cli", "worker", "--name", f"bench{index}",
             "--concurrency", "1", "--loglevel", "INFO"],
            cwd=REPO_ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while b" ready." not in log_path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        return proc

    def _result(
        self, executor: str, workers: int, wall: float, env: dict[str, str], target: str
    ) -> Result:
        handed, started, ended = self._step_times(env)
        overheads = sorted(started[k] - handed[k] for k in started if k in handed)
        durations = [ended[k] - started[k] for k in ended if k in started]
        rows = self._rows_copied(target)
        # Slot time not spent inside a step, per step: every worker (or process slot) busy or
        # idle for the whole run, minus the steps' own work, over the number of steps.
        slot_overhead = (workers * wall - sum(durations)) / max(len(durations), 1)
        return Result(
            executor, workers, round(wall, 1), len(ended), rows,
            round(statistics.median(overheads), 2),
            round(overheads[int(0.9 * (len(overheads) - 1))], 2),
            round(statistics.median(durations), 2), round(slot_overhead, 2),
        )  # fmt: skip

    def _step_times(self, env: dict[str, str]) -> tuple[dict, dict, dict]:
        """Per step key: handed out, started, succeeded (timestamps of the latest run)."""
        import dagster as dg

        saved = dict(os.environ)
        os.environ.update(env)
        try:
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                run = instance.get_runs(limit=1)[0]
                handed: dict[str, float] = {}
                started: dict[str, float] = {}
                ended: dict[str, float] = {}
                for entry in instance.all_logs(run.run_id):
                    event, key = entry.dagster_event, entry.step_key
                    if event is None or key is None:
                        continue
                    kind = event.event_type
                    if kind == dg.DagsterEventType.STEP_WORKER_STARTING or (
                        kind == dg.DagsterEventType.ENGINE_EVENT
                        and CELERY_SUBMIT in (event.message or "")
                    ):
                        handed.setdefault(key, entry.timestamp)
                    elif kind == dg.DagsterEventType.STEP_START:
                        started[key] = entry.timestamp
                    elif kind == dg.DagsterEventType.STEP_SUCCESS:
                        ended[key] = entry.timestamp
                return handed, started, ended
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _rows_copied(self, target: str) -> int:
        with self.servers.pg_connect(target) as conn:
            return sum(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("legacy", table))
                ).fetchone()[0]
                for table in self.tables
            )

    def close(self) -> None:
        self.redis.terminate()
        self.redis.wait(timeout=30)
        self.servers.drop_pg_database(self.dagster_db)


def table(results: Sequence[Result], rows_each: int, tables: int) -> str:
    lines = [
        f"{tables} tables x {rows_each:,} rows, `mysql_sync_job`, {os.cpu_count()} cores",
        "",
        "| executor | workers | wall s | steps/s | rows copied | step median s"
        " | hand-out → start median s | p90 s | slot overhead/step s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.executor} | {r.workers} | {r.wall_seconds} | {r.steps / r.wall_seconds:.2f}"
            f" | {r.rows:,} | {r.step_median_s} | {r.overhead_median_s} | {r.overhead_p90_s}"
            f" | {r.slot_overhead_s} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout")
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--rows", default="200k", help="rows per table (200k, 1M or an integer)")
    parser.add_argument("--workers", default="1,2,3", help="Celery worker counts to measure")
    parser.add_argument("--mysql-db", default="sa_bench_scaleout")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    rows = parse_size(args.rows)
    servers = BenchServers.from_env()
    work = Path(tempfile.mkdtemp(prefix="sa_scaleout_"))
    log(f"generating {args.tables} tables x {rows:,} rows")
    names = make_tables(servers, args.mysql_db, args.tables, rows)
    bench = Bench(servers, args.mysql_db, names, work)
    results: list[Result] = []
    try:
        plan = [("multiprocess", os.cpu_count() or 1)]
        plan += [("celery", int(n)) for n in args.workers.split(",")]
        for executor, workers in plan:
            log(f"{executor} x{workers}")
            result = bench.measure(executor, workers)
            expected = rows * args.tables
            if result.rows != expected:
                raise RuntimeError(f"{executor} x{workers}: {result.rows} rows, want {expected}")
            results.append(result)
            log(json.dumps(asdict(result)))
    finally:
        bench.close()
        with servers.mysql_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{args.mysql_db}`")
    text = table(results, rows, args.tables)
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (args.results / f"scaleout-{stamp}.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
