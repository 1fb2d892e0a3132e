"""The container stack as users run it: the built image's roles under compose, on podman.

Run by scripts/test-image (`pytest -m image sync_assets_tests/image`); skipped otherwise.
Order matters only for speed: the FTP schedule's first tick is awaited last but one, so the
earlier tests use the time before it; the restart tests come last.
"""

from __future__ import annotations

import json
import subprocess
import time

import psycopg
import pytest

from sync_assets.devtools.demo_legacy import DEMO_TABLES
from sync_assets.devtools.demo_stack import graphql
from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import mysql_admin_connect
from sync_assets_tests.image.conftest import ALL_SERVICES, APP_SERVICES, Stack, podman, wait_for
from sync_assets_tests.orchestration.test_ui_e2e import (
    ASSET_NODES,
    FINISHED,
    LAUNCH,
    REPO,
    RUN_STATUS,
    SCHEDULE_STATES,
    SCHEDULES,
)

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(900)]
NON_ROOT_UID = "10001"

RUNS = """
query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName tags { key value } } } } }
"""
MATERIALIZED = """
{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }
"""
RESOURCES = """
query($repo: RepositorySelector!) { allTopLevelResourceDetailsOrError(repositorySelector: $repo) {
  ... on ResourceDetailsList { results { name configFields { name }
      configuredValues { key value type } } } } }
"""


def _pg(stack: Stack, pg_server: ServerInfo) -> psycopg.Connection:
    return psycopg.connect(
        host=pg_server.host, port=pg_server.port, user=stack.pg_user,
        password=stack.secrets.pg_password, dbname=stack.pg_db, autocommit=True,
    )  # fmt: skip


