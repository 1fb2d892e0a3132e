"""What retrying cannot fix fails at once; what it can is retried, asleep.

Each permanent cause runs the scheduled job for real (`dagster job execute`, run retries on in
the instance) against real servers: one step failure, no step retry, a message naming the
variable or option to fix, and the run marked not to be re-launched by the run-retry daemon.
"""

from __future__ import annotations

import ftplib
import subprocess
import time
from pathlib import Path

import dagster as dg
import psutil
import psycopg
import pymysql
import pytest

from sync_assets.core import errors
from sync_assets.core.settings import ConfigError
from sync_assets.devtools.ftp_server import FTPServerHandle
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets.mysql.sync import DeleteGuardError
from sync_assets.mysql.types import UnsupportedTypeError
from sync_assets.resources import SourceRefusedError, SourceUnavailableError
from sync_assets_tests.conftest import FTPServerFactory
from sync_assets_tests.operations.conftest import JobRun, JobRunner, MySQLSource, pg_env

# A throwaway PostgreSQL that checks passwords (the shared one trusts loopback).
from sync_assets_tests.reliability.test_config import password_postgres  # noqa: F401

pytestmark = pytest.mark.slow

# The bar: a permanent cause fails the step in under 30 s (was 2.5 to 3 minutes).
PERMANENT_FAILURE_SECONDS = 30
WILL_RETRY_TAG = "dagster/will_retry"


def assert_failed_once_for_good(result: JobRun, names: str) -> None:
    assert result.returncode != 0, result.output[-2000:]
    messages = result.failure_messages()
    assert len(messages) == 1, messages  # one failure: no step retry
    assert not result.records(dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert names in messages[0], messages[0]
    assert result.step_seconds() < PERMANENT_FAILURE_SECONDS
    tags = result.instance.get_run_by_id(result.run.run_id).tags
    assert tags[errors.RUN_RETRY_ON_STEP_FAILURE_TAG] == "false"
    assert tags[WILL_RETRY_TAG] == "false"  # the run-retry daemon leaves it alone


@pytest.fixture
def ftp_env(ftp_server_factory: FTPServerFactory, pg_server: ServerInfo, pg_dbname: str):
    handle: FTPServerHandle = ftp_server_factory()
    (handle.root / "press.csv").write_text("ts,value\n2026-01-01 00:00:00,1\n")
    return {
        "FTP_HOST": handle.host,
        "FTP_PORT": str(handle.port),
        "FTP_USER": handle.user,
        "FTP_PASS": handle.password,
        **pg_env(pg_server, pg_dbname),
    }


def test_ftp_login_refused_fails_at_once_naming_ftp_pass(job_runner: JobRunner, ftp_env) -> None:
    result = job_runner.execute("ftp_logs_job", **{**ftp_env, "FTP_PASS": "not-the-password"})
    assert_failed_once_for_good(result, "FTP_USER/FTP_PASS")
    assert "not-the-password" not in result.output


def test_missing_postgres_database_fails_at_once_naming_postgres_db(
    job_runner: JobRunner, ftp_env
) -> None:
    result = job_runner.execute("ftp_logs_job", **{**ftp_env, "POSTGRES_DB": "sa_no_such_db"})
    assert_failed_once_for_good(result, "POSTGRES_DB")


def test_postgres_password_refused_fails_at_once_naming_the_variables(
    job_runner: JobRunner, ftp_env, request: pytest.FixtureRequest
) -> None:
    server: ServerInfo = request.getfixturevalue("password_postgres")
    env = {**ftp_env, **pg_env(server, "postgres"), "POSTGRES_PASSWORD": "wrong-pw"}
    result = job_runner.execute("ftp_logs_job", **env)
    assert_failed_once_for_good(result, "POSTGRES_USER/POSTGRES_PASSWORD")
    assert "wrong-pw" not in result.output


def test_missing_ftp_directory_fails_at_once_naming_ftp_dir(job_runner: JobRunner, ftp_env) -> None:
    result = job_runner.execute("ftp_logs_job", **{**ftp_env, "FTP_DIR": "/no/such/dir"})
    assert_failed_once_for_good(result, "FTP_DIR")


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"MYSQL_PASSWORD": "not-the-password"}, "MYSQL_USER/MYSQL_PASSWORD"),
        ({"MYSQL_DB": "sa_no_such_db"}, "MYSQL_DB"),
    ],
)
def test_mysql_refusal_fails_at_once_naming_the_variable(
    job_runner: JobRunner,
    mysql_source: MySQLSource,
    pg_server: ServerInfo,
    pg_dbname: str,
    change: dict[str, str],
    names: str,
) -> None:
    env = {**mysql_source.env(), **pg_env(pg_server, pg_dbname), **change}
    result = job_runner.execute("mysql_sync_job", **env)
    assert_failed_once_for_good(result, names)
    assert "not-the-password" not in result.output


