"""A throwaway certificate authority for the TLS tests: a CA, server certificates signed by it
for a chosen host name (an IP or a DNS name in the SAN), and a second, unknown CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerCert:
    cert: Path  # the server certificate (PEM)
    key: Path  # its private key (PEM, unencrypted)
    combined: Path  # key + certificate in one file (what pyftpdlib wants)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(days=1)).not_valid_after(
        now + dt.timedelta(days=7)
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A CA whose certificate is written to `directory/<label>-ca.pem`."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, label: str = "test") -> None:
        self.directory = directory
        self.label = label
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(f"sync_assets {label} CA")
        self.certificate = (
            _validity(x509.CertificateBuilder())
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{label}-ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, host: str, file_label: str) -> ServerCert:
        """A server certificate for `host` (an IP address becomes an IP SAN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(_name(host))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        paths = ServerCert(
            cert=self.directory / f"{file_label}.crt",
            key=self.directory / f"{file_label}.key",
            combined=self.directory / f"{file_label}.pem",
        )
        paths.cert.write_bytes(cert_pem)
        paths.key.write_bytes(_pem_key(key))
        paths.key.chmod(0o600)
        paths.combined.write_bytes(_pem_key(key) + cert_pem)
        return paths
