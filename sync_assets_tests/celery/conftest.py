"""The Celery tier: real `sync-assets worker`s as separate hosts (network namespaces).

Throwaway PostgreSQL, MariaDB, Redis (the broker) and an FTP server listen on loopback and on
the host side of every worker's veth; each worker sees only its own veth's host address. Runs
are started with `dagster job execute` on the host (the orchestrating loop), which submits every
step to the broker. Everything started here is stopped in finalizers, even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
import pymysql
import pytest
import yaml
from psycopg import sql
from pyftpdlib.handlers import FTPHandler

from sync_assets.devtools.ftp_server import FTPServerHandle, start_ftp_server
from sync_assets.devtools.servers import (
    ServerInfo,
    free_port,
    port_open,
    start_throwaway_mariadb,
    start_throwaway_postgres,
)
from sync_assets_tests.celery import netns
from sync_assets_tests.conftest import (
    REPO_ROOT,
    _unique_name,
)
from sync_assets_tests.conftest import (
    mysql_admin_connect as mysql_connect,
)
from sync_assets_tests.conftest import (
    pg_admin_connect as pg_connect,
)
from sync_assets_tests.reliability.conftest import csv_file, wait_until

WORKERS = 3
MYSQL_POOL_LIMIT = 2
# A run must end within this (the stated bound of the partition case included): the broker
# hands a lost step out again after VISIBILITY_TIMEOUT, then the step itself takes seconds.
RUN_TIMEOUT_SECONDS = 420
VISIBILITY_TIMEOUT_SECONDS = 45
MYSQL_USER = "sync_worker"
FTP_SOURCES = ("line_a", "line_b")
DAGSTER_BIN = str(Path(sys.executable).with_name("dagster"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """This tier runs only when asked for: `pytest -m celery` (scripts/test-celery)."""
    if "celery" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="Celery tier: run scripts/test-celery (pytest -m celery)")
    for item in items:
        if item.get_closest_marker("celery") is not None:
            item.add_marker(skip)


# --- hosts and servers (one set per session) ---------------------------------------------------


@dataclass
class Network:
    namespaces: list[netns.Namespace]
    cidr: str

    @property
    def listen(self) -> str:
        return ",".join(["127.0.0.1", *(ns.host_addr for ns in self.namespaces)])


@pytest.fixture(scope="session")
def network() -> Iterator[Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (scripts/test-celery installs it)")
    base = netns.free_base()
    made: list[netns.Namespace] = []
    try:
        for index in range(WORKERS):
            made.append(netns.create(base, index))
        yield Network(made, str(base))
    finally:
        for ns in made:
            netns.delete(ns)


def _start_redis(listen: list[str], workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", *listen, "--save", "",
         "--appendonly", "no", "--protected-mode", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, "redis", 60, 0.1)
    assert proc.poll() is None, "throwaway redis-server exited"
    return proc, port


@dataclass
class Servers:
    pg: ServerInfo
    mariadb: ServerInfo
    redis_port: int


@pytest.fixture(scope="session")
def servers(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started: list[ServerInfo] = []
    redis: subprocess.Popen | None = None
    try:
        pg = start_throwaway_postgres(listen=network.listen, trust_cidr=network.cidr)
        started.append(pg)
        _pg_keepalives(pg)
        mariadb = start_throwaway_mariadb(listen=network.listen)
        started.append(mariadb)
        redis, redis_port = _start_redis(
            network.listen.split(","), tmp_path_factory.mktemp("redis")
        )
        yield Servers(pg, mariadb, redis_port)
    finally:
        if redis is not None:
            redis.kill()
            redis.wait()
        for server in started:
            server.stop()


def _pg_keepalives(pg: ServerInfo) -> None:
    """A worker cut off mid-step leaves sessions (and their advisory locks) that PostgreSQL
    must drop on its own: TCP keepalives and a user timeout end them within about 15 s."""
    with pg_connect(pg) as conn:
        for name, value in KEEPALIVES.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")


KEEPALIVES = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2",
              "tcp_keepalives_count": "3", "tcp_user_timeout": "15000"}  # fmt: skip


# --- one deployment per test -----------------------------------------------------------------


@dataclass
class Worker:
    name: str
    ns: netns.Namespace
    process: subprocess.Popen
    log: IO[bytes]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool child): a machine that died."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@dataclass
class Deployment:
    servers: Servers
    network: Network
    tmp: Path
    pg_db: str
    dagster_db: str
    mysql_db: str
    ftp: FTPServerHandle
    tables: list[str]
    workers: list[Worker] = field(default_factory=list)

    def env_for(self, host: str) -> dict[str, str]:
        """The variables of a machine that reaches every server at `host`."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("POSTGRES_", "MYSQL_", "FTP_", "CELERY_"))
        }
        env.update({
            "POSTGRES_HOST": host, "POSTGRES_PORT": str(self.servers.pg.port),
            "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "",
            "POSTGRES_DB": self.pg_db, "DAGSTER_PG_DB": self.dagster_db,
            "MYSQL_HOST": host, "MYSQL_PORT": str(self.servers.mariadb.port),
            "MYSQL_USER": MYSQL_USER, "MYSQL_PASSWORD": "worker-secret", "MYSQL_DB": self.mysql_db,
            "MYSQL_TABLES": ",".join(self.tables),
            "FTP_HOST": host, "FTP_PORT": str(self.ftp.port), "FTP_USER": self.ftp.user,
            "FTP_PASS": self.ftp.password, "FTP_DIR": "/", "DELETE_AFTER_SYNC": "true",
            "DAGSTER_HOME": str(self.tmp / "home"),
            "SYNC_ASSETS_CONFIG": str(self.tmp / "sync_assets.yaml"),
            "SYNC_ASSETS_STATE_DIR": str(self.tmp / "state"),
            "SYNC_EXECUTOR": "celery",
            "CELERY_BROKER_URL": f"redis://{host}:{self.servers.redis_port}/0",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
            "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        return env

    def start_worker(self, ns: netns.Namespace, name: str) -> Worker:
        log = (self.tmp / f"{name}.log").open("wb")
        command = [*ns.exec_prefix(name), sys.executable, "-m", "sync_assets.cli", "worker",
                   "--name", name, "--concurrency", "1"]  # fmt: skip
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.env_for(ns.host_addr),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(name, ns, proc, log)
        self.workers.append(worker)
        wait_until(lambda: b"ready." in (self.tmp / f"{name}.log").read_bytes()
                   or proc.poll() is not None, f"worker {name} ready", 180, 0.5)  # fmt: skip
        assert proc.poll() is None, self.worker_log(name)
        return worker

    def worker_log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def start_run(self, job: str) -> subprocess.Popen:
        """The run's orchestrating loop on the host (loopback), as a run worker would do it."""
        return subprocess.Popen(
            [DAGSTER_BIN, "job", "execute", "-m", "sync_assets.definitions", "-j", job],
            cwd=REPO_ROOT, env=self.env_for("127.0.0.1"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    def pg(self) -> psycopg.Connection:
        return pg_connect(self.servers.pg, self.pg_db)

    def mysql(self) -> pymysql.Connection:
        return mysql_connect(self.servers.mariadb, self.mysql_db)


def finish_run(run: subprocess.Popen, timeout: float = RUN_TIMEOUT_SECONDS) -> str:
    """Wait for `dagster job execute`; a run still going after `timeout` fails the test."""
    try:
        out, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        out, _ = run.communicate()
        pytest.fail(f"run did not end within {timeout:.0f}s:\n{out[-4000:]}")
    return out


def _dagster_home(home: Path) -> None:
    """The project's dagster.yaml (PostgreSQL storage by variables) with the pool limit set."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["concurrency"]["pools"] = {"default_limit": MYSQL_POOL_LIMIT}
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _project_config(path: Path) -> None:
    options = {"format": "csv", "delimiter": ";", "min_age_seconds": 0, "stable_seconds": 0}
    sources = {name: {**options, "directory": f"/{name}"} for name in FTP_SOURCES}
    path.write_text(yaml.safe_dump({"ftp": {"sources": sources}}))


def _mysql_database(server: ServerInfo, name: str) -> None:
    with mysql_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE USER IF NOT EXISTS '{MYSQL_USER}'@'%' IDENTIFIED BY 'worker-secret'")
        cur.execute(f"GRANT ALL ON `{name}`.* TO '{MYSQL_USER}'@'%'")


def create_table(deployment: Deployment, table: str, rows: int) -> None:
    with deployment.mysql() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `{table}` (id INT PRIMARY KEY, label VARCHAR(40),"
            " amount DECIMAL(12,2), updated_at DATETIME(6))"
        )
        cur.execute(
            f"INSERT INTO `{table}` SELECT seq, CONCAT('row-', seq), seq * 1.25,"
            f" TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
        )
    deployment.tables.append(table)


@pytest.fixture
def deployment(
    servers: Servers, network: Network, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    pg_db, dagster_db, mysql_db = (
        _unique_name(p) for p in ("sa_celery", "sa_dagster", "sa_celery")
    )
    with pg_connect(servers.pg) as conn:
        for name in (pg_db, dagster_db):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _mysql_database(servers.mariadb, mysql_db)
    for name in FTP_SOURCES:
        (tmp_path / "ftp" / name).mkdir(parents=True)
    handler = getattr(request, "param", None) or FTPHandler
    ftp = start_ftp_server(tmp_path / "ftp", host="0.0.0.0", handler_base=handler)
    _dagster_home(tmp_path / "home")
    _project_config(tmp_path / "sync_assets.yaml")
    deployment = Deployment(servers, network, tmp_path, pg_db, dagster_db, mysql_db, ftp, [])
    try:
        yield deployment
    finally:
        for worker in deployment.workers:
            worker.kill()
            worker.log.close()
        ftp.stop()
        for ns in network.namespaces:
            ns.set_link(up=True)
        with pg_connect(servers.pg) as conn:
            for name in (pg_db, dagster_db):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        with mysql_connect(servers.mariadb) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{mysql_db}`")


def start_workers(deployment: Deployment) -> list[Worker]:
    return [
        deployment.start_worker(ns, f"w{i}") for i, ns in enumerate(deployment.network.namespaces)
    ]


# --- what the runs left -----------------------------------------------------------------------


def write_logs(
    deployment: Deployment, files_per_source: int, lines: int
) -> dict[str, dict[str, list[int]]]:
    """CSV files with globally unique ids; the expected ids by source and remote path."""
    expected: dict[str, dict[str, list[int]]] = {}
    next_id = 1
    for source in FTP_SOURCES:
        for index in range(files_per_source):
            path = deployment.ftp.root / source / f"log_{index:03d}.csv"
            path.write_bytes(csv_file(next_id, next_id + lines - 1))
            old = time.time() - 3600
            os.utime(path, (old, old))
            expected.setdefault(source, {})[f"/{source}/{path.name}"] = list(
                range(next_id, next_id + lines)
            )
            next_id += lines
    return expected


def loaded_ids(deployment: Deployment, source: str) -> dict[str, list[int]]:
    """Ids per `_source_file` in the source's table (doubles would stay visible)."""
    query = sql.SQL("SELECT _source_file, id FROM {} ORDER BY _source_file, id").format(
        sql.Identifier("machine_logs", source)
    )
    result: dict[str, list[int]] = {}
    with deployment.pg() as conn:
        for path, value in conn.execute(query).fetchall():
            result.setdefault(path, []).append(value)
    return result


def assert_tables_exact(deployment: Deployment) -> None:
    """Every row of every table equal in MariaDB and in PostgreSQL (legacy schema)."""
    with deployment.mysql() as my, deployment.pg() as pg:
        for table in deployment.tables:
            with my.cursor() as cur:
                cur.execute(f"SELECT id, label, amount, updated_at FROM `{table}` ORDER BY id")
                source = [tuple(row) for row in cur.fetchall()]
            target = pg.execute(
                sql.SQL("SELECT id, label, amount, updated_at FROM {} ORDER BY id").format(
                    sql.Identifier("legacy", table)
                )
            ).fetchall()
            assert target == source, f"legacy.{table} differs from MariaDB"


def materialisation_hosts(deployment: Deployment) -> dict[str, str]:
    """asset key -> host name recorded in its latest materialisation (read from PostgreSQL)."""
    import dagster as dg

    env = deployment.env_for("127.0.0.1")
    with _Environ(env), dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        hosts: dict[str, str] = {}
        for key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(key)
            if event and event.asset_materialization:
                host = event.asset_materialization.metadata.get("sync_assets/host")
                if host is not None:
                    hosts["/".join(key.path)] = str(host.value)
        return hosts


class _Environ:
    """Set variables for the block (the instance's config reads them), restore after."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.saved = values, dict(os.environ)

    def __enter__(self) -> None:
        os.environ.update(self.values)

    def __exit__(self, *_: object) -> None:
        os.environ.clear()
        os.environ.update(self.saved)


class ProcesslistWatch:
    """Samples MariaDB's processlist: the most sessions of the workers' user at once."""

    def __init__(self, server: ServerInfo, database: str) -> None:
        self.server, self.database = server, database
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with mysql_connect(self.server) as conn, conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                    " WHERE USER = %s AND DB = %s",
                    (MYSQL_USER, self.database),
                )
                self.peak = max(self.peak, int(cur.fetchone()[0]))
                time.sleep(0.05)

    def __enter__(self) -> ProcesslistWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
