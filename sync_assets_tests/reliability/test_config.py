"""Configuration faults through the real assets, resources bound from the environment as in
production: a missing or malformed variable, a wrong password. Each failure names the
variable or the problem; no event of the run holds a password (right or wrong).
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.devtools.ftp_server import FTPServerHandle
from sync_assets.devtools.servers import ServerInfo, start_throwaway_postgres
from sync_assets.ftp.definitions import build_log_asset, build_source_spec
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import build_table_asset
from sync_assets.resources import build_resources
from sync_assets_tests.mysql.conftest import run_sql
from sync_assets_tests.reliability.conftest import write_csv_files

pytestmark = pytest.mark.slow

MYSQL_PASSWORD = f"My-Sq1-{secrets.token_hex(4)}"
FTP_PASSWORD = f"Ft-P4ss-{secrets.token_hex(4)}"
PG_PASSWORD = f"Pg-Pw-{secrets.token_hex(4)}"  # trust auth on the shared server accepts it


@pytest.fixture
def mysql_user(mysql_server: ServerInfo, src: pymysql.Connection, src_db: str) -> Iterator[str]:
    """A MariaDB account with a password, allowed on the test database only."""
    user = f"sa_rel_{secrets.token_hex(3)}"
    hosts = ("localhost", "127.0.0.1", "%")
    for host in hosts:
        run_sql(
            src,
            f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{MYSQL_PASSWORD}'",
            f"GRANT ALL ON `{src_db}`.* TO '{user}'@'{host}'",
        )
    yield user
    for host in hosts:
        run_sql(src, f"DROP USER IF EXISTS '{user}'@'{host}'")


@dataclass
class Setup:
    """Both sides' real assets and the environment that configures them."""

    env: dict[str, str]
    sides: dict[str, list]  # as the two jobs: `legacy` (MySQL) and `logs` (FTP) run apart

    def run(self, monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> dict[str, str | None]:
        """Per side: None if its run succeeded, else the error text; no run leaks a password."""
        for name, value in (self.env | changes).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        secrets = [v for k, v in changes.items() if v and "PASS" in k]
        return {side: _run(assets, secrets) for side, assets in self.sides.items()}


def _run(assets: list, extra_secrets: list[str]) -> str | None:
    try:
        result = dg.materialize(assets, resources=build_resources(), raise_on_error=False)
    except dg.DagsterInvalidConfigError as exc:  # a variable missing: refused before any step
        text, error = str(exc), str(exc)
    else:
        text = "\n".join(str(event) for event in result.all_events)
        failures = [e for e in result.all_events if e.is_step_failure]
        error = str(failures[0].event_specific_data.error) if failures else None
    for password in (MYSQL_PASSWORD, FTP_PASSWORD, PG_PASSWORD, *extra_secrets):
        assert password not in text
    return error


@pytest.fixture
def setup(
    mysql_server: ServerInfo,
    mysql_user: str,
    src: pymysql.Connection,
    src_db: str,
    pg_server: ServerInfo,
    pg_dbname: str,
    target_schema: str,
    ftp_server_factory,
    make_source,
) -> Setup:
    run_sql(src, "CREATE TABLE items (id INT PRIMARY KEY)", "INSERT INTO items VALUES (1), (2)")
    ftp: FTPServerHandle = ftp_server_factory(mlsd=True, password=FTP_PASSWORD)
    write_csv_files(ftp.root, {"a.csv": (1, 10)})
    source = make_source("config")
    spec, table_asset = build_table_asset("items", TableOptions(name="items"), target_schema)
    env = {
        "POSTGRES_HOST": pg_server.host, "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_DB": pg_dbname, "POSTGRES_USER": pg_server.user,
        "POSTGRES_PASSWORD": PG_PASSWORD,
        "MYSQL_HOST": mysql_server.host, "MYSQL_PORT": str(mysql_server.port),
        "MYSQL_DB": src_db, "MYSQL_USER": mysql_user, "MYSQL_PASSWORD": MYSQL_PASSWORD,
        "FTP_HOST": ftp.host, "FTP_PORT": str(ftp.port), "FTP_USER": ftp.user,
        "FTP_PASS": FTP_PASSWORD, "FTP_DIR": "/", "DELETE_AFTER_SYNC": "false",
    }  # fmt: skip
    sides = {
        "legacy": [spec, table_asset],
        "logs": [build_source_spec(source), build_log_asset(source)],
    }
    return Setup(env, sides)


def test_the_setup_works(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    assert setup.run(monkeypatch) == {"legacy": None, "logs": None}


@pytest.mark.parametrize(
    ("variable", "value", "failing", "expected"),
    [
        ("POSTGRES_HOST", None, {"legacy", "logs"}, "POSTGRES_HOST"),
        ("POSTGRES_PORT", "5432x", {"legacy", "logs"}, "POSTGRES_PORT must be an integer"),
        ("MYSQL_DB", None, {"legacy"}, "MYSQL_DB"),
        ("MYSQL_PORT", "0", {"legacy"}, "MYSQL_PORT must be >= 1"),
        ("MYSQL_HOST", "", {"legacy"}, "MYSQL_HOST is not set"),
        ("FTP_USER", None, {"logs"}, "FTP_USER"),
        ("FTP_PORT", "twenty-one", {"logs"}, "FTP_PORT must be an integer"),
        ("DELETE_AFTER_SYNC", "maybe", {"logs"}, "DELETE_AFTER_SYNC must be one of"),
    ],
)
def test_a_missing_or_malformed_variable_is_named_and_the_other_side_runs(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str | None,
    failing: set[str],
    expected: str,
) -> None:
    for side, error in setup.run(monkeypatch, **{variable: value}).items():
        if side in failing:
            assert error is not None and expected in error, (side, error)
        else:
            assert error is None, (side, error)


def test_a_wrong_mysql_password_is_named_without_the_secret(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    sides = setup.run(monkeypatch, MYSQL_PASSWORD="Wrong-My-Secret-1")
    error = sides["legacy"] or ""
    assert "cannot connect to MySQL" in error and "Access denied" in error, error
    assert "MYSQL_PASSWORD" in error and sides["logs"] is None


def test_a_wrong_ftp_password_is_named_without_the_secret(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    sides = setup.run(monkeypatch, FTP_PASS="Wrong-Ftp-Secret-1")
    assert sides["legacy"] is None
    error = sides["logs"] or ""
    assert "530" in error and "FTP" in error and "FTP_PASS" in error, error


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[ServerInfo]:
    """A throwaway PostgreSQL that checks passwords (scram) on loopback TCP."""
    server = start_throwaway_postgres()
    try:
        assert server.workdir is not None
        with psycopg.connect(host=server.host, port=server.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:  # fmt: skip
            conn.execute(f"ALTER USER postgres PASSWORD '{PG_PASSWORD}'")
            hba = server.workdir / "data" / "pg_hba.conf"
            hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


def test_a_wrong_postgres_password_is_named_without_the_secret(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, password_postgres: ServerInfo
) -> None:
    here = {"POSTGRES_PORT": str(password_postgres.port), "POSTGRES_DB": "postgres"}
    assert setup.run(monkeypatch, **here) == {"legacy": None, "logs": None}  # right password
    wrong = setup.run(monkeypatch, **here, POSTGRES_PASSWORD="Wrong-Pg-Secret-1")
    for error in wrong.values():
        assert error is not None and "cannot connect to PostgreSQL" in error, error
        assert "password authentication" in error and "POSTGRES_PASSWORD" in error
