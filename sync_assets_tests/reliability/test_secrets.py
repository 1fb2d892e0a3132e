"""No password anywhere a user can look: a real webserver + daemon, distinctive passwords for
PostgreSQL, MySQL and FTP, one successful run and three failing ones (a wrong MySQL password,
the FTP server killed mid-download, then unreachable). Then every place is searched: Dagster's
storage (event log, runs, everything), DAGSTER_HOME (compute logs), the webserver's and daemon's
stdout/stderr (run workers' output included), and the GraphQL answers the UI gets for runs,
their events and errors, assets and resources.
"""

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from sync_assets.devtools.demo_stack import DagsterStack, graphql, prepare_dagster_home
from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets_tests.conftest import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
    mysql_admin_connect,
    pg_admin_connect,
)
from sync_assets_tests.ftp.conftest import write_file
from sync_assets_tests.mysql.conftest import run_sql
from sync_assets_tests.orchestration.conftest import E2EEnv, _stack_env
from sync_assets_tests.orchestration.test_ui_e2e import LAUNCH, REPO, _wait_for_run
from sync_assets_tests.reliability.conftest import GatedDownloads, wait_until, write_csv_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PG_PASSWORD = f"PgSecret-{secrets.token_hex(5)}"  # the shared server trusts loopback: accepted
MYSQL_PASSWORD = f"MySecret-{secrets.token_hex(5)}"
FTP_PASSWORD = f"FtpSecret-{secrets.token_hex(5)}"
WRONG_MYSQL_PASSWORD = f"WrongSecret-{secrets.token_hex(5)}"
PASSWORDS = (PG_PASSWORD, MYSQL_PASSWORD, FTP_PASSWORD, WRONG_MYSQL_PASSWORD)


@dataclass
class SecretsEnv:
    e2e: E2EEnv
    home: Path
    logs: Path
    dagster_db: str
    mysql_user: str


@pytest.fixture(scope="module")
def stack(
    pg_server: ServerInfo, mysql_server: ServerInfo, tmp_path_factory
) -> Iterator[SecretsEnv]:
    workdir = tmp_path_factory.mktemp("secrets")
    (workdir / "ftp").mkdir()
    data_db = create_pg_database(pg_server, "sa_sec_data")
    dagster_db = create_pg_database(pg_server, "sa_sec_dagster")
    mysql_db = create_mysql_database(mysql_server, "sa_sec_legacy")
    user = f"sa_sec_{secrets.token_hex(3)}"
    with mysql_admin_connect(mysql_server, mysql_db) as conn:
        run_sql(
            conn,
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
            "INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_100",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}'",
            f"GRANT ALL ON `{mysql_db}`.* TO '{user}'@'%'",
        )
    GatedDownloads.gate.set()
    ftp = start_ftp_server(workdir / "ftp", password=FTP_PASSWORD, handler_base=GatedDownloads)
    write_csv_files(ftp.root, {"a.csv": (1, 100), "b.csv": (101, 200)})
    home = prepare_dagster_home(workdir / "home")
    pg = ServerInfo("postgres", pg_server.host, pg_server.port, pg_server.user, PG_PASSWORD)
    my = ServerInfo("mariadb", mysql_server.host, mysql_server.port, user, MYSQL_PASSWORD)
    env = _stack_env(pg, data_db, dagster_db, my, mysql_db, ftp, home) | {"MYSQL_TABLES": "items"}
    dagster = DagsterStack(env=env, port=free_port(), log_dir=workdir)
    try:
        dagster.start()
        yield SecretsEnv(
            E2EEnv(dagster, pg_server, data_db, mysql_db, ftp), home, workdir, dagster_db, user
        )
    finally:
        GatedDownloads.gate.set()
        dagster.stop()
        ftp.stop()
        with mysql_admin_connect(mysql_server) as conn:
            run_sql(conn, f"DROP USER IF EXISTS '{user}'@'%'")
        drop_mysql_database(mysql_server, mysql_db)
        drop_pg_database(pg_server, data_db)
        drop_pg_database(pg_server, dagster_db)


