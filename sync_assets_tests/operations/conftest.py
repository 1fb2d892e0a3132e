"""Run the real jobs as the scheduler does (`dagster job execute` against an instance with run
retries on, as dagster.yaml has them) and read back what the instance recorded."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import (
    create_mysql_database,
    drop_mysql_database,
    mysql_admin_connect,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
# The settings of the project's dagster.yaml that decide retries; storage stays local (SQLite).
INSTANCE_YAML = """\
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: true
telemetry:
  enabled: false
"""
# Variables of the project that must not leak from the caller's environment into a run.
PROJECT_PREFIXES = ("FTP_", "MYSQL_", "POSTGRES_", "SYNC_ASSETS_", "DELETE_AFTER_SYNC", "ALERT_")
RUN_TIMEOUT_SECONDS = 600  # generous: a run ends on its own, this only stops a hung test


@dataclass
class JobRun:
    returncode: int
    output: str
    run: dg.DagsterRun
    instance: dg.DagsterInstance

    def records(self, event_type: dg.DagsterEventType) -> list[dg.EventLogRecord]:
        return list(self.instance.get_records_for_run(self.run.run_id, of_type=event_type).records)

    def failure_messages(self) -> list[str]:
        return [
            str(r.event_log_entry.dagster_event.step_failure_data.error.message)
            for r in self.records(dg.DagsterEventType.STEP_FAILURE)
        ]

    def step_seconds(self) -> float:
        """From the step's first start to its failure: retries and their pauses included."""
        start = self.records(dg.DagsterEventType.STEP_START)[0].timestamp
        end = self.records(dg.DagsterEventType.STEP_FAILURE)[-1].timestamp
        return end - start


@dataclass
class JobRunner:
    home: Path
    workdir: Path
    base_env: dict[str, str]

    def env(self, **values: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
        return {
            **clean,
            "DAGSTER_HOME": str(self.home),
            "SYNC_ASSETS_STATE_DIR": str(self.workdir / "state"),
            **self.base_env,
            **values,
        }

    def command(self, job: str) -> list[str]:
        return [DAGSTER, "job", "execute", "-m", "sync_assets.definitions", "-j", job]

    def execute(self, job: str, **values: str) -> JobRun:
        done = subprocess.run(
            self.command(job),
            cwd=self.workdir,
            env=self.env(**values),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        instance = dg.DagsterInstance.from_config(str(self.home))
        run = instance.get_runs(limit=1)[0]
        return JobRun(done.returncode, done.stdout + done.stderr, run, instance)


@pytest.fixture
def job_runner(tmp_path: Path) -> JobRunner:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return JobRunner(home, workdir, {"PYTHONPATH": str(REPO_ROOT)})


@dataclass
class MySQLSource:
    server: ServerInfo
    database: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        return {
            "MYSQL_HOST": self.server.host,
            "MYSQL_PORT": str(self.server.port),
            "MYSQL_DB": self.database,
            "MYSQL_USER": self.user,
            "MYSQL_PASSWORD": self.password,
            "MYSQL_TABLES": "machines",
        }

    def execute(self, *statements: str) -> None:
        with mysql_admin_connect(self.server, self.database) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)


@pytest.fixture
def mysql_source(mysql_server: ServerInfo) -> Iterator[MySQLSource]:
    """A database with one small table and an account with a password for it only."""
    database = create_mysql_database(mysql_server, "sa_ops")
    user, password = f"sa_ops_{secrets.token_hex(3)}", f"Ops-{secrets.token_hex(6)}"
    source = MySQLSource(mysql_server, database, user, password)
    source.execute(
        "CREATE TABLE machines (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO machines VALUES (1, 'press'), (2, 'lathe'), (3, 'mill')",
        *(f"CREATE USER '{user}'@'{h}' IDENTIFIED BY '{password}'" for h in _HOSTS),
        *(f"GRANT ALL ON `{database}`.* TO '{user}'@'{h}'" for h in _HOSTS),
    )
    yield source
    with mysql_admin_connect(mysql_server) as conn, conn.cursor() as cur:
        for host in _HOSTS:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
    drop_mysql_database(mysql_server, database)


_HOSTS = ("localhost", "127.0.0.1", "%")


def pg_env(server: ServerInfo, database: str) -> dict[str, str]:
    return {
        "POSTGRES_HOST": server.host,
        "POSTGRES_PORT": str(server.port),
        "POSTGRES_USER": server.user,
        "POSTGRES_PASSWORD": server.password or "",
        "POSTGRES_DB": database,
    }
