"""SFTP sessions against a real OpenSSH server: logins, host-key verification, errors that
name the variable to fix and never a secret."""

import logging
import subprocess
from pathlib import Path

import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.client import RetryPolicy
from sync_assets.ftp.sessions import open_client
from sync_assets.ftp.sftp_client import HostKeyRefusedError, RemoteFileError, SFTPClient
from sync_assets.orchestration.cli import check_ftp
from sync_assets.resources import FTPResource, SourceUnavailableError
from sync_assets_tests.ftp.conftest import write_file
from sync_assets_tests.sftp.conftest import KEY_PASSPHRASE, make_sftp_resource

ONE_TRY = RetryPolicy(attempts=1, backoff_seconds=0.05)


def _listing(resource: FTPResource) -> list[str]:
    client = SFTPClient(resource, ONE_TRY)
    try:
        return sorted(path for path, _ in client.walk(resource.directory, recursive=True))
    finally:
        client.close()


def test_password_login_lists_stats_reads_and_deletes(sshd, sftp_resource) -> None:
    write_file(sshd.root, "a.log", b"one\ntwo\n")
    write_file(sshd.root, "sub/b.log", b"x" * 100)
    client = open_client(sftp_resource, ONE_TRY)
    assert isinstance(client, SFTPClient)
    try:
        assert client.absolute("sub") == f"{sshd.root}/sub"  # relative to the login directory
        found = dict(client.walk(str(sshd.root), recursive=True))
        assert sorted(found) == [f"{sshd.root}/a.log", f"{sshd.root}/sub/b.log"]
        size, mtime = client.stat(f"{sshd.root}/sub/b.log")
        on_disk = (sshd.root / "sub/b.log").stat()
        assert size == 100 and mtime is not None and int(mtime.timestamp()) == int(on_disk.st_mtime)
        assert client.read_head(f"{sshd.root}/a.log", 3) == b"one"
        assert client.stat(f"{sshd.root}/missing.log") is None
        client.delete(f"{sshd.root}/a.log")
        assert not (sshd.root / "a.log").exists()
        with pytest.raises(RemoteFileError):  # gone: permanent for this file, not retried
            client.delete(f"{sshd.root}/a.log")
        assert client.reconnects == 0
    finally:
        client.close()


def test_key_login_plain_and_encrypted(sshd_factory, sftp_keys, tmp_path: Path) -> None:
    sshd = sshd_factory(password_auth=False)  # only keys are accepted
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line, encoding="utf-8")
    write_file(sshd.root, "a.log", b"1\n")
    for name, passphrase in (("client", ""), ("client_encrypted", KEY_PASSPHRASE)):
        sshd.authorize(sftp_keys[name])
        resource = make_sftp_resource(
            sshd, known, password="", key_file=str(sftp_keys[name].private),
            key_passphrase=passphrase,
        )  # fmt: skip
        assert _listing(resource) == [f"{sshd.root}/a.log"]
    assert sshd.logged("Accepted publickey for sync_assets_sftp")


def test_encrypted_key_without_or_with_wrong_passphrase(sshd, known_hosts, sftp_keys) -> None:
    key = str(sftp_keys["client_encrypted"].private)
    resource = make_sftp_resource(sshd, known_hosts, key_file=key)
    with pytest.raises(ConfigError, match="FTP_KEY_PASSPHRASE"):
        _listing(resource)
    wrong = "not-the-passphrase-xyz"
    resource = make_sftp_resource(sshd, known_hosts, key_file=key, key_passphrase=wrong)
    with pytest.raises(ConfigError, match="FTP_KEY_PASSPHRASE") as caught:
        _listing(resource)
    assert wrong not in str(caught.value)
    assert "***" in repr(resource) and wrong not in repr(resource)


def test_wrong_password_fails_fast_naming_the_variables(sshd, known_hosts, caplog) -> None:
    wrong = "wrong-password-abc123"
    resource = make_sftp_resource(sshd, known_hosts, password=wrong)
    client = SFTPClient(resource, RetryPolicy(attempts=4, backoff_seconds=30))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceUnavailableError) as caught:
        client.list_dir(str(sshd.root))
    message = str(caught.value)
    assert "login refused" in message and "FTP_USER" in message and "FTP_PASS" in message
    assert wrong not in message and wrong not in caplog.text
    assert client.reconnects == 0 and "retry" not in caplog.text  # permanent: no retry
    assert sshd.logged("Failed password for sync_assets_sftp")


