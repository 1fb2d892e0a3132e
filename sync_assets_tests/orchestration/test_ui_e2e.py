"""The UI workflows end to end: a real webserver + daemon, driven through the GraphQL API the
UI itself uses, and a headless Chromium rendering two pages."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from sync_assets.core.locks import advisory_lock
from sync_assets.devtools.demo_legacy import DEMO_TABLES
from sync_assets.devtools.demo_stack import graphql
from sync_assets.mysql.config import DEFAULT_TARGET_SCHEMA
from sync_assets.orchestration.schedules import build_schedules
from sync_assets_tests.conftest import mysql_admin_connect, pg_admin_connect
from sync_assets_tests.orchestration.conftest import ARTIFACTS, E2EEnv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = {"repositoryLocationName": "sync_assets", "repositoryName": "__repository__"}
SCHEDULES = ("ftp_logs_schedule", "mysql_sync_schedule")

ASSET_NODES = """
{ assetNodes { assetKey { path } groupName kinds isExecutable
    dependencyKeys { path } jobNames } }
"""


def _asset_nodes(e2e: E2EEnv) -> dict[str, dict]:
    nodes = graphql(e2e.stack.url, ASSET_NODES)["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def _legacy_assets(nodes: dict[str, dict]) -> list[str]:
    return sorted(key for key, node in nodes.items() if node["groupName"] == "legacy_mysql")


def _check_edges(nodes: dict[str, dict], group: str, target: str, source: str) -> int:
    """Every asset `target/<n>` of `group` depends on `source/<n>`; returns how many there are."""
    members = [
        key for key, node in nodes.items() if node["groupName"] == group and node["isExecutable"]
    ]
    for key in members:
        prefix, _, name = key.partition("/")
        assert prefix == target, key
        deps = {"/".join(dep["path"]) for dep in nodes[key]["dependencyKeys"]}
        assert f"{source}/{name}" in deps, (key, deps)
        assert f"{source}/{name}" in nodes, f"source {source}/{name} missing from the graph"
        assert nodes[key]["kinds"], f"{key} has no kinds"
        assert not nodes[f"{source}/{name}"]["isExecutable"], f"{source}/{name} is external"
    return len(members)


def test_lineage_holds_every_source_edge_with_groups_and_kinds(e2e: E2EEnv) -> None:
    nodes = _asset_nodes(e2e)
    legacy = _check_edges(nodes, "legacy_mysql", "legacy", "mysql")
    logs = _check_edges(nodes, "machine_logs", "logs", "ftp")
    if legacy == 0 or logs == 0:
        pytest.skip(f"lineage checked for what exists: {legacy} legacy, {logs} log assets")
    assert _legacy_assets(nodes) == [f"legacy/{t}" for t in DEMO_TABLES]
    assert "mysql_sync_job" in nodes["legacy/orders"]["jobNames"]


SCHEDULE_STATES = """
query($repo: RepositorySelector!) { schedulesOrError(repositorySelector: $repo) {
  ... on Schedules { results { name cronSchedule executionTimezone
      scheduleState { id status } } } } }
"""
START = """
mutation($sel: ScheduleSelector!) { startSchedule(scheduleSelector: $sel) {
  __typename ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message } } }
"""
STOP = """
mutation($id: String!) { stopRunningSchedule(id: $id) {
  __typename ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message } } }
"""


def _schedules(e2e: E2EEnv) -> dict[str, dict]:
    data = graphql(e2e.stack.url, SCHEDULE_STATES, {"repo": REPO})
    return {s["name"]: s for s in data["schedulesOrError"]["results"]}


def _start(e2e: E2EEnv, name: str) -> str:
    result = graphql(e2e.stack.url, START, {"sel": {**REPO, "scheduleName": name}})
    return result["startSchedule"]["scheduleState"]["status"]


def _stop(e2e: E2EEnv, name: str) -> str:
    state_id = _schedules(e2e)[name]["scheduleState"]["id"]
    return graphql(e2e.stack.url, STOP, {"id": state_id})["stopRunningSchedule"]["scheduleState"][
        "status"
    ]


LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
STARTED_OR_FINISHED = FINISHED | {"STARTED"}


def _launch_asset(e2e: E2EEnv, path: list[str]) -> str:
    params = {
        "selector": {**REPO, "jobName": "__ASSET_JOB", "assetSelection": [{"path": path}]},
        "runConfigData": {},
    }
    result = graphql(e2e.stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _wait_for_run(
    e2e: E2EEnv, run_id: str, timeout: float = 240, until: frozenset[str] = FINISHED
) -> str:
    """Poll the run's status until it is one of `until` (by default: finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(e2e.stack.url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in until:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} still not in {sorted(until)} after {timeout}s")


FINGERPRINT = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {}.{} t"


