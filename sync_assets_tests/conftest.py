"""Test bed: real PostgreSQL, MariaDB and FTP servers on loopback, a fresh database per session.

Servers default to 127.0.0.1 and can be pointed elsewhere on loopback with TEST_PG_HOST,
TEST_PG_PORT, TEST_PG_USER, TEST_PG_PASSWORD, TEST_MYSQL_HOST, TEST_MYSQL_PORT, TEST_MYSQL_USER
and TEST_MYSQL_PASSWORD. When a server does not answer but its binaries are installed, a
throwaway one is started in a temp directory for the session.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from psycopg import sql

from sync_assets.devtools.ftp_server import FTPServerHandle, start_ftp_server
from sync_assets.devtools.servers import ServerInfo, mariadb_server, postgres_server
from sync_assets.devtools.servers import mysql_connect as mysql_admin_connect
from sync_assets.resources import FTPResource, MySQLResource, PostgresResource

REPO_ROOT = Path(__file__).resolve().parents[1]
# MySQL's Sakila sample (BSD licence: the header of sakila-schema.sql), carried with the tests.
SAKILA_DIR = Path(os.environ.get("SAKILA_DIR", Path(__file__).parent / "data" / "sakila"))


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerInfo]:
    server = postgres_server(
        os.environ.get("TEST_PG_HOST", "127.0.0.1"),
        int(os.environ.get("TEST_PG_PORT", "5432")),
        os.environ.get("TEST_PG_USER", "postgres"),
        os.environ.get("TEST_PG_PASSWORD", ""),
    )
    yield server
    server.stop()


def pg_admin_connect(server: ServerInfo, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password or None,
        dbname=dbname,
        autocommit=True,
    )


def create_pg_database(server: ServerInfo, prefix: str = "sa_test") -> str:
    name = _unique_name(prefix)
    with pg_admin_connect(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_pg_database(server: ServerInfo, name: str) -> None:
    with pg_admin_connect(server) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_dbname(pg_server: ServerInfo) -> Iterator[str]:
    name = create_pg_database(pg_server)
    yield name
    drop_pg_database(pg_server, name)


@pytest.fixture(scope="session")
def pg_resource(pg_server: ServerInfo, pg_dbname: str) -> PostgresResource:
    return PostgresResource(
        host=pg_server.host,
        port=str(pg_server.port),
        database=pg_dbname,
        user=pg_server.user,
        password=pg_server.password,
    )


@pytest.fixture
def pg_conn(pg_server: ServerInfo, pg_dbname: str) -> Iterator[psycopg.Connection]:
    with pg_admin_connect(pg_server, pg_dbname) as conn:
        yield conn


# --- MariaDB ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[ServerInfo]:
    server = mariadb_server(
        os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"),
        int(os.environ.get("TEST_MYSQL_PORT", "3306")),
        os.environ.get("TEST_MYSQL_USER", "root"),
        os.environ.get("TEST_MYSQL_PASSWORD", ""),
    )
    yield server
    server.stop()


def create_mysql_database(server: ServerInfo, prefix: str = "sa_test") -> str:
    name = _unique_name(prefix)
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return name


def drop_mysql_database(server: ServerInfo, name: str) -> None:
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mysql_dbname(mysql_server: ServerInfo) -> Iterator[str]:
    name = create_mysql_database(mysql_server)
    yield name
    drop_mysql_database(mysql_server, name)


def make_mysql_resource(server: ServerInfo, database: str) -> MySQLResource:
    return MySQLResource(
        host=server.host,
        port=str(server.port),
        database=database,
        user=server.user,
        password=server.password,
    )


@pytest.fixture(scope="session")
def mysql_resource(mysql_server: ServerInfo, mysql_dbname: str) -> MySQLResource:
    return make_mysql_resource(mysql_server, mysql_dbname)


@pytest.fixture
def mysql_conn(mysql_server: ServerInfo, mysql_dbname: str) -> Iterator[pymysql.Connection]:
    conn = mysql_admin_connect(mysql_server, mysql_dbname)
    yield conn
    conn.close()


def load_sakila(server: ServerInfo, database: str) -> None:
    """Load the Sakila schema and data into `database` with the mariadb client."""
    client = (
        "mariadb"
        if subprocess.run(["which", "mariadb"], capture_output=True).returncode == 0
        else "mysql"
    )
    for part in ("sakila-schema.sql", "sakila-data.sql"):
        text = (SAKILA_DIR / part).read_text(encoding="utf-8")
        # Only the schema name itself is renamed (not e.g. 'sakilacustomer.org' in the data).
        text = re.sub(r"(?<=\s)sakila(?=[;.])", database, text)
        subprocess.run(
            [client, "-h", server.host, "-P", str(server.port), "-u", server.user,
             f"-p{server.password}" if server.password else "--skip-password",
             "--default-character-set=utf8mb4"],
            input=text.encode("utf-8"),
            check=True,
            capture_output=True,
        )  # fmt: skip


@pytest.fixture(scope="session")
def sakila_db(mysql_server: ServerInfo) -> Iterator[str]:
    """A MariaDB database holding MySQL's Sakila sample (16 tables, 47,268 rows)."""
    if not SAKILA_DIR.exists():
        pytest.fail(f"Sakila data not found at {SAKILA_DIR} (set SAKILA_DIR)")
    name = _unique_name("sa_sakila")
    load_sakila(mysql_server, name)
    yield name
    drop_mysql_database(mysql_server, name)


# --- FTP --------------------------------------------------------------------------------------


FTPServerFactory = Callable[..., FTPServerHandle]


@pytest.fixture
def ftp_server_factory(tmp_path: Path) -> Iterator[FTPServerFactory]:
    """Start real pyftpdlib servers: `factory(mlsd=True|False, root=...)`; stopped after."""
    started: list[FTPServerHandle] = []

    def factory(mlsd: bool = True, root: Path | None = None, **kwargs: object) -> FTPServerHandle:
        serve_root = root or tmp_path / f"ftp_root_{len(started)}"
        serve_root.mkdir(parents=True, exist_ok=True)
        handle = start_ftp_server(serve_root, mlsd=mlsd, **kwargs)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture(params=["mlsd", "list_only"])
def ftp_server(
    request: pytest.FixtureRequest, ftp_server_factory: FTPServerFactory
) -> FTPServerHandle:
    """Each test using this runs twice: against an MLSD server and a LIST-only server."""
    return ftp_server_factory(mlsd=request.param == "mlsd")


def make_ftp_resource(handle: FTPServerHandle, **overrides: str) -> FTPResource:
    values = {
        "host": handle.host,
        "port": str(handle.port),
        "user": handle.user,
        "password": handle.password,
        "directory": "/",
    }
    values.update(overrides)
    return FTPResource(**values)
