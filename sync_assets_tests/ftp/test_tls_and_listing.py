"""FTPS (explicit TLS, data channel encrypted too) and listing many files quickly."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.handlers import TLS_FTPHandler

from sync_assets.ftp.client import FTPClient, RetryPolicy
from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import rows, write_file


def _self_signed_cert(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = directory / "server.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


def test_ftps_with_encrypted_data_channel(
    ftp_server_factory, pg_resource, pg_conn, make_source, tmp_path
):
    class RequireTLS(TLS_FTPHandler):
        certfile = str(_self_signed_cert(tmp_path))
        tls_control_required = True  # a plain-text login would be refused
        tls_data_required = True

    server = ftp_server_factory(handler_base=RequireTLS)
    write_file(server.root, "secure.csv", b"a;b\n1;x\n2;y\n")
    source = make_source("tls")
    # A self-signed certificate: accepted only with the explicit opt-out (verification itself
    # is covered by sync_assets_tests/security/test_ftps.py).
    resource = make_ftp_resource(server, tls="true", tls_verify="false")
    report = ingest_source(resource, pg_resource, source)
    assert report.rows_loaded == 2
    assert rows(pg_conn, source, "a, b", "a") == [(1, "x"), (2, "y")]


def test_listing_ten_thousand_files_is_fast(ftp_server, pg_resource, make_source):
    folder = ftp_server.root / "many"
    folder.mkdir()
    for index in range(10_000):
        (folder / f"m{index:05d}.tmp").write_bytes(b"")
    write_file(ftp_server.root, "many/wanted.csv", b"n\n1\n")

    client = FTPClient(make_ftp_resource(ftp_server), RetryPolicy(2, 0.05))
    started = time.monotonic()
    try:
        found = list(client.walk("/", recursive=True))
    finally:
        client.close()
    assert len(found) == 10_001
    assert time.monotonic() - started < 15

    source = make_source("many", include=("*.csv",))
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert report.files_seen == 1 and report.rows_loaded == 1