def _table_fingerprints(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    """md5 of every user table's content (bookkeeping schema excluded)."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema', 'sync_meta')"
    ).fetchall()
    prints = {}
    for schema, table in tables:
        query = sql.SQL(FINGERPRINT).format(sql.Identifier(schema), sql.Identifier(table))
        prints[(schema, table)] = conn.execute(query).fetchone()[0]
    return prints


def test_materialising_one_legacy_asset_changes_only_its_table(e2e: E2EEnv) -> None:
    legacy = _legacy_assets(_asset_nodes(e2e))
    if "legacy/orders" not in legacy:
        pytest.skip(f"no legacy/orders asset in the code location yet (legacy assets: {legacy})")
    with pg_admin_connect(e2e.pg_server, e2e.data_db) as conn:
        before = _table_fingerprints(conn)
        run_id = _launch_asset(e2e, ["legacy", "orders"])
        assert _wait_for_run(e2e, run_id) == "SUCCESS"
        after = _table_fingerprints(conn)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed, "the run succeeded but no table changed"
    assert {table for _, table in changed} == {"orders"}, changed


RUN_TIMES = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }
"""


IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _launch_job(e2e: E2EEnv, job_name: str, asset_path: list[str]) -> str:
    """A run of `job_name` (so with its tags) for one asset, in one process: quick to run."""
    selector = {**REPO, "jobName": job_name, "assetSelection": [{"path": asset_path}]}
    params = {"selector": selector, "runConfigData": IN_PROCESS}
    result = graphql(e2e.stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


@contextmanager
def _test_instance(e2e: E2EEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """The e2e instance (PostgreSQL storage) opened in the test process."""
    for name, value in e2e.stack.env.items():
        if name.startswith(("POSTGRES_", "DAGSTER_")):
            monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(e2e.stack.env["DAGSTER_HOME"]) as instance:
        yield instance


def _tick(instance: dg.DagsterInstance, schedule_name: str):
    schedule = next(s for s in build_schedules() if s.name == schedule_name)
    return schedule.evaluate_tick(dg.build_schedule_context(instance=instance))


def test_run_queue_serialises_a_job_but_never_blocks_the_other(e2e: E2EEnv, monkeypatch) -> None:
    """dagster.yaml's per-job tag limit with the real daemon dequeuing; schedule ticks meanwhile.

    The test holds the first MySQL run's table lock, so that run stays in progress (occupying
    the job's only slot) however fast the sync itself is, until the FTP run has started."""
    with (
        pg_admin_connect(e2e.pg_server, e2e.data_db) as conn,
        advisory_lock(conn, f"mysql:{DEFAULT_TARGET_SCHEMA}.machines"),
    ):
        first = _launch_job(e2e, "mysql_sync_job", ["legacy", "machines"])
        second = _launch_job(e2e, "mysql_sync_job", ["legacy", "machines"])
        _wait_for_run(e2e, first, 60, until=STARTED_OR_FINISHED)
        with _test_instance(e2e, monkeypatch) as instance:
            skipped = _tick(instance, "mysql_sync_schedule")
            assert not skipped.run_requests
            assert first in skipped.skip_message or second in skipped.skip_message
            assert len(_tick(instance, "ftp_logs_schedule").run_requests) == 1  # not blocked
        ftp = _launch_job(e2e, "ftp_logs_job", ["logs", "machine_logs"])
        _wait_for_run(e2e, ftp, 60, until=STARTED_OR_FINISHED)
    for run_id in (first, second, ftp):
        assert _wait_for_run(e2e, run_id) == "SUCCESS", run_id
    times = {
        run_id: graphql(e2e.stack.url, RUN_TIMES, {"id": run_id})["runOrError"]
        for run_id in (first, second, ftp)
    }
    assert times[second]["startTime"] >= times[first]["endTime"]  # one mysql run at a time
    assert times[ftp]["startTime"] < times[first]["endTime"]  # ftp did not wait in line


def _chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("Debian's chromium is not installed (scripts/test installs it)")
    with tempfile.TemporaryDirectory(prefix="sa_chromium_") as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1600,1000",
             "--virtual-time-budget=25000", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def _render(url: str, screenshot: Path) -> str:
    """One headless Chromium run: a screenshot file and the rendered DOM on stdout."""
    result = _chromium(f"--screenshot={screenshot}", "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, result.stderr[-2000:]
    return result.stdout


SYNCED_GROUPS = ("legacy_mysql", "machine_logs")


@pytest.mark.parametrize("group", SYNCED_GROUPS)
def test_browser_renders_the_lineage_page(e2e: E2EEnv, group: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = f"/locations/sync_assets/asset-groups/{group}/lineage"
    dom = _render(f"{e2e.stack.url}{page}", ARTIFACTS / f"lineage-{group}.png")
    names = {
        key.split("/")[-1] for key, node in _asset_nodes(e2e).items() if node["groupName"] == group
    }
    if not names:
        pytest.skip(f"screenshot saved; no asset in group {group} yet to look for")
    missing = sorted(name for name in names if f">{name}<" not in dom)
    assert not missing, f"not rendered on {page}: {missing}"


def test_browser_renders_the_schedules_page(e2e: E2EEnv) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    dom = _render(f"{e2e.stack.url}/automation", ARTIFACTS / "schedules.png")
    for name in SCHEDULES:
        assert name in dom, f"{name} not rendered on the schedules page"


def test_schedule_toggles_persist_across_a_webserver_restart(e2e: E2EEnv) -> None:
    states = _schedules(e2e)
    assert {name: states[name]["scheduleState"]["status"] for name in SCHEDULES} == {
        "ftp_logs_schedule": "STOPPED",  # SCHEDULES_START_STOPPED=true in this instance
        "mysql_sync_schedule": "STOPPED",
    }
    assert states["mysql_sync_schedule"]["cronSchedule"] == "2,17,32,47 * * * *"
    assert states["ftp_logs_schedule"]["executionTimezone"] == "UTC"
    try:
        assert _start(e2e, "ftp_logs_schedule") == "RUNNING"
        assert _start(e2e, "mysql_sync_schedule") == "RUNNING"
        assert _stop(e2e, "mysql_sync_schedule") == "STOPPED"
        # Restart with the default flipped to RUNNING: the stored toggles must still win.
        e2e.stack.stop_webserver()
        e2e.stack.env.pop("SCHEDULES_START_STOPPED")
        e2e.stack.start_webserver()
        statuses = {n: s["scheduleState"]["status"] for n, s in _schedules(e2e).items()}
        assert statuses == {"ftp_logs_schedule": "RUNNING", "mysql_sync_schedule": "STOPPED"}
        assert _stop(e2e, "ftp_logs_schedule") == "STOPPED"
    finally:
        e2e.stack.env["SCHEDULES_START_STOPPED"] = "true"


TERMINATE = """
mutation($id: String!) { terminateRun(runId: $id) { __typename
  ... on PythonError { message } ... on TerminateRunFailure { message } } }
"""


def _waits_on_mysql_lock(mysql_server, database: str) -> bool:
    with mysql_admin_connect(mysql_server) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE DB = %s AND STATE LIKE %s AND ID <> CONNECTION_ID()",
            (database, "%lock%"),
        )
        return cur.fetchone()[0] > 0


def _launch_one(e2e: E2EEnv, job_name: str, path: list[str]) -> str:
    """One asset in a run of `job_name` with the default run config, as the UI launches it."""
    params = {"selector": {**REPO, "jobName": job_name, "assetSelection": [{"path": path}]},
              "runConfigData": {}}  # fmt: skip
    result = graphql(e2e.stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


# __ASSET_JOB: assets picked in the UI; mysql_sync_job has a RetryPolicy, under which Dagster
# turns an interrupted step into a retry: in one process nothing else would stop it.
@pytest.mark.parametrize("job_name", ["__ASSET_JOB", "mysql_sync_job"])
def test_terminating_a_one_table_run_cancels_it_and_leaves_the_table(
    e2e: E2EEnv, mysql_server, job_name: str
) -> None:
    """One table runs in the run's own process (no step process): the UI's Terminate must
    still stop it mid-read, keep the table as it was, not retry it, and leave no lock behind."""
    orders = ["legacy", "orders"]
    with pg_admin_connect(e2e.pg_server, e2e.data_db) as conn:
        assert _wait_for_run(e2e, _launch_one(e2e, job_name, orders)) == "SUCCESS"
        before = _table_fingerprints(conn)
        with mysql_admin_connect(mysql_server, e2e.mysql_db) as holder, holder.cursor() as cur:
            cur.execute("LOCK TABLES orders WRITE")
            cur.execute("UPDATE orders SET note = %s ORDER BY id LIMIT 1", (job_name,))
            run_id = _launch_one(e2e, job_name, orders)
            deadline = time.monotonic() + 180
            while not _waits_on_mysql_lock(mysql_server, e2e.mysql_db):
                assert time.monotonic() < deadline, "the run never reached its read of orders"
                time.sleep(0.5)
            result = graphql(e2e.stack.url, TERMINATE, {"id": run_id})["terminateRun"]
            assert result["__typename"] == "TerminateRunSuccess", result
            assert _wait_for_run(e2e, run_id, 120) == "CANCELED"
            cur.execute("UNLOCK TABLES")
        time.sleep(5)  # a step started again after the interrupt would now read and write
        assert _table_fingerprints(conn) == before
        assert _wait_for_run(e2e, _launch_one(e2e, job_name, orders)) == "SUCCESS"  # no lock left
        changed = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.orders WHERE note = %s").format(
                sql.Identifier(DEFAULT_TARGET_SCHEMA)
            ),
            (job_name,),
        )
        assert changed.fetchone()[0] == 1
