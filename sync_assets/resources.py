"""Dagster resources for the three servers, configured from the old container's variables.

Secrets are bound with `dg.EnvVar`, so the UI shows the variable's name, never its value, and
every repr masks them. Nothing here connects at import or at definitions load: a connection is
opened only when an asset asks for one, and a failure names the server and the variable to
check, with any secret redacted from the driver's message.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import dagster as dg
import psycopg
import pymysql

from sync_assets.core.errors import PermanentError, mysql_refused, postgres_refused
from sync_assets.core.secrets import redact
from sync_assets.core.settings import env_or, parse_bool, parse_int, require

CONNECT_TIMEOUT_SECONDS = 15


class SourceUnavailableError(RuntimeError):
    """A server could not be reached or refused us; the message carries no secret."""


class SourceRefusedError(SourceUnavailableError, PermanentError):
    """The server answered and refused the login or the database: retrying cannot help."""


class _MySQLConnection(pymysql.connections.Connection):
    """A pymysql connection sharing one preferred-mode TLS context per process.

    Without TLS options pymysql still builds an SSL context for every connection (TLS when the
    server offers it), loading the system CA store each time: about 40 ms, as much as a small
    incremental read. The shared context is the one pymysql built first, so its settings are
    exactly pymysql's; SSLContext objects are safe to share between connections and threads."""

    _preferred_context: ClassVar[ssl.SSLContext | None] = None

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if not (isinstance(sslp, dict) and not sslp):  # explicit TLS options: pymysql's way
            return super()._create_ssl_ctx(sslp)
        cls = type(self)
        if cls._preferred_context is None:
            cls._preferred_context = super()._create_ssl_ctx(sslp)
        return cls._preferred_context


class _SecretAwareResource(dg.ConfigurableResource):
    """Base class: masks secret fields in repr and maps fields to their variables."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})
    env_names: ClassVar[dict[str, str]] = {}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self.secret_fields and value else value)

    def _secrets(self) -> list[str]:
        return [getattr(self, name) for name in self.secret_fields if getattr(self, name, None)]

    def _required(self, field: str) -> str:
        return require(self.env_names.get(field, field), getattr(self, field))

    def _int(self, field: str, default: int) -> int:
        return parse_int(self.env_names.get(field, field), getattr(self, field), default, 1)


class PostgresResource(_SecretAwareResource):
    """The PostgreSQL database that receives the synced data (not Dagster's own storage)."""

    host: str = ""
    port: str = "5432"
    database: str = ""
    user: str = ""
    password: str = ""
    application_name: str = "sync_assets"

    env_names: ClassVar[dict[str, str]] = {
        "host": "POSTGRES_HOST",
        "port": "POSTGRES_PORT",
        "database": "POSTGRES_DB",
        "user": "POSTGRES_USER",
        "password": "POSTGRES_PASSWORD",
    }

    def conninfo(self) -> dict[str, Any]:
        return {
            "host": self._required("host"),
            "port": self._int("port", 5432),
            "dbname": self._required("database"),
            "user": self._required("user"),
            "password": self.password or None,
            "application_name": self.application_name,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        }

    def describe(self) -> str:
        """Where we write, for messages and metadata: never includes the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        params = self.conninfo()
        try:
            return psycopg.connect(autocommit=autocommit, **params)
        except psycopg.Error as exc:
            reason = redact(str(exc), self._secrets())
            refused = postgres_refused(exc)
            error = SourceRefusedError if refused else SourceUnavailableError
            check = refused or "POSTGRES_HOST/POSTGRES_PORT/POSTGRES_USER/POSTGRES_PASSWORD"
            raise error(
                f"cannot connect to PostgreSQL {self.describe()}: {reason} (check {check})"
            ) from None

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        conn = self.connect(autocommit=autocommit)
        try:
            yield conn
        finally:
            conn.close()


class MySQLResource(_SecretAwareResource):
    """The legacy MySQL/MariaDB database that is copied. Sessions run in UTC."""

    host: str = ""
    port: str = "3306"
    database: str = ""
    user: str = ""
    password: str = ""

    env_names: ClassVar[dict[str, str]] = {
        "host": "MYSQL_HOST",
        "port": "MYSQL_PORT",
        "database": "MYSQL_DB",
        "user": "MYSQL_USER",
        "password": "MYSQL_PASSWORD",
    }

    def describe(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, **overrides: Any) -> pymysql.connections.Connection:
        """A connection in UTC, utf8mb4; `overrides` lets callers pick cursor class / converters."""
        params: dict[str, Any] = {
            "host": self._required("host"),
            "port": self._int("port", 3306),
            "database": self._required("database"),
            "user": self._required("user"),
            "password": self.password or "",
            "charset": "utf8mb4",
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "init_command": "SET time_zone = '+00:00'",
            "autocommit": True,
        }
        params.update(overrides)
        try:
            return _MySQLConnection(**params)
        except pymysql.MySQLError as exc:
            refused = mysql_refused(exc)
            error = SourceRefusedError if refused else SourceUnavailableError
            raise error(
                f"cannot connect to MySQL {self.describe()}: {redact(str(exc), self._secrets())}"
                f" (check {refused or 'MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_PASSWORD'})"
            ) from None


class FTPResource(_SecretAwareResource):
    """The FTP server where the machines drop their log files."""

    host: str = ""
    port: str = "21"
    user: str = ""
    password: str = ""
    directory: str = "/"
    tls: str = "false"
    delete_after_sync: str = "false"
    timeout_seconds: str = "60"
    encoding: str = "utf-8"

    env_names: ClassVar[dict[str, str]] = {
        "host": "FTP_HOST",
        "port": "FTP_PORT",
        "user": "FTP_USER",
        "password": "FTP_PASS",
        "directory": "FTP_DIR",
        "tls": "FTP_TLS",
        "delete_after_sync": "DELETE_AFTER_SYNC",
        "timeout_seconds": "FTP_TIMEOUT",
        "encoding": "FTP_ENCODING",
    }

    def describe(self) -> str:
        return f"ftp://{self.user}@{self.host}:{self.port}{self.directory}"

    @property
    def host_name(self) -> str:
        return self._required("host")

    @property
    def port_number(self) -> int:
        return self._int("port", 21)

    @property
    def login_user(self) -> str:
        return self._required("user")

    @property
    def use_tls(self) -> bool:
        return parse_bool("FTP_TLS", self.tls)

    @property
    def should_delete_after_sync(self) -> bool:
        return parse_bool("DELETE_AFTER_SYNC", self.delete_after_sync)

    @property
    def timeout(self) -> int:
        return self._int("timeout_seconds", 60)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets())


def _bind(resource_cls: type[_SecretAwareResource], **defaults: Any) -> dict[str, Any]:
    """Field values for a resource: `EnvVar` for each variable that is set, or the default.

    Required variables are always bound as `EnvVar`, so a run that needs an unset one fails
    with Dagster's message naming it; the code location itself loads with nothing set.
    """
    values: dict[str, Any] = {}
    for field, env_name in resource_cls.env_names.items():
        if field in defaults:
            values[field] = env_or(env_name, defaults[field])
        else:
            values[field] = dg.EnvVar(env_name)
    return values


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, bound to the environment (no I/O)."""
    return {
        "postgres": PostgresResource(**_bind(PostgresResource, port="5432", password="")),
        "mysql": MySQLResource(**_bind(MySQLResource, port="3306", password="")),
        "ftp": FTPResource(
            **_bind(
                FTPResource,
                port="21",
                password="",
                directory="/",
                tls="false",
                delete_after_sync="false",
                timeout_seconds="60",
                encoding="utf-8",
            )
        ),
    }
