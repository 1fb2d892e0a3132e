"""Both jobs end to end with the least privileges the README grants: a PostgreSQL role that is
not a superuser, may only create schemas in the data database (and then owns just those), and
a MySQL user with SELECT on the legacy database only, its password read from a file."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from psycopg import sql

from sync_assets.definitions import build_definitions
from sync_assets.devtools.demo_legacy import DEMO_TABLES, seed_legacy
from sync_assets.devtools.demo_machines import MachineSimulator
from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
    mysql_admin_connect,
    pg_admin_connect,
)

pytestmark = pytest.mark.slow

# Dagster's storage in PostgreSQL as the same role, connected like the sync (TLS, password file).
INSTANCE_YAML = """
storage:
  custom:
    module: sync_assets.core.instance_storage
    class: SyncAssetsStorage
"""
SYNC_SCHEMAS = {"legacy", "machine_logs", "sync_meta"}  # the default target schemas


@dataclass(frozen=True)
class Roles:
    pg_role: str
    pg_database: str
    mysql_user: str
    mysql_database: str


def _grant_postgres(server: ServerInfo, database: str, role: str, password: str) -> None:
    """The README's PostgreSQL grants, word for word."""
    with pg_admin_connect(server) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        conn.execute(  # Dagster's storage: a database of its own, owned by the same role
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(f"{database}_dagster"), sql.Identifier(role)
            )
        )
    with pg_admin_connect(server, database) as conn:  # PostgreSQL < 15 lets PUBLIC create here
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def _grant_mysql(server: ServerInfo, database: str, user: str, password: str) -> None:
    """The README's MySQL grants, word for word."""
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT SELECT ON `{database}`.* TO %s@'%%'", (user,))


@pytest.fixture(scope="module")
def roles(pg_server: ServerInfo, mysql_server: ServerInfo) -> Iterator[Roles]:
    suffix = secrets.token_hex(3)
    pg_database = create_pg_database(pg_server, "sa_lp_data")
    mysql_database = create_mysql_database(mysql_server, "sa_lp_legacy")
    with mysql_admin_connect(mysql_server, mysql_database) as conn:
        seed_legacy(conn)
    found = Roles(f"sa_lp_{suffix}", pg_database, f"sa_lp_{suffix}", mysql_database)
    yield found
    drop_pg_database(pg_server, pg_database)
    drop_pg_database(pg_server, f"{pg_database}_dagster")
    with pg_admin_connect(pg_server) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(found.pg_role)))
    drop_mysql_database(mysql_server, mysql_database)
    with mysql_admin_connect(mysql_server) as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (found.mysql_user,))


def test_both_jobs_run_with_least_privileges(
    roles: Roles,
    pg_server: ServerInfo,
    mysql_server: ServerInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_password, mysql_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    _grant_postgres(pg_server, roles.pg_database, roles.pg_role, pg_password)
    _grant_mysql(mysql_server, roles.mysql_database, roles.mysql_user, mysql_password)
    for name, value in (("pg", pg_password), ("mysql", mysql_password)):
        (tmp_path / name).write_text(value + "\n", encoding="utf-8")

    ftp_root = tmp_path / "ftp"
    MachineSimulator(ftp_root).step()
    ftp = start_ftp_server(ftp_root)
    environment = {
        "POSTGRES_HOST": pg_server.host, "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_USER": roles.pg_role, "POSTGRES_PASSWORD_FILE": str(tmp_path / "pg"),
        "POSTGRES_DB": roles.pg_database,
        "MYSQL_HOST": mysql_server.host, "MYSQL_PORT": str(mysql_server.port),
        "MYSQL_USER": roles.mysql_user, "MYSQL_PASSWORD_FILE": str(tmp_path / "mysql"),
        "MYSQL_DB": roles.mysql_database, "MYSQL_TABLES": ",".join(DEMO_TABLES),
        "FTP_HOST": ftp.host, "FTP_PORT": str(ftp.port), "FTP_USER": ftp.user,
        "FTP_PASS": ftp.password, "FTP_DIR": "/",
        "SYNC_ASSETS_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_PG_DB": f"{roles.pg_database}_dagster",
    }  # fmt: skip
    for name in ("POSTGRES_PASSWORD", "MYSQL_PASSWORD", "FTP_PASS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    try:
        defs = build_definitions()
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for job in ("mysql_sync_job", "ftp_logs_job"):
                result = defs.resolve_job_def(job).execute_in_process(instance=instance)
                assert result.success, job
    finally:
        ftp.stop()

    with pg_admin_connect(pg_server, roles.pg_database) as conn:
        owned_schemas = {
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspowner = %s::regrole", (roles.pg_role,)
            )
        }
        outside = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relowner = %s::regrole AND NOT n.nspname = ANY(%s)",
            (roles.pg_role, [*owned_schemas, "pg_toast"]),  # TOAST tables live in pg_toast
        ).fetchone()[0]
        legacy_rows = conn.execute("SELECT count(*) FROM legacy.orders").fetchone()[0]
        log_tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'machine_logs'"
        ).fetchone()[0]
        superuser = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (roles.pg_role,)
        ).fetchone()[0]
    # Its own schemas (plus the MySQL side's staging schema next to `legacy`), nothing else.
    assert owned_schemas >= SYNC_SCHEMAS
    assert all(s.split("_sync_staging")[0] in SYNC_SCHEMAS for s in owned_schemas)
    assert outside == 0
    assert legacy_rows > 0 and log_tables > 0
    assert superuser is False
    with pg_admin_connect(pg_server, f"{roles.pg_database}_dagster") as conn:
        runs, owner = conn.execute(
            "SELECT (SELECT count(*) FROM runs), tableowner FROM pg_tables WHERE tablename = 'runs'"
        ).fetchone()
    assert (runs, owner) == (2, roles.pg_role)
