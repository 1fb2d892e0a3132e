"""The container stack as users run it: the built image's roles under compose, on podman.

Run by scripts/test-image (`pytest -m image sync_assets_tests/image`); skipped otherwise.
Order matters only for speed: the FTP schedule's first tick is awaited last but one, so the
earlier tests use the time before it; the restart tests come last.
"""

from __future__ import annotations

import ftplib
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
# What one run materialised (its own events): a schedule tick's run of the same table later
# does not hide it, as "the asset's latest materialisation" would.
MATERIALIZED = """
query($id: ID!) { runOrError(runId: $id) { ... on Run {
  assetMaterializations { assetKey { path } } } } }
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


def _launch_assets(stack: Stack, paths: list[list[str]]) -> str:
    params = {
        "selector": {
            **REPO, "jobName": "__ASSET_JOB", "assetSelection": [{"path": p} for p in paths]
        },
        "runConfigData": {},
    }  # fmt: skip
    result = graphql(stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _launch_asset(stack: Stack, path: list[str]) -> str:
    return _launch_assets(stack, [path])


def _status(stack: Stack, run_id: str) -> str:
    return graphql(stack.url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def _wait_finished(stack: Stack, run_id: str, timeout: float = 300) -> str:
    return wait_for(
        lambda: (s := _status(stack, run_id)) in FINISHED and s, f"run {run_id} finished", timeout
    )


def _materialized_by(stack: Stack, run_id: str) -> set[str]:
    run = graphql(stack.url, MATERIALIZED, {"id": run_id})["runOrError"]
    return {"/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]}


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
    by_run = _materialized_by(stack, run_id)
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
    """Whenever the first tick falls, it has rows to load: the feed's files being written are
    too young until they rotate (100 s), but a fresh feed leaves each machine yesterday's file."""
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


# A file's transaction held mid-load: its rows are COPYed into a machine_logs table (the lock
# it holds there) and its ledger row's INSERT waits for the test's lock on the ledger.
HELD_LEDGER_WRITE = """
SELECT count(*) FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.wait_event_type = 'Lock' AND a.query LIKE 'INSERT INTO "sync_meta"."ftp_ledger"%'
  AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE l.pid = a.pid AND l.granted AND l.mode = 'RowExclusiveLock'
                AND n.nspname = 'machine_logs')
"""


def _ftp_load_held(stack: Stack, pg_server: ServerInfo) -> bool:
    with _pg(stack, pg_server) as conn:
        return conn.execute(HELD_LEDGER_WRITE).fetchone()[0] > 0


def _ftp_files(stack: Stack) -> dict[str, int]:
    """Every file on the demo feed's FTP server (the test's own client): path -> data lines."""
    found: dict[str, int] = {}
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", int(stack.env["TIER_FTP_PORT"]), timeout=30)
        ftp.login(stack.env["FTP_USER"], stack.secrets.ftp_password)
        for machine, facts in list(ftp.mlsd("/")):
            if facts["type"] != "dir":
                continue
            for name, file_facts in list(ftp.mlsd(f"/{machine}")):
                if file_facts["type"] == "file":
                    lines: list[str] = []
                    ftp.retrlines(f"RETR /{machine}/{name}", lines.append)
                    found[f"/{machine}/{name}"] = max(len(lines) - 1, 0)  # minus the header
    return found


def _ftp_asset_paths(stack: Stack) -> list[list[str]]:
    nodes = graphql(stack.url, ASSET_NODES)["assetNodes"]
    return [
        n["assetKey"]["path"]
        for n in nodes
        if n["groupName"] == "machine_logs" and n["isExecutable"]
    ]


def _log_rows_of(conn: psycopg.Connection, path: str) -> int:
    tables = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'machine_logs'"
    ).fetchall()
    return sum(
        conn.execute(
            f'SELECT count(*) FROM machine_logs."{table}" WHERE _source_file = %s', (path,)
        ).fetchone()[0]
        for (table,) in tables
    )


def _assert_deleted_files_were_committed(
    stack: Stack, pg_server: ServerInfo, seen: dict[str, int]
) -> None:
    """DELETE_AFTER_SYNC is on in the tier: a file seen on the FTP server and gone now must
    have its ledger row and every line seen committed (a DELE before the commit, then the lost
    worker, would leave it gone with no rows)."""
    after = _ftp_files(stack)
    deleted = sorted(set(seen) - set(after))
    assert deleted, "the retried run deleted no file: DELETE_AFTER_SYNC not exercised"
    with _pg(stack, pg_server) as conn:
        for path in deleted:
            row = conn.execute(
                "SELECT status, rows_loaded FROM sync_meta.ftp_ledger WHERE path = %s", (path,)
            ).fetchone()
            assert row is not None and row[0] in {"loaded", "deleted"}, (path, row)
            rows = _log_rows_of(conn, path)
            assert rows == row[1] and rows >= seen[path], (path, rows, row, seen[path])


def _assert_no_doubled_line(stack: Stack, pg_server: ServerInfo) -> None:
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