def test_unknown_host_key_is_refused(sshd, tmp_path: Path, sftp_keys) -> None:
    other_host = tmp_path / "known_hosts"
    other_host.write_text(f"[127.0.0.1]:1 {sftp_keys['host'].public}\n", encoding="utf-8")
    for known in (other_host, tmp_path / "does-not-exist"):
        with pytest.raises(HostKeyRefusedError) as caught:
            _listing(make_sftp_resource(sshd, known))
        message = str(caught.value)
        assert "FTP_KNOWN_HOSTS" in message and "FTP_HOST_KEY_FINGERPRINT" in message
        assert sshd.password not in message
    assert "unknown" in message or "does not exist" in message
    assert not (tmp_path / "does-not-exist").exists()  # never added automatically
    assert other_host.read_text(encoding="utf-8").count("\n") == 1


def test_changed_host_key_is_refused(sshd_factory, tmp_path: Path, sftp_keys) -> None:
    sshd = sshd_factory(host_key="impostor")  # same address, another key than the known one
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {sftp_keys['host'].public}\n", encoding="utf-8")
    with pytest.raises(HostKeyRefusedError, match="CHANGED") as caught:
        _listing(make_sftp_resource(sshd, known))
    assert sftp_keys["impostor"].fingerprint in str(caught.value)
    assert sshd.logged("[preauth]")  # the connection ended before any authentication:
    assert "Accepted" not in sshd.log() and "Failed password" not in sshd.log()  # no login


def test_pinned_fingerprint_accepted_and_wrong_one_refused(sshd, sftp_keys, tmp_path) -> None:
    write_file(sshd.root, "a.log", b"1\n")
    absent = tmp_path / "no-known-hosts"  # the pin alone decides
    pinned = make_sftp_resource(sshd, absent, host_key_fingerprint=sftp_keys["host"].fingerprint)
    assert _listing(pinned) == [f"{sshd.root}/a.log"]
    wrong = make_sftp_resource(sshd, absent, host_key_fingerprint=sftp_keys["impostor"].fingerprint)
    with pytest.raises(HostKeyRefusedError, match="FTP_HOST_KEY_FINGERPRINT") as caught:
        _listing(wrong)
    assert sftp_keys["host"].fingerprint in str(caught.value)  # what the server offered
    malformed = make_sftp_resource(sshd, absent, host_key_fingerprint="MD5:12:34")
    with pytest.raises(ConfigError, match="FTP_HOST_KEY_FINGERPRINT"):
        _listing(malformed)


def test_protocol_settings() -> None:
    sftp = FTPResource(protocol="SFTP", host="h", user="u", directory="/in")
    assert sftp.is_sftp and sftp.port_number == 22
    assert sftp.describe() == "sftp://u@h:22/in"
    assert FTPResource(host="h").port_number == 21 and not FTPResource().is_sftp
    with pytest.raises(ConfigError, match="FTP_PROTOCOL"):
        _ = FTPResource(protocol="scp").is_sftp
    with pytest.raises(ConfigError, match="FTP_TLS"):
        _ = FTPResource(protocol="sftp", tls="true").is_sftp
    secret = FTPResource(protocol="sftp", password="pw-1", key_passphrase="kp-2")
    assert "pw-1" not in repr(secret) and "kp-2" not in repr(secret)
    assert secret.redact("x pw-1 kp-2") == "x *** ***"


def test_doctor_checks_host_key_login_and_directory(sshd, known_hosts, monkeypatch) -> None:
    env = {
        "FTP_PROTOCOL": "sftp", "FTP_HOST": sshd.host, "FTP_PORT": str(sshd.port),
        "FTP_USER": sshd.user, "FTP_PASS": sshd.password, "FTP_DIR": str(sshd.root),
        "FTP_KNOWN_HOSTS": str(known_hosts),
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert check_ftp() == f"sftp://{sshd.user}@{sshd.host}:{sshd.port}{sshd.root}"
    monkeypatch.setenv("FTP_DIR", f"{sshd.root}/missing")
    with pytest.raises(SourceUnavailableError, match="FTP_DIR"):
        check_ftp()
    monkeypatch.setenv("FTP_KNOWN_HOSTS", str(known_hosts.parent / "empty"))
    (known_hosts.parent / "empty").write_text("", encoding="utf-8")
    with pytest.raises(HostKeyRefusedError, match="unknown"):
        check_ftp()


def test_hashed_known_hosts_entry_is_found(sshd, tmp_path: Path) -> None:
    """known_hosts as OpenSSH writes it with HashKnownHosts (Debian's default)."""
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line, encoding="utf-8")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text(encoding="utf-8").startswith("|1|")  # the name is hashed
    write_file(sshd.root, "a.log", b"1\n")
    assert _listing(make_sftp_resource(sshd, known)) == [f"{sshd.root}/a.log"]
