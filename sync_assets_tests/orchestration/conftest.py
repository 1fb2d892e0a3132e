"""One real Dagster webserver + daemon per test module, on a PostgreSQL-backed test instance.

The code location sees a seeded demo legacy DB (MariaDB), a real FTP server with machine logs
and a fresh PostgreSQL database for the synced data; Dagster's storage gets its own database.
Schedules start stopped here, so no tick changes data while a test looks at it.
"""

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync_assets.devtools.demo_legacy import DEMO_TABLES, seed_legacy
from sync_assets.devtools.demo_machines import MachineSimulator
from sync_assets.devtools.demo_stack import DagsterStack, graphql, prepare_dagster_home
from sync_assets.devtools.ftp_server import FTPServerHandle, start_ftp_server
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets_tests.conftest import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
    mysql_admin_connect,
)

PROJECT_PREFIXES = ("POSTGRES_", "MYSQL_", "FTP_", "DAGSTER_", "SYNC_ASSETS_", "SCHEDULE")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class E2EEnv:
    stack: DagsterStack
    pg_server: ServerInfo
    data_db: str
    mysql_db: str
    ftp: FTPServerHandle


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}


def _stack_env(pg: ServerInfo, data_db: str, dagster_db: str, mysql: ServerInfo, mysql_db: str,
               ftp: FTPServerHandle, home: Path) -> dict[str, str]:  # fmt: skip
    env = _clean_environ()
    env.update(
        DAGSTER_HOME=str(home),
        SYNC_ASSETS_STATE_DIR=str(home / "state"),
        POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port), POSTGRES_USER=pg.user,
        POSTGRES_PASSWORD=pg.password, POSTGRES_DB=data_db, DAGSTER_PG_DB=dagster_db,
        MYSQL_HOST=mysql.host, MYSQL_PORT=str(mysql.port), MYSQL_USER=mysql.user,
        MYSQL_PASSWORD=mysql.password, MYSQL_DB=mysql_db, MYSQL_TABLES=",".join(DEMO_TABLES),
        FTP_HOST=ftp.host, FTP_PORT=str(ftp.port), FTP_USER=ftp.user, FTP_PASS=ftp.password,
        FTP_DIR="/",
        SCHEDULES_START_STOPPED="true",
    )  # fmt: skip
    return env


@pytest.fixture(scope="module")
def e2e(pg_server: ServerInfo, mysql_server: ServerInfo, tmp_path_factory) -> Iterator[E2EEnv]:
    workdir = tmp_path_factory.mktemp("e2e")
    data_db = create_pg_database(pg_server, "sa_e2e_data")
    dagster_db = create_pg_database(pg_server, "sa_e2e_dagster")
    mysql_db = create_mysql_database(mysql_server, "sa_e2e_legacy")
    with mysql_admin_connect(mysql_server, mysql_db) as conn:
        seed_legacy(conn)
    ftp_root = workdir / "ftp"
    MachineSimulator(ftp_root).step()
    ftp = start_ftp_server(ftp_root)
    home = prepare_dagster_home(workdir / "dagster_home")
    env = _stack_env(pg_server, data_db, dagster_db, mysql_server, mysql_db, ftp, home)
    stack = DagsterStack(env=env, port=free_port(), log_dir=workdir)
    try:
        stack.start()
        # The UI's one-time newsletter dialog would cover the screenshots: mark it seen.
        graphql(stack.url, "mutation { setNuxSeen }")
        yield E2EEnv(stack, pg_server, data_db, mysql_db, ftp)
    finally:
        stack.stop()
        ftp.stop()
        _keep_logs(workdir)
        drop_mysql_database(mysql_server, mysql_db)
        drop_pg_database(pg_server, data_db)
        drop_pg_database(pg_server, dagster_db)


def _keep_logs(workdir: Path) -> None:
    """The webserver/daemon logs go to test-artifacts/ for a look after a failure."""
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("webserver.log", "daemon.log"):
        if (workdir / name).exists():
            shutil.copyfile(workdir / name, ARTIFACTS / f"e2e-{name}")
