"""Load tier (`pytest -m load`): 10,000 files in one FTP run, a 5M-row table, 50 tables in one
Dagster run. Each runs in a child process whose peak RSS (process tree, psutil) must stay
bounded, and whose counts must reconcile with the source. Figures are printed (`-s`) and
written to test-artifacts/reliability-load.json.
"""

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import psycopg
import pymysql
import pytest

from sync_assets.resources import PostgresResource
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger
from sync_assets_tests.mysql.conftest import run_sql
from sync_assets_tests.reliability.conftest import RunArgs, finish, ftp_run_args, spawn_run

pytestmark = [pytest.mark.load, pytest.mark.slow, pytest.mark.timeout(900)]

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability-load.json"
# A run process imports Dagster (~150-250 MB); streaming keeps data out of memory, so the
# peak must not grow with the volume. 5M rows of this table are ~400 MB as COPY text.
MAX_RSS_MB = 400


@dataclass
class Measured:
    name: str
    seconds: float
    peak_rss_mb: float
    output: dict


def measured_run(name: str, args: dict, env: dict[str, str] | None = None) -> Measured:
    """Run `runner.py` to completion, sampling the RSS of its process tree every 50 ms."""
    started = time.monotonic()
    child = spawn_run(args, env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        proc = psutil.Process(child.pid)
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        stdout, stderr = finish(child, timeout=800)
    finally:
        done.set()
        sampler.join()
    assert child.returncode == 0, stderr[-3000:]
    result = Measured(name, round(time.monotonic() - started, 1), round(peak / 2**20, 1),
                      json.loads(stdout.strip().splitlines()[-1]))  # fmt: skip
    _record(result)
    return result


def _record(result: Measured) -> None:
    print(f"\nLOAD {result.name}: {result.seconds}s, peak RSS {result.peak_rss_mb} MB")
    ARTIFACT.parent.mkdir(exist_ok=True)
    figures = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    figures[result.name] = asdict(result)
    ARTIFACT.write_text(json.dumps(figures, indent=2))


FILES = 10_000
LINES_PER_FILE = 5


def test_ten_thousand_files_in_one_run(
    ftp_server_factory, pg_resource: PostgresResource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    old = time.time() - 3600
    for n in range(FILES):
        path = server.root / f"d{n % 20:02d}" / f"machine-{n:05d}.csv"
        path.parent.mkdir(exist_ok=True)
        first = n * LINES_PER_FILE
        body = "".join(f"{i};{n}\n" for i in range(first, first + LINES_PER_FILE))
        path.write_text("id;file\n" + body)
        os.utime(path, (old, old))
    source = make_source("load_files")
    run = measured_run(
        "10k_ftp_files", ftp_run_args(make_ftp_resource(server), pg_resource, source)
    )

    assert run.output["files_loaded"] == FILES
    assert run.output["rows_loaded"] == FILES * LINES_PER_FILE
    assert run.output["rows_rejected"] == 0
    table = f'"{source.schema}"."{source.table_name}"'
    counts = pg_conn.execute(
        f"SELECT count(*), count(DISTINCT id), count(DISTINCT _source_file) FROM {table}"
    ).fetchone()
    assert counts == (FILES * LINES_PER_FILE, FILES * LINES_PER_FILE, FILES)
    assert {e["status"] for e in ledger(pg_conn, source).values()} == {"loaded"}
    assert run.peak_rss_mb < MAX_RSS_MB


BIG_ROWS = 5_000_000


def test_five_million_row_table(
    src: pymysql.Connection,
    mysql_run_args: RunArgs,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    started = time.monotonic()
    run_sql(
        src,
        "CREATE TABLE big (id INT PRIMARY KEY, k INT NOT NULL, payload VARCHAR(40),"
        " at DATETIME NOT NULL)",
        "INSERT INTO big SELECT seq, seq % 1000, MD5(seq),"
        f" '2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_{BIG_ROWS}",
    )
    print(f"\nLOAD 5M rows generated in MariaDB in {time.monotonic() - started:.1f}s")
    run = measured_run("5M_row_table", mysql_run_args(table="big"))

    assert run.output["row_count"] == BIG_ROWS
    with src.cursor() as cur:  # sums over every column: a lost, doubled or changed row shows
        cur.execute(
            "SELECT COUNT(*), SUM(id), SUM(k),"
            " SUM(CAST(CONV(LEFT(payload, 8), 16, 10) AS UNSIGNED)), SUM(UNIX_TIMESTAMP(at))"
            " FROM big"
        )
        source = tuple(int(v) for v in cur.fetchone())
    target = pg_conn.execute(
        "SELECT count(*), sum(id), sum(k), sum(('x' || left(payload, 8))::bit(32)::bigint),"
        f' sum(extract(epoch FROM at)) FROM "{target_schema}".big'
    ).fetchone()
    assert tuple(int(v) for v in target) == source
    assert run.peak_rss_mb < MAX_RSS_MB


TABLES = 50


def test_fifty_tables_in_one_run(
    src: pymysql.Connection,
    mysql_run_args: RunArgs,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    names = [f"t{n:02d}" for n in range(TABLES)]
    for n, name in enumerate(names):
        run_sql(
            src,
            f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))",
            f"INSERT INTO {name} SELECT seq, CONCAT('{name}-', seq) FROM seq_1_to_{1000 + n}",
        )
    env = {"MYSQL_TABLES": ",".join(names), "MYSQL_TARGET_SCHEMA": target_schema}
    run = measured_run("50_tables_one_run", mysql_run_args("mysql_assets"), env)

    expected_rows = sum(1000 + n for n in range(TABLES))
    assert run.output == {"assets": TABLES, "rows": expected_rows}
    counted = sum(
        pg_conn.execute(f'SELECT count(*) FROM "{target_schema}"."{name}"').fetchone()[0]
        for name in names
    )
    assert counted == expected_rows
    assert run.peak_rss_mb < MAX_RSS_MB