def test_config_error_at_run_time_fails_at_once_naming_the_option(
    job_runner: JobRunner, mysql_source: MySQLSource, pg_server: ServerInfo, pg_dbname: str
) -> None:
    config = job_runner.workdir / "sync_assets.yaml"
    config.write_text("mysql:\n  tables:\n    machines:\n      cursor_column: updated_at\n")
    env = {**mysql_source.env(), **pg_env(pg_server, pg_dbname)}
    result = job_runner.execute("mysql_sync_job", **env, SYNC_ASSETS_CONFIG=str(config))
    assert_failed_once_for_good(result, "mysql.tables.machines.cursor_column")


def test_delete_guard_fails_at_once_naming_max_delete_fraction(
    job_runner: JobRunner, mysql_source: MySQLSource, pg_server: ServerInfo, pg_dbname: str
) -> None:
    env = {**mysql_source.env(), **pg_env(pg_server, pg_dbname)}
    env["MYSQL_TARGET_SCHEMA"] = f"ops_{mysql_source.database[-6:]}"
    first = job_runner.execute("mysql_sync_job", **env)
    assert first.returncode == 0, first.output[-2000:]
    mysql_source.execute("DELETE FROM machines WHERE id > 1")  # 2 of 3 rows: over the 50%
    result = job_runner.execute("mysql_sync_job", **env)
    assert_failed_once_for_good(result, "max_delete_fraction")


@pytest.mark.parametrize(
    "exc",
    [
        ConfigError("x"),
        DeleteGuardError("x"),
        UnsupportedTypeError("x"),
        SourceRefusedError("x"),
        ftplib.error_perm("550 No such directory"),
        pymysql.err.OperationalError(1142, "SELECT command denied to user"),
        psycopg.errors.InsufficientPrivilege("permission denied for schema legacy"),
        dg.Failure("x", allow_retries=False),
    ],
)
def test_permanent_causes_are_classified_permanent(exc: BaseException) -> None:
    assert errors.is_permanent(exc)


@pytest.mark.parametrize(
    "exc",
    [
        SourceUnavailableError("x"),
        ConnectionResetError(),
        TimeoutError(),
        dg.Failure("x"),
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    ],
)
def test_transient_causes_are_classified_transient(exc: BaseException) -> None:
    assert not errors.is_permanent(exc)


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and its children (the run's step runs in a child)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def test_transient_failure_is_retried_and_the_pause_uses_no_cpu(
    job_runner: JobRunner, ftp_env, tmp_path: Path
) -> None:
    """FTP down (nothing listens on its port): the step is retried after a pause, and while
    it waits the run's processes stay idle (before: the executor spun a core throughout)."""
    env = job_runner.env(**{**ftp_env, "FTP_PORT": str(free_port())})
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen(
        job_runner.command("ftp_logs_job"), cwd=job_runner.workdir, env=env, stdout=log,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "retry 1 of" not in Path(log.name).read_text():
            assert proc.poll() is None, Path(log.name).read_text()[-2000:]
            assert time.monotonic() < deadline, "no retry announced"
            time.sleep(0.2)
        process = psutil.Process(proc.pid)
        before = _cpu_seconds(process)
        time.sleep(5)  # inside the first pause (at least 11 s)
        spent = _cpu_seconds(process) - before
        assert spent < 1.0, f"{spent:.2f} s of CPU in 5 s of waiting"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    text = Path(log.name).read_text()
    assert "(check FTP_HOST/FTP_PORT/FTP_TLS)" in text  # the transient message, retried