def _launch_asset(stack: Stack, path: list[str]) -> str:
    params = {
        "selector": {**REPO, "jobName": "__ASSET_JOB", "assetSelection": [{"path": path}]},
        "runConfigData": {},
    }
    result = graphql(stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _status(stack: Stack, run_id: str) -> str:
    return graphql(stack.url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def _wait_finished(stack: Stack, run_id: str, timeout: float = 300) -> str:
    return wait_for(
        lambda: (s := _status(stack, run_id)) in FINISHED and s, f"run {run_id} finished", timeout
    )


def _materialized_by(stack: Stack) -> dict[str, str | None]:
    nodes = graphql(stack.url, MATERIALIZED)["assetNodes"]
    return {
        "/".join(n["assetKey"]["path"]): (n["assetMaterializations"] or [{}])[0].get("runId")
        for n in nodes
    }


# --- 1, 2: drop-in start, health, non-root -----------------------------------------------------


def test_drop_in_every_role_is_healthy_with_only_the_old_variables(stack: Stack) -> None:
    for service in APP_SERVICES:
        env = json.loads(
            podman("inspect", "--format", "{{json .Config.Env}}", stack.container(service)).stdout
        )
        names = {item.split("=", 1)[0] for item in env}
        assert not names & {"POSTGRES_PORT", "DAGSTER_PG_DB"}, (service, names)
    assert stack.all_healthy()
    print(f"cold start to all-healthy: {stack.cold_start_seconds:.1f} s")


def test_processes_run_as_the_non_root_user(stack: Stack) -> None:
    for service in (*APP_SERVICES, "demo-ftp"):
        top = podman("top", stack.container(service), "huser", "args").stdout.splitlines()[1:]
        assert top, service
        for line in top:
            assert line.split()[0] == NON_ROOT_UID, (service, line)


def _check_fails(name: str) -> bool:
    return podman("healthcheck", "run", name, check=False, timeout=60).returncode != 0


@pytest.mark.parametrize("service", ["code-server", "webserver", "daemon"])
def test_health_check_fails_when_the_process_is_stopped(stack: Stack, service: str) -> None:
    """SIGSTOP: the process is there but does nothing. The daemon's check reads its heartbeats
    (every 30 s, 120 s of silence tolerated), the others ask the process itself."""
    name = stack.container(service)
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    podman("kill", "--signal", "STOP", name)
    try:
        wait_for(lambda: _check_fails(name), f"{service}'s health check failing", 300, 5)
    finally:
        podman("kill", "--signal", "CONT", name)
    wait_for(
        lambda: podman("healthcheck", "run", name, check=False).returncode == 0,
        f"{service} healthy again",
        120,
    )


# --- 3: the UI workflows through the containerised webserver -----------------------------------


def test_lineage_edges_and_both_schedules_running(stack: Stack) -> None:
    nodes = {
        "/".join(n["assetKey"]["path"]): n for n in graphql(stack.url, ASSET_NODES)["assetNodes"]
    }
    for table in DEMO_TABLES:
        deps = {"/".join(d["path"]) for d in nodes[f"legacy/{table}"]["dependencyKeys"]}
        assert f"mysql/{table}" in deps
    logs = [k for k, n in nodes.items() if n["groupName"] == "machine_logs" and n["isExecutable"]]
    assert logs
    for key in logs:
        deps = {"/".join(d["path"]) for d in nodes[key]["dependencyKeys"]}
        assert f"ftp/{key.split('/', 1)[1]}" in deps
    data = graphql(stack.url, SCHEDULE_STATES, {"repo": REPO})
    states = {s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]}
    assert states == dict.fromkeys(SCHEDULES, "RUNNING")


def test_a_single_legacy_table_launch_materialises_only_that_table(
    stack: Stack, pg_server: ServerInfo
) -> None:
    run_id = _launch_asset(stack, ["legacy", "orders"])
    assert _wait_finished(stack, run_id) == "SUCCESS"
    by_run = {key for key, rid in _materialized_by(stack).items() if rid == run_id}
    assert by_run == {"legacy/orders"}
    with _pg(stack, pg_server) as conn:
        assert conn.execute("SELECT count(*) FROM legacy.orders").fetchone()[0] > 0


def test_no_secret_in_what_the_ui_shows(stack: Stack) -> None:
    shown = json.dumps(graphql(stack.url, RESOURCES, {"repo": REPO}))
    assert "POSTGRES_PASSWORD" in shown  # the variable's name is shown, never its value
    for secret in stack.secrets.values():
        assert secret not in shown
    runs = json.dumps(graphql(stack.url, RUNS, {"filter": {}}))
    for secret in stack.secrets.values():
        assert secret not in runs


def test_the_ftp_schedule_ticks_within_its_window_and_loads_the_feed(
    stack: Stack, pg_server: ServerInfo
) -> None:
    tick_tag = {"key": "dagster/schedule_name", "value": "ftp_logs_schedule"}

    def ftp_tick_run() -> dict | None:
        runs = graphql(stack.url, RUNS, {"filter": {"tags": [tick_tag]}})["runsOrError"]
        return runs["results"][-1] if runs["results"] else None

    run = wait_for(ftp_tick_run, "a tick of ftp_logs_schedule", 6 * 60, 5)
    assert _wait_finished(stack, run["runId"]) == "SUCCESS"
    with _pg(stack, pg_server) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'machine_logs'"
        ).fetchall()
        rows = sum(
            conn.execute(f'SELECT count(*) FROM machine_logs."{t}"').fetchone()[0]
            for (t,) in tables
        )
    assert rows > 0


# --- 6: no secret in logs or the image ---------------------------------------------------------


def test_no_secret_in_container_logs(stack: Stack) -> None:
    for service in ALL_SERVICES:
        logs = podman("logs", stack.container(service), check=False)
        for secret in stack.secrets.values():
            assert secret not in logs.stdout + logs.stderr, service


@pytest.mark.parametrize("image", ["sync-assets", "sync-assets-demo"])
def test_no_secret_in_the_image_history_or_config(stack: Stack, image: str) -> None:
    ref = f"localhost/{image}:{stack.env['SYNC_ASSETS_TAG']}"
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout
    config = podman("image", "inspect", ref).stdout
    for text in (history, config):
        for word in ("PASSWORD=", "FTP_PASS=", "change-me", "legacy-demo", "ftp-demo"):
            assert word not in text, (image, word)
        for secret in stack.secrets.values():
            assert secret not in text


