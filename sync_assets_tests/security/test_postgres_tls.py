"""POSTGRES_SSLMODE / POSTGRES_SSLROOTCERT (libpq's meanings) and POSTGRES_PASSWORD_FILE against
throwaway PostgreSQL clusters that check passwords: one with ssl on (a certificate for 127.0.0.1
from the test CA), one without TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from sync_assets.core.settings import ConfigError, postgres_params_from_env
from sync_assets.devtools.servers import ServerInfo, TLSFiles, start_throwaway_postgres
from sync_assets.resources import PostgresResource, SourceUnavailableError
from sync_assets_tests.security.conftest import PKI, WRONG_HOST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_postgres(pki: PKI) -> Iterator[ServerInfo]:
    tls = TLSFiles(pki.right.cert, pki.right.key, pki.ca.ca_file)
    server = start_throwaway_postgres(tls, password_auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_postgres() -> Iterator[ServerInfo]:
    server = start_throwaway_postgres(password_auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def password_file(tls_postgres: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "pg-password"
    path.write_text(tls_postgres.password + "\n", encoding="utf-8")  # as `echo` writes it
    return path


def _resource(server: ServerInfo, host: str = "", **settings: str) -> PostgresResource:
    return PostgresResource(
        host=host or server.host,
        port=str(server.port),
        database="postgres",
        user=server.user,
        **settings,
    )


def _ssl_in_use(resource: PostgresResource) -> bool:
    with resource.connection() as conn:
        return bool(conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    .fetchone()[0])  # fmt: skip


@pytest.mark.parametrize("mode", ["prefer", "require", "verify-ca", "verify-full"])
def test_modes_connect_over_tls(
    tls_postgres: ServerInfo, password_file: Path, pki: PKI, mode: str
) -> None:
    root = str(pki.ca.ca_file) if mode.startswith("verify") else ""
    resource = _resource(
        tls_postgres, password_file=str(password_file), sslmode=mode, sslrootcert=root
    )
    assert _ssl_in_use(resource)


def test_disable_connects_in_clear(tls_postgres: ServerInfo) -> None:
    resource = _resource(tls_postgres, password=tls_postgres.password, sslmode="disable")
    assert not _ssl_in_use(resource)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_unknown_ca_is_refused(tls_postgres: ServerInfo, pki: PKI, mode: str) -> None:
    resource = _resource(
        tls_postgres,
        password=tls_postgres.password,
        sslmode=mode,
        sslrootcert=str(pki.unknown_ca.ca_file),
    )
    with pytest.raises(SourceUnavailableError, match="certificate verify failed") as refused:
        resource.connect()
    assert "POSTGRES_SSLMODE" in str(refused.value)
    assert "POSTGRES_SSLROOTCERT" in str(refused.value)
    assert tls_postgres.password not in str(refused.value)


def test_wrong_host_name(tls_postgres: ServerInfo, pki: PKI) -> None:
    """The certificate names 127.0.0.1: as `localhost` verify-full refuses, verify-ca accepts."""
    settings = {"password": tls_postgres.password, "sslrootcert": str(pki.ca.ca_file)}
    wrong = _resource(tls_postgres, WRONG_HOST, sslmode="verify-full", **settings)
    with pytest.raises(SourceUnavailableError, match="does not match host name"):
        wrong.connect()
    assert _ssl_in_use(_resource(tls_postgres, WRONG_HOST, sslmode="verify-ca", **settings))


def test_require_refuses_a_server_without_tls(plain_postgres: ServerInfo, pki: PKI) -> None:
    for mode, root in (("require", ""), ("verify-full", str(pki.ca.ca_file))):
        resource = _resource(
            plain_postgres, password=plain_postgres.password, sslmode=mode, sslrootcert=root
        )
        with pytest.raises(SourceUnavailableError, match="server does not support SSL"):
            resource.connect()
    assert not _ssl_in_use(_resource(plain_postgres, password=plain_postgres.password))


def test_wrong_password_file_is_refused_without_echoing_it(
    tls_postgres: ServerInfo, tmp_path: Path
) -> None:
    wrong = "Wrong-" + tls_postgres.password
    path = tmp_path / "pg-password"
    path.write_text(wrong, encoding="utf-8")
    resource = _resource(tls_postgres, password_file=str(path))
    with pytest.raises(SourceUnavailableError, match="password authentication failed") as err:
        resource.connect()
    assert wrong not in str(err.value) and wrong not in repr(resource)


def test_shared_parameters_from_the_environment(
    tls_postgres: ServerInfo, password_file: Path, pki: PKI
) -> None:
    """The one function Dagster's storage and the resource share, used as libpq parameters."""
    env = {
        "POSTGRES_HOST": tls_postgres.host,
        "POSTGRES_PORT": str(tls_postgres.port),
        "POSTGRES_USER": tls_postgres.user,
        "POSTGRES_PASSWORD_FILE": str(password_file),
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(pki.ca.ca_file),
    }
    params = postgres_params_from_env(env)
    assert params["password"] == tls_postgres.password  # the trailing line break is dropped
    with psycopg.connect(dbname="postgres", **params) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[
            0
        ]
    assert postgres_params_from_env({"POSTGRES_HOST": "h", "POSTGRES_USER": "u"}) == {
        "host": "h", "port": 5432, "user": "u", "password": None, "sslmode": "prefer",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/x"}, "not both"),
        ({"POSTGRES_PASSWORD_FILE": "/nonexistent/pw"}, "POSTGRES_PASSWORD_FILE"),
        ({"POSTGRES_SSLMODE": "verify"}, "POSTGRES_SSLMODE must be one of"),
        ({"POSTGRES_PORT": "x"}, "POSTGRES_PORT must be an integer"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        postgres_params_from_env({"POSTGRES_HOST": "h", "POSTGRES_USER": "u", **env})


INSTANCE_YAML = """
storage:
  custom:
    module: sync_assets.core.instance_storage
    class: SyncAssetsStorage
telemetry:
  enabled: false
"""


def _instance_env(
    monkeypatch: pytest.MonkeyPatch, server: ServerInfo, password_file: Path, root_cert: Path
) -> None:
    for name, value in {
        "POSTGRES_HOST": server.host,
        "POSTGRES_PORT": str(server.port),
        "POSTGRES_USER": server.user,
        "POSTGRES_PASSWORD_FILE": str(password_file),
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(root_cert),
        "DAGSTER_PG_DB": "postgres",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)


def test_dagster_storage_uses_the_same_settings(
    tls_postgres: ServerInfo,
    password_file: Path,
    pki: PKI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    _instance_env(monkeypatch, tls_postgres, password_file, pki.ca.ca_file)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_runs() == []  # tables created and read over verified TLS
        assert tls_postgres.password not in instance.info_str()
    admin = _resource(tls_postgres, password=tls_postgres.password)
    with admin.connection() as conn:
        assert conn.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()[0]

    # The same storage refuses a server whose certificate the configured CA did not sign.
    _instance_env(monkeypatch, tls_postgres, password_file, pki.unknown_ca.ca_file)
    with (
        pytest.raises(Exception, match="too many retries"),
        dg.DagsterInstance.from_config(str(tmp_path)) as instance,
    ):
        instance.get_runs()
    assert "certificate verify failed" in caplog.text
