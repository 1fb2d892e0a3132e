"""FTPS against real pyftpdlib TLS servers: the certificate and host name are verified on the
control and the data connections, refusals name the variables, the opt-out is logged, implicit
FTPS works, and the data connections resume the control connection's TLS session."""

from __future__ import annotations

import ftplib
import io
import logging
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from OpenSSL import SSL
from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

from sync_assets.devtools.ftp_server import FTPServerHandle, start_ftp_server
from sync_assets.ftp.client import FTPClient, RetryPolicy
from sync_assets.resources import FTPResource, SourceUnavailableError, build_resources
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.security.conftest import PKI
from sync_assets_tests.security.pki import ServerCert

CONTENT = b"machine;value\n" + b"m1;42\n" * 20_000  # spans many TLS records
POLICY = RetryPolicy(attempts=2, backoff_seconds=0.05)


def _tls_handler(cert: ServerCert, base: type[TLS_FTPHandler] = TLS_FTPHandler) -> type:
    """A handler class of its own (pyftpdlib caches the SSL context on the class)."""
    attrs = {
        "certfile": str(cert.combined),
        "ssl_context": None,
        "tls_control_required": True,  # no plain-text login
        "tls_data_required": True,  # no plain-text data
    }
    return type("CertHandler", (base,), attrs)


class ImplicitTLSHandler(TLS_FTPHandler):
    """Implicit FTPS: the TLS handshake starts on connect; the greeting follows it."""

    def handle(self) -> None:
        self._greeted = False
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self) -> None:
        if not self._greeted:
            self._greeted = True
            TLS_FTPHandler.handle(self)


class ReuseRequiredDTP(TLS_DTPHandler):
    """Like vsftpd's require_ssl_reuse: a data connection that does not resume the control
    connection's TLS session is closed."""

    def handle_ssl_established(self) -> None:
        if not SSL._lib.SSL_session_reused(self.socket._ssl):  # no public accessor
            self.cmd_channel.respond("522 TLS session reuse required on the data connection")
            self.close()
            return
        super().handle_ssl_established()


class ReuseRequiredHandler(TLS_FTPHandler):
    dtp_handler = ReuseRequiredDTP


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[Callable[..., FTPServerHandle]]:
    started: list[FTPServerHandle] = []

    def start(cert: ServerCert, base: type[TLS_FTPHandler] = TLS_FTPHandler) -> FTPServerHandle:
        root = tmp_path / f"root{len(started)}"
        root.mkdir()
        (root / "log.csv").write_bytes(CONTENT)
        handle = start_ftp_server(root, handler_base=_tls_handler(cert, base))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


def _download(resource: FTPResource) -> bytes:
    client = FTPClient(resource, POLICY)
    try:
        names = [path for path, _ in client.walk("/", recursive=False)]
        assert names == ["/log.csv"]
        sink = io.BytesIO()
        client.download("/log.csv", 0, sink)
        return sink.getvalue()
    finally:
        client.close()


def test_verified_with_the_ca_file(ftps_server, pki: PKI) -> None:
    server = ftps_server(pki.right)
    resource = make_ftp_resource(server, tls="true", tls_ca_file=str(pki.ca.ca_file))
    assert _download(resource) == CONTENT


@pytest.mark.parametrize("ca_file", ["trusted", "system"])
def test_unknown_ca_is_refused(ftps_server, pki: PKI, ca_file: str) -> None:
    server = ftps_server(pki.unknown)
    ca = str(pki.ca.ca_file) if ca_file == "trusted" else ""
    resource = make_ftp_resource(server, tls="true", tls_ca_file=ca)
    with pytest.raises(SourceUnavailableError) as refused:
        _download(resource)
    message = str(refused.value)
    assert "certificate was refused" in message
    assert "unable to get local issuer certificate" in message
    assert "FTP_TLS_CA_FILE" in message and "FTP_TLS_VERIFY=false" in message
    assert server.password not in message


def test_wrong_host_name_is_refused(ftps_server, pki: PKI) -> None:
    server = ftps_server(pki.wrong_host)  # signed by the trusted CA, but for "localhost"
    resource = make_ftp_resource(server, tls="true", tls_ca_file=str(pki.ca.ca_file))
    with pytest.raises(SourceUnavailableError) as refused:
        _download(resource)
    assert "IP address mismatch" in str(refused.value)
    assert "FTP_HOST" in str(refused.value)


def test_opt_out_accepts_an_unverified_server_and_says_so(
    ftps_server, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    server = ftps_server(pki.unknown)
    resource = make_ftp_resource(server, tls="true", tls_verify="false")
    with caplog.at_level(logging.WARNING):
        assert _download(resource) == CONTENT
    warnings = [r.getMessage() for r in caplog.records if "FTP_TLS_VERIFY=false" in r.getMessage()]
    assert len(warnings) == 1 and "NOT verified" in warnings[0]


def test_ca_file_and_opt_out_together_are_a_config_error(pki: PKI) -> None:
    resource = FTPResource(
        host="127.0.0.1", user="u", tls="true", tls_verify="false", tls_ca_file="x.pem"
    )
    with pytest.raises(ValueError, match="FTP_TLS_CA_FILE is set but FTP_TLS_VERIFY=false"):
        resource.tls_context()


def test_implicit_ftps(ftps_server, pki: PKI) -> None:
    server = ftps_server(pki.right, ImplicitTLSHandler)
    resource = make_ftp_resource(server, tls="implicit", tls_ca_file=str(pki.ca.ca_file))
    assert _download(resource) == CONTENT
    # Plain FTP to an implicit server cannot even read the greeting.
    with pytest.raises(SourceUnavailableError):
        _download(make_ftp_resource(server, tls="false", timeout_seconds="3"))


def test_implicit_ftps_refuses_a_wrong_host(ftps_server, pki: PKI) -> None:
    server = ftps_server(pki.wrong_host, ImplicitTLSHandler)
    resource = make_ftp_resource(server, tls="implicit", tls_ca_file=str(pki.ca.ca_file))
    with pytest.raises(SourceUnavailableError, match="IP address mismatch"):
        _download(resource)


def test_implicit_port_defaults_to_990(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTP_PORT", raising=False)
    assert build_resources()["ftp"].port == ""  # the code location binds no port by default
    implicit = FTPResource(host="h", user="u", tls="implicit", port="")
    assert implicit.port_number == 990 and ":990/" in implicit.describe()
    assert FTPResource(host="h", user="u", tls="true").port_number == 21
    assert FTPResource(host="h", user="u", tls="implicit", port="2990").port_number == 2990


def test_data_connections_resume_the_tls_session(ftps_server, pki: PKI) -> None:
    server = ftps_server(pki.right, ReuseRequiredHandler)
    resource = make_ftp_resource(server, tls="true", tls_ca_file=str(pki.ca.ca_file))
    assert _download(resource) == CONTENT

    # The server does refuse a client that does not resume the session (Python's FTP_TLS).
    context = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    plain = ftplib.FTP_TLS(context=context, timeout=10)
    try:
        plain.connect(server.host, server.port)
        plain.login(server.user, server.password)
        plain.prot_p()
        with pytest.raises(ftplib.all_errors):
            plain.retrbinary("RETR log.csv", lambda _: None)
    finally:
        plain.close()
