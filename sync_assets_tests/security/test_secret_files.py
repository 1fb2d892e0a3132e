"""`*_FILE` secrets (the Docker/Kubernetes convention): bound as Dagster EnvVars, read when a
connection opens, and masked wherever a message could quote them."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.devtools.servers import ServerInfo
from sync_assets.ftp.client import FTPClient, RetryPolicy
from sync_assets.orchestration.run_log import redact_secrets
from sync_assets.resources import (
    FTPResource,
    MySQLResource,
    SourceUnavailableError,
    build_resources,
)

FILE_VARIABLES = {
    "postgres": "POSTGRES_PASSWORD_FILE",
    "mysql": "MYSQL_PASSWORD_FILE",
    "ftp": "FTP_PASS_FILE",
}


def _secret_file(directory: Path, value: str) -> Path:
    path = directory / f"secret-{secrets.token_hex(3)}"
    path.write_text(value + "\n", encoding="utf-8")
    return path


def test_file_variables_are_bound_as_envvars(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in FILE_VARIABLES.values():
        monkeypatch.setenv(variable, "/run/secrets/x")
    resources = build_resources()
    for key, variable in FILE_VARIABLES.items():
        # Before resolution the field holds the variable's name: the UI shows only that.
        assert resources[key].password_file == variable


def test_ftp_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.csv").write_bytes(b"x\n")
    password = f"Ftp-{secrets.token_hex(6)}"
    server = start_ftp_server(tmp_path / "root", password=password)
    try:
        base = {"host": server.host, "port": str(server.port), "user": server.user}
        good = FTPResource(**base, password_file=str(_secret_file(tmp_path, password)))
        client = FTPClient(good, RetryPolicy(1, 0))
        assert [p for p, _ in client.walk("/", recursive=False)] == ["/a.csv"]
        client.close()

        wrong = f"Wrong-{secrets.token_hex(6)}"
        bad = FTPResource(**base, password_file=str(_secret_file(tmp_path, wrong)))
        with pytest.raises(SourceUnavailableError, match="login refused") as refused:
            FTPClient(bad, RetryPolicy(1, 0)).walk("/", recursive=False).__next__()
        assert wrong not in str(refused.value) and wrong not in repr(bad)
    finally:
        server.stop()


def test_mysql_wrong_password_file_is_not_echoed(mysql_server: ServerInfo, tmp_path: Path) -> None:
    wrong = f"Wrong-{secrets.token_hex(6)}"
    resource = MySQLResource(
        host=mysql_server.host,
        port=str(mysql_server.port),
        database="mysql",
        user=f"nobody_{secrets.token_hex(3)}",
        password_file=str(_secret_file(tmp_path, wrong)),
    )
    with pytest.raises(SourceUnavailableError, match="Access denied") as refused:
        resource.connect()
    assert wrong not in str(refused.value)


def test_value_and_file_together_or_a_missing_file_are_config_errors(tmp_path: Path) -> None:
    both = MySQLResource(host="h", database="d", user="u", password="p", password_file="/x")
    with pytest.raises(ConfigError, match="set MYSQL_PASSWORD or MYSQL_PASSWORD_FILE, not both"):
        both.connect()
    missing = FTPResource(host="h", user="u", password_file=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read the secret file named by FTP_PASS_FILE"):
        _ = missing.secret


def test_run_log_masks_file_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"FromFile-{secrets.token_hex(6)}"
    monkeypatch.setenv("MYSQL_PASSWORD_FILE", str(_secret_file(tmp_path, value)))
    assert redact_secrets(f"error: bad password {value}!") == "error: bad password ***!"