def _launch(env: SecretsEnv, *paths: list[str]) -> str:
    params = {
        "selector": {**REPO, "jobName": "__ASSET_JOB",
                     "assetSelection": [{"path": p} for p in paths]},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/max_retries", "value": "0"}]},
    }  # fmt: skip
    result = graphql(env.e2e.stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


LEGACY, LOGS = ["legacy", "items"], ["logs", "machine_logs"]

RUNS = """{ runsOrError { ... on Runs { results { runId status jobName runConfigYaml
  tags { key value } } } } }"""
EVENTS = """query($id: ID!) { logsForRun(runId: $id) { __typename
  ... on EventConnection { events { __typename ... on MessageEvent { message }
    ... on ErrorEvent { error { message stack className
      errorChain { error { message stack } } cause { message stack } } } } } } }"""
ASSETS = """{ assetsOrError { ... on AssetConnection { nodes { key { path }
  definition { description metadataEntries { label description } }
  assetMaterializations(limit: 10) { runId metadataEntries { label description
    ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } } }"""
RESOURCES = """query($repo: RepositorySelector!) { repositoryOrError(repositorySelector: $repo) {
  ... on Repository { allTopLevelResourceDetails { name description
    configFields { name description configType { key description } }
    configuredValues { key value type } } } } }"""


def _graphql_texts(env: SecretsEnv, run_ids: list[str]) -> dict[str, str]:
    url = env.e2e.stack.url
    texts = {
        "runs": json.dumps(graphql(url, RUNS)),
        "assets": json.dumps(graphql(url, ASSETS)),
        "resources": json.dumps(graphql(url, RESOURCES, {"repo": REPO})),
    }
    for run_id in run_ids:
        texts[f"events of {run_id}"] = json.dumps(graphql(url, EVENTS, {"id": run_id}))
    return texts


def _storage_text(env: SecretsEnv) -> str:
    """Every row of every table of Dagster's storage database, as text."""
    with pg_admin_connect(env.e2e.pg_server, env.dagster_db) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND table_type = 'BASE TABLE'"
        ).fetchall()
        parts = []
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, table))
            parts.extend(row[0] for row in conn.execute(query).fetchall())
    return "\n".join(parts)


def _files_text(*roots: Path) -> dict[str, str]:
    return {
        str(path): path.read_bytes().decode("utf-8", errors="replace")
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and "ftp" not in path.relative_to(root).parts[:1]
    }


@pytest.mark.timeout(900)
def test_no_password_in_anything_a_user_can_see(
    stack: SecretsEnv, mysql_server: ServerInfo
) -> None:
    # Two runs, one per side (as the two jobs), so that neither races the other's first DDL.
    good = [_launch(stack, LEGACY)]
    assert _wait_for_run(stack.e2e, good[0]) == "SUCCESS"
    good.append(_launch(stack, LOGS))
    assert _wait_for_run(stack.e2e, good[1]) == "SUCCESS"

    GatedDownloads.reached.clear()
    GatedDownloads.gate.clear()
    write_file(stack.e2e.ftp.root, "c.csv", b"id;value\n1;2\n")  # old enough to be downloaded
    killed = _launch(stack, LOGS)
    with mysql_admin_connect(mysql_server) as conn:
        run_sql(conn, f"ALTER USER '{stack.mysql_user}'@'%' IDENTIFIED BY '{WRONG_MYSQL_PASSWORD}'")
    wrong_password = _launch(stack, LEGACY)
    wait_until(GatedDownloads.reached.is_set, "the run's download", timeout=240, every=0.2)
    stack.e2e.ftp.stop()  # the FTP server dies mid-run
    GatedDownloads.gate.set()
    unreachable = _launch(stack, LOGS)
    failing = [killed, wrong_password, unreachable]
    assert [_wait_for_run(stack.e2e, run) for run in failing] == ["FAILURE"] * 3

    places = {"dagster storage": _storage_text(stack)}
    places |= _files_text(stack.home, stack.logs)
    places |= _graphql_texts(stack, [*good, *failing])
    everything = "\n".join(places.values())
    # The search is over real content: the failures, the runs and the resources are in it.
    assert "Access denied" in everything and "ftp://machine@127.0.0.1" in everything
    assert "POSTGRES_PASSWORD" in places["resources"] and good[0] in places["runs"]
    leaks = [(where, pw) for where, text in places.items() for pw in PASSWORDS if pw in text]
    assert leaks == []