def _held_ftp_run(stack: Stack, pg_server: ServerInfo, seen: dict[str, int]) -> str:
    """Launch FTP runs until one is held mid-load. A run finds work only once a rotated file is
    old enough (the demo feed rotates every 100 s), so a run that ended with nothing to load is
    followed by another. A held schedule-tick run counts too: ours then waits for its source's
    lock, in a worker of the same code server. `seen` gets every file on the FTP server at each
    look (most lines seen), so that one deleted before the hold is known too."""
    paths = _ftp_asset_paths(stack)
    run_id = _launch_assets(stack, paths)
    deadline = time.monotonic() + 420
    while True:
        for path, lines in _ftp_files(stack).items():
            seen[path] = max(lines, seen.get(path, 0))
        if _status(stack, run_id) == "STARTED" and _ftp_load_held(stack, pg_server):
            return run_id
        assert time.monotonic() < deadline, "no FTP run reached a file's commit in 7 minutes"
        if _status(stack, run_id) in FINISHED:
            run_id = _launch_assets(stack, paths)
        time.sleep(2)


def _legacy_run_inside_mysql(stack: Stack, launched: str) -> str | None:
    """The started run whose read waits on the table lock: ours, or a tick of the MySQL
    schedule (minutes 2, 17, 32, 47) that came first. Ours then waits in the run queue behind
    it (one run per job at a time) and the tick's run is the one the redeploy cuts."""
    if _status(stack, launched) == "STARTED":
        return launched
    tick = {"key": "dagster/schedule_name", "value": "mysql_sync_schedule"}
    runs = graphql(stack.url, RUNS, {"filter": {"tags": [tick], "statuses": ["STARTED"]}})
    results = runs["runsOrError"]["results"]
    return results[0]["runId"] if results else None


def _hold_runs_and_redeploy(
    stack: Stack, pg_server: ServerInfo, mysql_server: ServerInfo
) -> tuple[str, str, dict[str, int]]:
    """Hold an FTP run between a file's COPY and its commit (a lock on the FTP ledger) and a
    legacy-table run inside its MySQL read (a table lock), recreate the code-server container,
    then release both. Returns both run ids and the files seen on the FTP server until then."""
    ledger_locker = _pg(stack, pg_server)
    mysql_locker = mysql_admin_connect(mysql_server, stack.pg_db)
    seen: dict[str, int] = {}
    try:
        ledger_locker.execute("BEGIN")
        # Reads of the ledger go on; its writes (a file's commit, a delete's record) wait.
        ledger_locker.execute("LOCK TABLE sync_meta.ftp_ledger IN EXCLUSIVE MODE")
        ftp_run = _held_ftp_run(stack, pg_server, seen)
        with mysql_locker.cursor() as cur:
            cur.execute("LOCK TABLES products WRITE")  # the run's read waits here
        legacy_run = _launch_asset(stack, ["legacy", "products"])
        wait_for(lambda: _waiting_on_lock(mysql_server, stack.pg_user), "run inside MySQL", 300)
        legacy_run = wait_for(
            lambda: _legacy_run_inside_mysql(stack, legacy_run), "the legacy run started", 60, 2
        )
        assert _ftp_load_held(stack, pg_server) and _status(stack, ftp_run) == "STARTED"
        redeploy = stack.compose("up", "-d", "--no-build", "--no-deps", "--force-recreate",
                                 "code-server")  # fmt: skip
        assert redeploy.returncode == 0, redeploy.stderr[-2000:]
    finally:
        mysql_locker.close()  # releases the table lock
        ledger_locker.close()  # rolls back: releases the ledger
    return legacy_run, ftp_run, seen


def test_code_server_replaced_mid_run_leaves_whole_tables_and_no_doubled_file(
    stack: Stack, pg_server: ServerInfo, mysql_server: ServerInfo
) -> None:
    """A redeploy (the code-server container recreated) while a legacy run is inside its MySQL
    read and an FTP run (DELETE_AFTER_SYNC=true) between a file's COPY and its commit."""
    legacy_run, ftp_run, seen = _hold_runs_and_redeploy(stack, pg_server, mysql_server)
    with mysql_admin_connect(mysql_server, stack.pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM products")
        source_rows = cur.fetchone()[0]
    # Their workers died with the old container: run monitoring marks them failed (our
    # launcher's worker health check), and the instance's run_retries launches each once more.
    assert _wait_finished(stack, legacy_run, timeout=600) == "FAILURE"
    assert _copied_rows(stack, pg_server) in {None, source_rows}  # never half
    assert _wait_finished(stack, ftp_run, timeout=600) == "FAILURE"
    wait_for(lambda: stack.health("code-server") == "healthy", "new code server healthy", 180)
    for run_id in (legacy_run, ftp_run):
        retry = wait_for(lambda r=run_id: _retry_of(stack, r), "the retry of a failed run", 180, 3)
        assert _wait_finished(stack, retry) == "SUCCESS"
    assert _copied_rows(stack, pg_server) == source_rows
    _assert_no_doubled_line(stack, pg_server)
    _assert_deleted_files_were_committed(stack, pg_server, seen)
