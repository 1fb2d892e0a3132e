"""Dagster's own storage from the old container's variables only, and `dagster dev` out of the box.

Real PostgreSQL: a role owning its database (what the old container's postgres image gives),
no other privilege, no POSTGRES_PORT, no DAGSTER_PG_DB.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value

from sync_assets.core import instance_storage
from sync_assets.core.settings import ConfigError
from sync_assets.devtools.demo_stack import wait_for_http
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets_tests.support import create_owned_database, drop_owned_database

REPO_ROOT = Path(__file__).resolve().parents[2]
OLD = {
    "POSTGRES_HOST": "db",
    "POSTGRES_USER": "sync",
    "POSTGRES_PASSWORD": "pw",
    "POSTGRES_DB": "d",
}


def test_only_the_old_variables_give_port_5432_and_a_schema_in_postgres_db() -> None:
    conn = instance_storage.connection_settings(OLD)
    assert conn is not None
    assert (conn.host, conn.port, conn.database, conn.schema) == ("db", 5432, "d", "dagster")
    assert "pw" not in repr(conn)


def test_dagster_pg_db_keeps_the_earlier_layout() -> None:
    conn = instance_storage.connection_settings({**OLD, "DAGSTER_PG_DB": "dagster"})
    assert conn is not None and (conn.database, conn.schema) == ("dagster", None)


def test_no_postgres_host_means_local_sqlite_and_bad_values_name_the_variable() -> None:
    assert instance_storage.connection_settings({}) is None
    with pytest.raises(ConfigError, match="POSTGRES_PORT"):
        instance_storage.connection_settings({**OLD, "POSTGRES_PORT": "x"})
    with pytest.raises(ConfigError, match="DAGSTER_PG_SCHEMA"):
        instance_storage.connection_settings({**OLD, "DAGSTER_PG_SCHEMA": 'a"; drop'})


@pytest.fixture
def owned_database(pg_server: ServerInfo) -> Iterator[dict[str, str]]:
    """A login role with a password owning one database: the old container's variables."""
    name = f"sa_inst_{os.getpid()}_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    create_owned_database(pg_server, name, password)
    yield {
        "POSTGRES_HOST": pg_server.host, "POSTGRES_USER": name,
        "POSTGRES_PASSWORD": password, "POSTGRES_DB": name,
    }  # fmt: skip
    drop_owned_database(pg_server, name)


@dg.asset
def probe_asset() -> int:
    return 1


def _instance_from_repo_yaml(home: Path) -> DagsterInstance:
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def test_old_variables_alone_store_runs_in_the_dagster_schema(
    owned_database: dict[str, str], monkeypatch, tmp_path: Path, pg_server: ServerInfo
) -> None:
    for name in ("POSTGRES_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in owned_database.items():
        monkeypatch.setenv(name, value)
    if pg_server.port != 5432:  # the default port is the point; only a throwaway server differs
        monkeypatch.setenv("POSTGRES_PORT", str(pg_server.port))
    with _instance_from_repo_yaml(tmp_path) as instance:
        assert dg.materialize([probe_asset], instance=instance).success
        assert instance.get_runs_count() == 1
        ref = serialize_value(instance.get_ref())
    assert owned_database["POSTGRES_PASSWORD"] not in ref  # travels on run workers' command lines
    with psycopg.connect(
        host=pg_server.host, port=pg_server.port, user=owned_database["POSTGRES_USER"],
        password=owned_database["POSTGRES_PASSWORD"], dbname=owned_database["POSTGRES_DB"],
    ) as conn:  # fmt: skip
        schemas = {
            row[0]
            for row in conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'runs'"
            )
        }
    assert schemas == {"dagster"}


def test_no_postgres_host_uses_sqlite_in_dagster_home(monkeypatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("POSTGRES_") or name == "DAGSTER_PG_DB":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with _instance_from_repo_yaml(tmp_path) as instance:
        assert dg.materialize([probe_asset], instance=instance).success
    assert (tmp_path / "storage" / "history" / "runs.db").is_file()


@pytest.mark.slow
def test_dagster_dev_in_a_copy_of_the_repo_root_serves_without_postgres(tmp_path: Path) -> None:
    """`dagster dev` as a Dagster user starts it: the root's dagster.yaml and pyproject only."""
    for name in ("dagster.yaml", "pyproject.toml"):
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "DAGSTER_", "MYSQL_", "FTP_", "SYNC_ASSETS_"))
    }
    port = free_port()
    dagster = Path(sys.executable).parent / "dagster"
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, 240)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    assert (tmp_path / ".dagster_home" / "storage").is_dir()
