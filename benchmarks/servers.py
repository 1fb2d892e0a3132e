"""The database servers the benchmark uses, and the client command lines that talk to them.

Defaults are the local servers (127.0.0.1:5432 as `postgres`, 127.0.0.1:3306 as `root`);
BENCH_PG_HOST/PORT/USER/PASSWORD and BENCH_MYSQL_HOST/PORT/USER/PASSWORD point elsewhere on
loopback. When a server does not answer, a throwaway one is started (as the test bed does).
Passwords travel to the clients through PGPASSWORD / MYSQL_PWD, never on a command line.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from sync_assets.devtools.servers import ServerInfo, mariadb_server, postgres_server


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass
class BenchServers:
    pg: ServerInfo
    mysql: ServerInfo

    @classmethod
    def from_env(cls) -> BenchServers:
        pg = postgres_server(
            _env("BENCH_PG_HOST", "127.0.0.1"),
            int(_env("BENCH_PG_PORT", "5432")),
            _env("BENCH_PG_USER", "postgres"),
            _env("BENCH_PG_PASSWORD", ""),
        )
        my = mariadb_server(
            _env("BENCH_MYSQL_HOST", "127.0.0.1"),
            int(_env("BENCH_MYSQL_PORT", "3306")),
            _env("BENCH_MYSQL_USER", "root"),
            _env("BENCH_MYSQL_PASSWORD", ""),
        )
        return cls(pg, my)

    def stop(self) -> None:
        self.pg.stop()
        self.mysql.stop()

    # --- PostgreSQL --------------------------------------------------------------------------

    def pg_conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        return {
            "host": self.pg.host,
            "port": self.pg.port,
            "user": self.pg.user,
            "password": self.pg.password or None,
            "dbname": dbname,
        }

    def pg_connect(self, dbname: str = "postgres") -> psycopg.Connection:
        conn = psycopg.connect(autocommit=True, **self.pg_conninfo(dbname))
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    def create_pg_database(self, label: str) -> str:
        name = f"sa_bench_{label}_{secrets.token_hex(3)}"
        with self.pg_connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_pg_database(self, name: str) -> None:
        with self.pg_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def psql_argv(self, dbname: str, *args: str) -> list[str]:
        return [
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg.host,
            "-p", str(self.pg.port), "-U", self.pg.user, "-d", dbname, *args,
        ]  # fmt: skip

    # --- MariaDB -----------------------------------------------------------------------------

    def mysql_connect(self, database: str | None = None, **overrides: Any) -> pymysql.Connection:
        params: dict[str, Any] = {
            "host": self.mysql.host,
            "port": self.mysql.port,
            "user": self.mysql.user,
            "password": self.mysql.password,
            "database": database,
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": "SET time_zone = '+00:00'",
        }
        params.update(overrides)
        return pymysql.connect(**params)

    def mysql_argv(self, database: str, *args: str) -> list[str]:
        return [
            "mysql", "-h", self.mysql.host, "-P", str(self.mysql.port), "-u", self.mysql.user,
            "--default-character-set=utf8mb4", "--init-command=SET time_zone='+00:00'",
            database, *args,
        ]  # fmt: skip

    # --- the environment of every client process ---------------------------------------------

    def client_env(self) -> dict[str, str]:
        """The caller's environment plus the passwords the clients need, and UTC everywhere."""
        env = dict(os.environ)
        env["PGTZ"] = "UTC"
        env["TZ"] = "UTC"
        if self.pg.password:
            env["PGPASSWORD"] = self.pg.password
        if self.mysql.password:
            env["MYSQL_PWD"] = self.mysql.password
        return env
