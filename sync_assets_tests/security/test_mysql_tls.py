"""MYSQL_SSL_MODE / MYSQL_SSL_CA against throwaway MariaDB servers: one with TLS (a certificate
for 127.0.0.1 from the test CA), one without TLS at all. The fast row reader works over TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pymysql
import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.devtools.servers import ServerInfo, TLSFiles, start_throwaway_mariadb
from sync_assets.mysql.stream import StreamStats, raw_connection, read_chunks
from sync_assets.mysql.wire import rows_reader
from sync_assets.resources import MySQLResource, SourceUnavailableError
from sync_assets_tests.conftest import create_mysql_database, mysql_admin_connect
from sync_assets_tests.security.conftest import PKI, WRONG_HOST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_mariadb(pki: PKI) -> Iterator[ServerInfo]:
    server = start_throwaway_mariadb(TLSFiles(pki.right.cert, pki.right.key, pki.ca.ca_file))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_mariadb() -> Iterator[ServerInfo]:
    server = start_throwaway_mariadb(tls=None)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_database(tls_mariadb: ServerInfo) -> str:
    name = create_mysql_database(tls_mariadb, "sa_tls")
    with mysql_admin_connect(tls_mariadb, name) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, line TEXT)")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s)", [(i, f"row {i}\t{'x' * 50}") for i in range(5000)]
        )
    return name


def _resource(server: ServerInfo, database: str, host: str = "", **tls: str) -> MySQLResource:
    return MySQLResource(
        host=host or server.host,
        port=str(server.port),
        database=database,
        user=server.user,
        password=server.password,
        **tls,
    )


def _cipher(resource: MySQLResource) -> str | None:
    conn = resource.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return cur.fetchone()[1] or None
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"])
def test_modes_connect_over_tls_with_the_right_ca(
    tls_mariadb: ServerInfo, tls_database: str, pki: PKI, mode: str
) -> None:
    ca = str(pki.ca.ca_file) if mode.startswith("VERIFY") else ""
    cipher = _cipher(_resource(tls_mariadb, tls_database, ssl_mode=mode, ssl_ca=ca))
    assert cipher  # the session is encrypted


def test_disabled_connects_in_clear(tls_mariadb: ServerInfo, tls_database: str) -> None:
    assert _cipher(_resource(tls_mariadb, tls_database, ssl_mode="DISABLED")) is None


@pytest.mark.parametrize("mode", ["VERIFY_CA", "VERIFY_IDENTITY"])
def test_unknown_ca_is_refused(
    tls_mariadb: ServerInfo, tls_database: str, pki: PKI, mode: str
) -> None:
    resource = _resource(
        tls_mariadb, tls_database, ssl_mode=mode, ssl_ca=str(pki.unknown_ca.ca_file)
    )
    with pytest.raises(SourceUnavailableError, match="certificate verify failed") as refused:
        resource.connect()
    assert "MYSQL_SSL_MODE" in str(refused.value) and "MYSQL_SSL_CA" in str(refused.value)


def test_system_store_refuses_the_test_ca(tls_mariadb: ServerInfo, tls_database: str) -> None:
    resource = _resource(tls_mariadb, tls_database, ssl_mode="VERIFY_CA")
    with pytest.raises(SourceUnavailableError, match="certificate verify failed"):
        resource.connect()


def test_wrong_host_name(tls_mariadb: ServerInfo, tls_database: str, pki: PKI) -> None:
    """The certificate names 127.0.0.1; reaching the same server as `localhost` must fail
    VERIFY_IDENTITY, while VERIFY_CA (the CA only) accepts it."""
    ca = str(pki.ca.ca_file)
    wrong = _resource(tls_mariadb, tls_database, WRONG_HOST, ssl_mode="VERIFY_IDENTITY", ssl_ca=ca)
    with pytest.raises(SourceUnavailableError, match=r"Hostname mismatch|doesn't match"):
        wrong.connect()
    assert _cipher(
        _resource(tls_mariadb, tls_database, WRONG_HOST, ssl_mode="VERIFY_CA", ssl_ca=ca)
    )


def test_required_refuses_a_server_without_tls(plain_mariadb: ServerInfo, pki: PKI) -> None:
    for mode, ca in (("REQUIRED", ""), ("VERIFY_IDENTITY", str(pki.ca.ca_file))):
        with pytest.raises(SourceUnavailableError, match="SSL is required"):
            _resource(plain_mariadb, "mysql", ssl_mode=mode, ssl_ca=ca).connect()
    assert _cipher(_resource(plain_mariadb, "mysql", ssl_mode="PREFERRED")) is None


def test_ca_without_verification_is_a_config_error(tls_mariadb: ServerInfo, pki: PKI) -> None:
    resource = _resource(tls_mariadb, "mysql", ssl_mode="REQUIRED", ssl_ca="")
    assert isinstance(resource.tls_options()["ssl"], ssl.SSLContext)
    for mode in ("PREFERRED", "REQUIRED"):
        with pytest.raises(ConfigError, match=f"MYSQL_SSL_CA is set but MYSQL_SSL_MODE is {mode}"):
            _resource(tls_mariadb, "mysql", ssl_mode=mode, ssl_ca=str(pki.ca.ca_file)).connect()
    with pytest.raises(ConfigError, match="MYSQL_SSL_MODE must be one of"):
        _resource(tls_mariadb, "mysql", ssl_mode="VERIFY").connect()


@pytest.mark.parametrize("fast", [True, False])
def test_fast_reader_over_tls(
    tls_mariadb: ServerInfo, tls_database: str, pki: PKI, fast: bool
) -> None:
    resource = _resource(
        tls_mariadb, tls_database, ssl_mode="VERIFY_IDENTITY", ssl_ca=str(pki.ca.ca_file)
    )
    conn = raw_connection(resource)
    try:
        assert isinstance(conn._sock, ssl.SSLSocket)
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute("SELECT line FROM t ORDER BY id")
            assert rows_reader(cur) is not None  # the fast path is usable over TLS
            stats = StreamStats()
            text = b"".join(read_chunks(cur, 700, stats, fast))
    finally:
        conn.close()
    assert stats.rows == 5000
    lines = text.decode().splitlines()
    assert lines[0] == "row 0\\t" + "x" * 50 and lines[-1] == "row 4999\\t" + "x" * 50
