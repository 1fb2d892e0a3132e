"""Smoke tests: the fixtures really talk to PostgreSQL, MariaDB and FTP."""

from __future__ import annotations

import ftplib
import ssl

import pytest

from sync_assets.devtools.ftp_server import FTPServerHandle


def test_postgres_session_database_is_fresh_and_reachable(pg_resource) -> None:
    with pg_resource.connection() as conn:
        version, db = conn.execute("SELECT version(), current_database()").fetchone()
    assert version.startswith("PostgreSQL")
    assert db == pg_resource.database and db.startswith("sa_test_")


def test_mariadb_session_database_is_reachable_in_utc(mysql_resource) -> None:
    conn = mysql_resource.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), DATABASE(), @@session.time_zone")
        version, db, tz = cur.fetchone()
    conn.close()
    assert "MariaDB" in version or version[0].isdigit()
    assert db == mysql_resource.database
    assert tz == "+00:00"


def test_mysql_preferred_tls_context_loads_no_ca_store(mysql_resource) -> None:
    """pymysql would load the system CA store for each connection (~20 ms) and then check
    nothing with it; ours keep pymysql's settings for "TLS if offered" (no verification:
    nothing was configured) without the store. TLS itself: security/test_mysql_tls.py."""
    conn = mysql_resource.connect()
    try:
        assert conn.ctx is not None and conn.ctx.cert_store_stats()["x509_ca"] == 0
        assert conn.ctx.verify_mode == ssl.CERT_NONE and not conn.ctx.check_hostname
        assert conn.ctx.options & ssl.OP_NO_SSLv3
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_sakila_is_loaded(mysql_resource, sakila_db) -> None:
    conn = mysql_resource.connect(database=sakila_db)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (sakila_db,),
        )
        (tables,) = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM rental")
        (rentals,) = cur.fetchone()
    conn.close()
    assert tables == 16
    assert rentals == 16044


def _ftp_login(handle: FTPServerHandle) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(handle.host, handle.port, timeout=10)
    ftp.login(handle.user, handle.password)
    return ftp


def test_ftp_server_serves_files(ftp_server: FTPServerHandle) -> None:
    (ftp_server.root / "machine 1.csv").write_text("a;b\n1;2\n", encoding="utf-8")
    ftp = _ftp_login(ftp_server)
    lines: list[bytes] = []
    ftp.retrbinary("RETR machine 1.csv", lines.append)
    listing: list[str] = []
    ftp.retrlines("LIST", listing.append)
    ftp.quit()
    assert b"".join(lines) == b"a;b\n1;2\n"
    assert any(line.endswith("machine 1.csv") for line in listing)


def test_list_only_flavour_refuses_mlsd(ftp_server_factory) -> None:
    ftp = _ftp_login(ftp_server_factory(mlsd=False))
    assert "MLST" not in ftp.sendcmd("FEAT")
    with pytest.raises(ftplib.error_perm, match="500"):
        list(ftp.mlsd())
    ftp.quit()


def test_mlsd_flavour_offers_mlsd(ftp_server_factory) -> None:
    handle = ftp_server_factory(mlsd=True)
    (handle.root / "x.log").write_bytes(b"hello\n")
    ftp = _ftp_login(handle)
    entries = dict(ftp.mlsd())
    ftp.quit()
    assert entries["x.log"]["size"] == "6"
