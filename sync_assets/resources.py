"""Dagster resources for the three servers, configured from the old container's variables.

Secrets are bound with `dg.EnvVar`, so the UI shows the variable's name, never its value, and
every repr masks them. Nothing here connects at import or at definitions load: a connection is
opened only when an asset asks for one, and a failure names the server and the variable to
check, with any secret redacted from the driver's message.

A little over 400 lines: the three resources share one base (secret masking, `from_env()`,
the `*_FILE` secrets) and the TLS helpers they use; split apart, each would import the rest.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import dagster as dg
import psycopg
import pymysql

from sync_assets.core.errors import PermanentError, mysql_refused, postgres_refused
from sync_assets.core.secrets import read_secret_file, redact
from sync_assets.core.settings import (
    ConfigError,
    env_or,
    parse_bool,
    parse_choice,
    parse_int,
    postgres_params,
    require,
    secret_setting,
)

CONNECT_TIMEOUT_SECONDS = 15
# Variables added for SFTP (not the old container's): optional, FTP unless FTP_PROTOCOL=sftp.
SFTP_VARIABLES = frozenset({
    "FTP_PROTOCOL", "FTP_KEY_FILE", "FTP_KEY_PASSPHRASE", "FTP_KNOWN_HOSTS",
    "FTP_HOST_KEY_FINGERPRINT",
})  # fmt: skip
# Variables added for TLS, secret files and SFTP (not the old container's): optional, each
# with a safe default, so a deployment passes only those it uses.
SECURITY_VARIABLES = frozenset({  # one line per server
    "POSTGRES_PASSWORD_FILE", "POSTGRES_SSLMODE", "POSTGRES_SSLROOTCERT",
    "MYSQL_PASSWORD_FILE", "MYSQL_SSL_MODE", "MYSQL_SSL_CA",
    "FTP_PASS_FILE", "FTP_TLS_VERIFY", "FTP_TLS_CA_FILE",
}) | SFTP_VARIABLES  # fmt: skip
FTP_PROTOCOLS = ("ftp", "sftp")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MYSQL_SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")


class SourceUnavailableError(RuntimeError):
    """A server could not be reached or refused us; the message carries no secret."""


@functools.lru_cache(maxsize=16)
def tls_client_context(
    ca_variable: str, ca_file: str, *, verify: bool = True, check_hostname: bool = True
) -> ssl.SSLContext:
    """A client TLS context: the system trust store, or only the CAs in `ca_file` when set.

    Cached per process (loading the system store per connection is slow: docs/performance.md);
    SSLContext objects are safe to share between connections and threads.
    """
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{ca_variable}={ca_file!r}: cannot load CA certificates from it ({exc})"
        ) from None
    context.check_hostname = check_hostname
    return context


class SourceRefusedError(SourceUnavailableError, PermanentError):
    """The server answered and refused the login or the database: retrying cannot help."""


def _tls_refused(exc: BaseException, variables: str) -> str | None:
    """The variables to check when the server's certificate failed verification (permanent
    until the operator changes the CA, the host name or the mode), else None."""
    return variables if "certificate verify failed" in str(exc).lower() else None


class _MySQLConnection(pymysql.connections.Connection):
    """A pymysql connection whose preferred-mode TLS context loads no CA store.

    Without TLS options pymysql still builds an SSL context for every connection (TLS when the
    server offers it, the certificate unchecked), loading the system CA store each time for
    nothing: about 20 ms of every run's first connection (docs/performance.md). Here that case
    takes the project's own unverifying context (no host name check, CERT_NONE, TLS 1.2 at
    least, built once per process); explicit TLS options go pymysql's way."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if not (isinstance(sslp, dict) and not sslp):
            return super()._create_ssl_ctx(sslp)
        return tls_client_context("MYSQL_SSL_CA", "", verify=False)