# --- 4: restarts -------------------------------------------------------------------------------


def _daemon_heartbeat(stack: Stack) -> float:
    data = graphql(
        stack.url, "{ instance { daemonHealth { allDaemonStatuses { lastHeartbeatTime } } } }"
    )
    beats = [
        s["lastHeartbeatTime"] or 0 for s in data["instance"]["daemonHealth"]["allDaemonStatuses"]
    ]
    return max(beats)


def test_a_killed_daemon_container_comes_back_and_ticks_continue(stack: Stack) -> None:
    name = stack.container("daemon")
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    restarts = podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip()
    subprocess.run(["kill", "-KILL", pid], check=True)  # a crash, not an operator's stop
    wait_for(
        lambda: podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip() != restarts,
        "daemon restarted by its restart policy",
        120,
    )
    killed_at = time.time()
    wait_for(lambda: _daemon_heartbeat(stack) > killed_at, "a heartbeat of the new daemon", 180)
    wait_for(lambda: stack.health("daemon") == "healthy", "daemon healthy again", 180)


def _copied_rows(stack: Stack, pg_server: ServerInfo) -> int | None:
    with _pg(stack, pg_server) as conn:
        if not conn.execute("SELECT to_regclass('legacy.products') IS NOT NULL").fetchone()[0]:
            return None
        return conn.execute("SELECT count(*) FROM legacy.products").fetchone()[0]


def _retry_of(stack: Stack, run_id: str) -> str | None:
    runs = graphql(
        stack.url, RUNS, {"filter": {"tags": [{"key": "dagster/parent_run_id", "value": run_id}]}}
    )
    results = runs["runsOrError"]["results"]
    return results[0]["runId"] if results else None


def _waiting_on_lock(server: ServerInfo, user: str) -> bool:
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.processlist WHERE user = %s AND state LIKE %s",
            (user, "%lock%"),
        )
        return cur.fetchone()[0] > 0


def test_code_server_replaced_mid_run_leaves_whole_tables_and_no_doubled_file(
    stack: Stack, pg_server: ServerInfo, mysql_server: ServerInfo
) -> None:
    """A redeploy (the code-server container recreated) while a run is inside its MySQL read."""
    locker = mysql_admin_connect(mysql_server, stack.pg_db)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES products WRITE")  # the run's read waits here
        run_id = _launch_asset(stack, ["legacy", "products"])
        wait_for(lambda: _waiting_on_lock(mysql_server, stack.pg_user), "run inside MySQL", 300)
        assert _status(stack, run_id) == "STARTED"
        redeploy = stack.compose("up", "-d", "--no-build", "--no-deps", "--force-recreate",
                                 "code-server")  # fmt: skip
        assert redeploy.returncode == 0, redeploy.stderr[-2000:]
    finally:
        locker.close()  # releases the lock
    with mysql_admin_connect(mysql_server, stack.pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM products")
        source_rows = cur.fetchone()[0]
    # Its worker died with the old container: run monitoring marks it failed (our launcher's
    # worker health check), and the instance's run_retries launches it again once.
    assert _wait_finished(stack, run_id, timeout=600) == "FAILURE"
    assert _copied_rows(stack, pg_server) in {None, source_rows}  # never half
    wait_for(lambda: stack.health("code-server") == "healthy", "new code server healthy", 180)
    retry = wait_for(lambda: _retry_of(stack, run_id), "the retry of the failed run", 180, 3)
    assert _wait_finished(stack, retry) == "SUCCESS"
    assert _copied_rows(stack, pg_server) == source_rows
    with _pg(stack, pg_server) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'machine_logs'"
        ).fetchall()
        for (table,) in tables:
            doubled = conn.execute(
                f'SELECT count(*) FROM (SELECT 1 FROM machine_logs."{table}"'
                " GROUP BY _source_file, _file_version, _line_number HAVING count(*) > 1) d"
            ).fetchone()[0]
            assert doubled == 0, table
