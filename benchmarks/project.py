"""This project's syncs, run through the real asset code path in a measured child process.

Each sync is `python -m benchmarks.runner <asset key>` (the project's definitions, executed
in-process on an ephemeral instance) with the production environment variables pointing at
the benchmark's databases and FTP server. `cli_materialize` runs the operator's path instead,
`dagster asset materialize`, to state what Dagster itself adds (launch, run storage, executor);
`operator_materialize` runs the same command with the project's own dagster.yaml, as deployed:
Dagster's runs and events in PostgreSQL (the benchmark database's schema `dagster`).
"""

from __future__ import annotations

import compileall
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import dataset
from benchmarks.measure import Measurement, PgProbe, run_measured
from benchmarks.profile import py_spy_argv
from benchmarks.runner import RESULT_MARKER
from benchmarks.servers import BenchServers

REPO_ROOT = Path(__file__).resolve().parents[1]
MYSQL_ASSET = f"legacy/{dataset.TABLE.lower()}"
MYSQL_TARGET_SCHEMA = "legacy"
FTP_SOURCE = "machine_logs"
FTP_ASSET = f"logs/{FTP_SOURCE}"
FTP_TARGET_SCHEMA = "machine_logs"


def compile_project() -> None:
    """Write the project's bytecode, as the image's install does (`UV_COMPILE_BYTECODE`).

    A checkout installed editable has none, and with PYTHONDONTWRITEBYTECODE (set here as in
    the image) every measured process would compile the project's modules again: about 0.1 s
    of CPU per process that a deployment does not pay. Stale files are harmless: Python checks
    each against its source."""
    for package in ("sync_assets", "benchmarks"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)


@dataclass
class SyncResult:
    """A measured sync and what its run reported."""

    measurement: Measurement
    launched: float  # epoch seconds when the child process was started
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        # CLI runs print no report: their exit code is the verdict.
        return self.measurement.returncode == 0 and bool(self.report.get("success", True))

    def since_launch(self, phase: str) -> float | None:
        value = self.report.get("phases", {}).get(phase) or self.report.get(phase)
        return None if value is None else float(value) - self.launched

    def failure_text(self) -> str:
        failures = self.report.get("failures") or []
        return "\n".join(failures) or self.measurement.stderr[-3000:]


class FTPServerProcess:
    """The corpus served by pyftpdlib in a child process on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.user = "bench"
        self.password = secrets.token_urlsafe(12)
        env = {"BENCH_FTP_USER": self.user, "BENCH_FTP_PASS": self.password}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.ftpserve", str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().strip())

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class ProjectRunner:
    """Runs the project's assets against one PostgreSQL database at a time."""

    def __init__(self, servers: BenchServers, mysql_db: str, work_dir: Path) -> None:
        self.servers = servers
        self.mysql_db = mysql_db
        self.work_dir = work_dir
        self.ftp: FTPServerProcess | None = None
        self.config_path = work_dir / "sync_assets.yaml"
        # An explicit, empty project config: a sync_assets.yaml in the caller's directory
        # must not change what is measured.
        self.config_path.write_text("{}\n", encoding="utf-8")

    def env(self, pg_db: str) -> dict[str, str]:
        pg, my = self.servers.pg, self.servers.mysql
        env = self.servers.client_env()
        env.update(
            POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port), POSTGRES_DB=pg_db,
            POSTGRES_USER=pg.user, POSTGRES_PASSWORD=pg.password,
            MYSQL_HOST=my.host, MYSQL_PORT=str(my.port), MYSQL_DB=self.mysql_db,
            MYSQL_USER=my.user, MYSQL_PASSWORD=my.password, MYSQL_TABLES=dataset.TABLE,
            SYNC_ASSETS_CONFIG=str(self.config_path),
            SYNC_ASSETS_STATE_DIR=str(self.work_dir / f"state_{pg_db}"),
            DAGSTER_HOME=str(self._dagster_home()),
            DELETE_AFTER_SYNC="false",
        )  # fmt: skip
        if self.ftp is not None:
            env.update(
                FTP_HOST="127.0.0.1", FTP_PORT=str(self.ftp.port), FTP_USER=self.ftp.user,
                FTP_PASS=self.ftp.password, FTP_DIR="/",
            )  # fmt: skip
        return env

    def _dagster_home(self) -> Path:
        """A throwaway instance (SQLite storage) for CLI runs; never the project's dagster.yaml."""
        home = self.work_dir / "dagster_home"
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
        return home

    def start_ftp(self, root: Path) -> None:
        self.ftp = FTPServerProcess(root)

    def stop_ftp(self) -> None:
        if self.ftp is not None:
            self.ftp.stop()
            self.ftp = None

    def materialize(self, pg_db: str, asset: str) -> SyncResult:
        argv = [sys.executable, "-m", "benchmarks.runner", asset]
        return self._run(argv, pg_db)

    def profiled_materialize(self, pg_db: str, asset: str, py_spy: str, output: Path) -> SyncResult:
        """The same sync under `py-spy record` (raw collapsed stacks into `output`)."""
        argv = [sys.executable, "-m", "benchmarks.runner", asset]
        return self._run(py_spy_argv(py_spy, output, argv), pg_db)

    def cli_materialize(self, pg_db: str, asset: str) -> SyncResult:
        return self._run(_materialize_argv(asset), pg_db)

    def operator_materialize(self, pg_db: str, asset: str) -> SyncResult:
        """`dagster asset materialize` with the repository's dagster.yaml: the run, its events
        and the step's pool slot go to PostgreSQL as in a deployment. The run's phases are read
        back from the events it stored."""
        home = self.work_dir / "operator_home"
        home.mkdir(exist_ok=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
        result = self._run(_materialize_argv(asset), pg_db, dagster_home=home)
        if result.measurement.returncode == 0:
            result.report = self._stored_run(pg_db)
        return result

    def _stored_run(self, pg_db: str) -> dict[str, Any]:
        """The last run's event phases (epoch seconds) from Dagster's storage in `pg_db`."""
        from dagster import DagsterEventType  # stored under legacy values (PIPELINE_START)

        phases: dict[str, float] = {}
        with self.servers.pg_connect(pg_db) as conn:
            rows = conn.execute(
                "SELECT dagster_event_type, EXTRACT(EPOCH FROM timestamp)::float8"
                " FROM dagster.event_logs WHERE dagster_event_type IS NOT NULL AND run_id ="
                " (SELECT run_id FROM dagster.runs ORDER BY id DESC LIMIT 1) ORDER BY id"
            ).fetchall()
        for value, stamp in rows:
            kind = DagsterEventType(value).name
            phases.setdefault(f"first_{kind}", stamp)
            phases[f"last_{kind}"] = stamp
        return {"phases": phases, "success": "first_RUN_SUCCESS" in phases}

    def _run(self, argv: list[str], pg_db: str, dagster_home: Path | None = None) -> SyncResult:
        probe = PgProbe(self.servers.pg_conninfo(), pg_db)
        server_pids = [self.ftp.process.pid] if self.ftp is not None else []
        env = self.env(pg_db)
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        launched = time.time()
        # While the corpus is served, the syncs measured are FTP ones: MariaDB is not theirs.
        m = run_measured(
            argv, env=env, probe=probe, cwd=REPO_ROOT, server_pids=server_pids,
            mysql_server=self.ftp is None,
        )  # fmt: skip
        return SyncResult(m, launched, _parse_report(m.stdout))


def _materialize_argv(asset: str) -> list[str]:
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "asset", "materialize", "-m", "sync_assets.definitions",
            "--select", asset]  # fmt: skip


def _parse_report(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    return {}