class _SecretAwareResource(dg.ConfigurableResource):
    """Base class: masks secret fields in repr and maps fields to their variables."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})
    env_names: ClassVar[dict[str, str]] = {}
    # Fields with no usable default: a run that needs one unset fails, naming its variable.
    required_fields: ClassVar[frozenset[str]] = frozenset({"host", "user"})

    @classmethod
    def from_env(cls, *, resolved: bool = False, **defaults: str) -> Self:
        """The resource bound to its variables; the fields' defaults are the only defaults.

        For the code location (`resolved=False`): `dg.EnvVar` for each variable that is set
        and each required one (the UI shows the name, never the value; an unset required
        variable fails only the run that needs it), the field's default otherwise, so the
        location loads with nothing set. Operator commands outside Dagster take the values
        now (`resolved=True`). `defaults` replace fields' defaults (the demo's database).
        """
        values: dict[str, Any] = {}
        for field, env_name in cls.env_names.items():
            default = defaults.get(field, cls.model_fields[field].default)
            if resolved:
                values[field] = os.environ.get(env_name, default)
            elif field in cls.required_fields and field not in defaults:
                values[field] = dg.EnvVar(env_name)
            else:
                values[field] = env_or(env_name, default)
        return cls(**values)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self.secret_fields and value else value)

    def _secrets(self) -> list[str]:
        """Every secret value to mask: the fields, and the content of a `*_FILE` secret."""
        values = [getattr(self, name) for name in self.secret_fields if getattr(self, name, None)]
        file_path = getattr(self, "password_file", "")
        if file_path:
            # Unreadable: then nothing from it can appear in a message either.
            with contextlib.suppress(ValueError):
                values.append(read_secret_file(self.env_names["password_file"], file_path))
        return values

    @property
    def secret(self) -> str:
        """The password, from its variable or from the file named by its `*_FILE` variable."""
        return secret_setting(
            self.env_names["password"], self.password, getattr(self, "password_file", "")
        )

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
    password_file: str = ""
    sslmode: str = ""
    sslrootcert: str = ""
    application_name: str = "sync_assets"

    required_fields: ClassVar[frozenset[str]] = frozenset({"host", "database", "user"})
    env_names: ClassVar[dict[str, str]] = {
        "host": "POSTGRES_HOST",
        "port": "POSTGRES_PORT",
        "database": "POSTGRES_DB",
        "user": "POSTGRES_USER",
        "password": "POSTGRES_PASSWORD",
        "password_file": "POSTGRES_PASSWORD_FILE",
        "sslmode": "POSTGRES_SSLMODE",
        "sslrootcert": "POSTGRES_SSLROOTCERT",
    }

    def conninfo(self) -> dict[str, Any]:
        """libpq parameters; the same function builds those of Dagster's own storage."""
        params = postgres_params(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            password_file=self.password_file,
            sslmode=self.sslmode,
            sslrootcert=self.sslrootcert,
        )
        params.update(
            dbname=self._required("database"),
            application_name=self.application_name,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        return params

    def describe(self) -> str:
        """Where we write, for messages and metadata: never includes the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        params = self.conninfo()
        try:
            return psycopg.connect(autocommit=autocommit, **params)
        except psycopg.Error as exc:
            reason = redact(str(exc), self._secrets())
            refused = postgres_refused(exc) or _tls_refused(
                exc, "POSTGRES_SSLMODE/POSTGRES_SSLROOTCERT/POSTGRES_HOST"
            )
            error = SourceRefusedError if refused else SourceUnavailableError
            check = refused or (
                "POSTGRES_HOST/POSTGRES_PORT/POSTGRES_USER/POSTGRES_PASSWORD[_FILE]"
                "/POSTGRES_SSLMODE/POSTGRES_SSLROOTCERT"
            )
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
    password_file: str = ""
    ssl_mode: str = ""
    ssl_ca: str = ""

    required_fields: ClassVar[frozenset[str]] = frozenset({"host", "database", "user"})
    env_names: ClassVar[dict[str, str]] = {
        "host": "MYSQL_HOST",
        "port": "MYSQL_PORT",
        "database": "MYSQL_DB",
        "user": "MYSQL_USER",
        "password": "MYSQL_PASSWORD",
        "password_file": "MYSQL_PASSWORD_FILE",
        "ssl_mode": "MYSQL_SSL_MODE",
        "ssl_ca": "MYSQL_SSL_CA",
    }

    @property
    def tls_mode(self) -> str:
        """MYSQL_SSL_MODE with MySQL's own client meanings (`--ssl-mode`)."""
        return parse_choice("MYSQL_SSL_MODE", self.ssl_mode, MYSQL_SSL_MODES, "preferred")

    def tls_options(self) -> dict[str, Any]:
        """pymysql's TLS arguments for MYSQL_SSL_MODE / MYSQL_SSL_CA.

        PREFERRED (no options) keeps pymysql's own behaviour: TLS when the server offers it,
        certificate unchecked. Any SSLContext passed as `ssl` makes pymysql refuse a server
        that does not offer TLS, before the password is sent.
        """
        mode = self.tls_mode
        if self.ssl_ca and mode in ("disabled", "preferred", "required"):
            raise ConfigError(  # a CA that is silently not checked would be a false comfort
                f"MYSQL_SSL_CA is set but MYSQL_SSL_MODE is {mode.upper()}: it would not be"
                " used (set MYSQL_SSL_MODE=VERIFY_CA or VERIFY_IDENTITY)"
            )
        if mode == "disabled":
            return {"ssl_disabled": True}
        if mode == "preferred":
            return {}
        return {
            "ssl": tls_client_context(
                "MYSQL_SSL_CA",
                self.ssl_ca,
                verify=mode != "required",
                check_hostname=mode == "verify_identity",
            )
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
            "password": self.secret,
            "charset": "utf8mb4",
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "init_command": "SET time_zone = '+00:00'",
            "autocommit": True,
        }
        params.update(self.tls_options())
        params.update(overrides)
        try:
            return _MySQLConnection(**params)
        except pymysql.MySQLError as exc:
            refused = mysql_refused(exc) or _tls_refused(exc, "MYSQL_SSL_MODE/MYSQL_SSL_CA")
            error = SourceRefusedError if refused else SourceUnavailableError
            check = refused or (
                "MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_PASSWORD[_FILE]/MYSQL_SSL_MODE/MYSQL_SSL_CA"
            )
            raise error(
                f"cannot connect to MySQL {self.describe()}: {redact(str(exc), self._secrets())}"
                f" (check {check})"
            ) from None


class FTPResource(_SecretAwareResource):
    """The FTP (or SFTP, FTP_PROTOCOL=sftp) server where the machines drop their log files."""

    protocol: str = "ftp"
    host: str = ""
    port: str = ""  # 21, 990 with FTP_TLS=implicit, 22 with FTP_PROTOCOL=sftp
    user: str = ""
    password: str = ""
    password_file: str = ""
    directory: str = "/"
    tls: str = "false"
    tls_verify: str = "true"
    tls_ca_file: str = ""
    delete_after_sync: str = "false"
    timeout_seconds: str = "60"
    encoding: str = "utf-8"
    key_file: str = ""
    key_passphrase: str = ""
    known_hosts: str = ""
    host_key_fingerprint: str = ""
    list_time_offset: str = "auto"  # zone of LIST-only servers' listings (ftp/listtime.py)

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password", "key_passphrase"})
    env_names: ClassVar[dict[str, str]] = {
        "protocol": "FTP_PROTOCOL",
        "host": "FTP_HOST",
        "port": "FTP_PORT",
        "user": "FTP_USER",
        "password": "FTP_PASS",
        "password_file": "FTP_PASS_FILE",
        "directory": "FTP_DIR",
        "tls": "FTP_TLS",
        "tls_verify": "FTP_TLS_VERIFY",
        "tls_ca_file": "FTP_TLS_CA_FILE",
        "delete_after_sync": "DELETE_AFTER_SYNC",
        "timeout_seconds": "FTP_TIMEOUT",
        "encoding": "FTP_ENCODING",
        "key_file": "FTP_KEY_FILE",
        "key_passphrase": "FTP_KEY_PASSPHRASE",
        "known_hosts": "FTP_KNOWN_HOSTS",
        "host_key_fingerprint": "FTP_HOST_KEY_FINGERPRINT",
        "list_time_offset": "FTP_LIST_TIME_OFFSET",
    }

    def describe(self) -> str:
        scheme = "sftp" if (self.protocol or "").strip().lower() == "sftp" else "ftp"
        implicit = (self.tls or "").strip().lower() == "implicit"
        port = self.port or ("22" if scheme == "sftp" else "990" if implicit else "21")
        return f"{scheme}://{self.user}@{self.host}:{port}{self.directory}"

    @property
    def transfer_protocol(self) -> str:
        """FTP_PROTOCOL: `ftp` (plain or FTPS, see FTP_TLS) or `sftp` (SSH file transfer)."""
        protocol = parse_choice("FTP_PROTOCOL", self.protocol, FTP_PROTOCOLS, "ftp")
        if protocol == "sftp" and self.tls_mode != "off":
            raise ConfigError(  # SSH encrypts by itself; a TLS setting would be a false comfort
                f"FTP_TLS={self.tls!r} applies to FTP only; with FTP_PROTOCOL=sftp leave it unset"
            )
        return protocol

    @property
    def is_sftp(self) -> bool:
        return self.transfer_protocol == "sftp"

    @property
    def host_name(self) -> str:
        return self._required("host")

    @property
    def port_number(self) -> int:
        if self.is_sftp:
            return self._int("port", 22)
        return self._int("port", 990 if self.tls_mode == "implicit" else 21)

    @property
    def known_hosts_path(self) -> str:
        """FTP_KNOWN_HOSTS, `~` expanded (OpenSSH's known_hosts format)."""
        return str(Path(self.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser())

    @property
    def login_user(self) -> str:
        return self._required("user")

    @property
    def tls_mode(self) -> str:
        """FTP_TLS: false (plain FTP), true/explicit (AUTH TLS on port 21), implicit (990)."""
        word = (self.tls or "").strip().lower()
        if word in ("explicit", "implicit"):
            return word
        try:
            return "explicit" if parse_bool("FTP_TLS", word) else "off"
        except ConfigError:
            raise ConfigError(
                f"FTP_TLS must be false, true (= explicit), explicit or implicit, got {self.tls!r}"
            ) from None

    @property
    def use_tls(self) -> bool:
        return self.tls_mode != "off"

    @property
    def verify_tls(self) -> bool:
        return parse_bool("FTP_TLS_VERIFY", self.tls_verify, default=True)

    def tls_context(self) -> ssl.SSLContext:
        """The context for the control and the data connections (both verified alike)."""
        verify = self.verify_tls
        if self.tls_ca_file and not verify:
            raise ConfigError("FTP_TLS_CA_FILE is set but FTP_TLS_VERIFY=false: choose one")
        return tls_client_context("FTP_TLS_CA_FILE", self.tls_ca_file, verify=verify)

    @property
    def should_delete_after_sync(self) -> bool:
        return parse_bool("DELETE_AFTER_SYNC", self.delete_after_sync)

    @property
    def timeout(self) -> int:
        return self._int("timeout_seconds", 60)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets())


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, bound to the environment (no I/O)."""
    return {
        "postgres": PostgresResource.from_env(),
        "mysql": MySQLResource.from_env(),
        "ftp": FTPResource.from_env(),
    }
