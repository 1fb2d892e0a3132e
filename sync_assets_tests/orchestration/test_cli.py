"""`sync-assets doctor` against the real servers: one line per check, no secret in any."""

import pytest

from sync_assets.cli import main

SECRET = "Zebra-Quartz-9931!"


@pytest.fixture
def server_env(monkeypatch, pg_server, pg_dbname, mysql_server, mysql_dbname, ftp_server_factory):
    ftp = ftp_server_factory(mlsd=True)
    values = {
        "POSTGRES_HOST": pg_server.host, "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_USER": pg_server.user, "POSTGRES_PASSWORD": pg_server.password,
        "POSTGRES_DB": pg_dbname, "DAGSTER_PG_DB": pg_dbname,
        "MYSQL_HOST": mysql_server.host, "MYSQL_PORT": str(mysql_server.port),
        "MYSQL_USER": mysql_server.user, "MYSQL_PASSWORD": mysql_server.password,
        "MYSQL_DB": mysql_dbname,
        "FTP_HOST": ftp.host, "FTP_PORT": str(ftp.port), "FTP_USER": ftp.user,
        "FTP_PASS": ftp.password, "FTP_DIR": "/",
    }  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return ftp


def test_doctor_reports_every_server_ok(server_env, capsys) -> None:
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("ok ") for line in lines), lines


def test_doctor_names_the_failure_without_the_password(server_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FTP_PASS", SECRET)  # wrong password: the FTP login fails
    monkeypatch.setenv("DAGSTER_PG_DB", "sa_no_such_db")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  ftp (machine logs)" in out and "FTP_PASS" in out
    assert "FAIL  postgres (dagster storage)" in out and "sa_no_such_db" in out
    assert SECRET not in out


def test_subcommands_have_help(capsys) -> None:
    for command in ("doctor", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
    assert "scripts/demo" in capsys.readouterr().out


def test_demo_passes_its_options_through(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--", "--help"])
    assert exit_info.value.code == 0
    assert "--dagster-db" in capsys.readouterr().out
