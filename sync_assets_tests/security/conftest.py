"""Fixtures of the security tests: one throwaway CA (plus an unknown one) per session and the
server certificates they sign for the right host name (127.0.0.1) and a wrong one (localhost)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sync_assets_tests.security.pki import ServerCert, TestCA

RIGHT_HOST = "127.0.0.1"  # the servers listen here and the clients connect here
WRONG_HOST = "localhost"  # a certificate issued only for this name must be refused


@dataclass(frozen=True)
class PKI:
    ca: TestCA  # the CA the clients are told to trust
    unknown_ca: TestCA  # a CA nobody trusts
    right: ServerCert  # CA-signed, for 127.0.0.1
    wrong_host: ServerCert  # CA-signed, for localhost only
    unknown: ServerCert  # for 127.0.0.1, signed by the unknown CA


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory: Path = tmp_path_factory.mktemp("pki")
    directory.chmod(0o755)  # throwaway servers running as another user read their certificates
    ca = TestCA(directory, "trusted")
    unknown_ca = TestCA(directory, "unknown")
    return PKI(
        ca=ca,
        unknown_ca=unknown_ca,
        right=ca.issue(RIGHT_HOST, "right"),
        wrong_host=ca.issue(WRONG_HOST, "wrong-host"),
        unknown=unknown_ca.issue(RIGHT_HOST, "unknown"),
    )
