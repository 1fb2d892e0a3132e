"""Operator actions launched as the UI launches them: `launchRun` with `runConfigData` on a real
webserver + daemon, against real PostgreSQL, MariaDB and FTP servers; each test then looks at
the real data, the run's tags (the audit trail) and what the run reported.

The tests of this module share one stack (the `ui` fixture) and each prepares the state it
needs, so any one of them runs alone.
"""

import gzip
import hashlib
import os
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from sync_assets.core.actions import ACTION_TAG, REASON_TAG, REQUESTED_BY_TAG, TARGET_TAG
from sync_assets.devtools.demo_legacy import DEMO_TABLES
from sync_assets.devtools.demo_stack import graphql
from sync_assets.devtools.servers import ServerInfo
from sync_assets.ftp.observe import SENSOR_NAME
from sync_assets.orchestration.actions import FTP_DRY_RUN_JOB, MYSQL_DRY_RUN_JOB
from sync_assets_tests.conftest import mysql_admin_connect, pg_admin_connect
from sync_assets_tests.orchestration import conftest as e2e_conftest
from sync_assets_tests.orchestration.conftest import E2EEnv
from sync_assets_tests.orchestration.test_ui_e2e import (
    IN_PROCESS,
    LAUNCH,
    REPO,
    _test_instance,
    _wait_for_run,
)

# Several runs per test, each waited for on its real status: generous on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

# The module's own stack: the UI tests' fixture, under this module's name for it.
ui = e2e_conftest.e2e

ORDERS = ["legacy", "orders"]
LOGS = ["logs", "machine_logs"]
HOUR_AGO = time.time() - 3600


def _launch(
    ui: E2EEnv, job: str, config: dict | None = None, asset: list[str] | None = None
) -> str:
    """What the launchpad sends: the job (or the asset job with one asset) and the run config."""
    selector: dict = {**REPO, "jobName": job}
    if asset is not None:
        selector["assetSelection"] = [{"path": asset}]
    params = {"selector": selector, "runConfigData": {**IN_PROCESS, **(config or {})}}
    result = graphql(ui.stack.url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


RUN_ERRORS = """
query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  __typename ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } }
"""


def _errors(ui: E2EEnv, run_id: str) -> list[str]:
    """The run's failure events as the run page lists them (for the assertion message)."""
    events = graphql(ui.stack.url, RUN_ERRORS, {"id": run_id})["logsForRun"]["events"]
    return [e["message"] + str(e.get("error")) for e in events if "Failure" in e["__typename"]]


def _run(ui: E2EEnv, job: str, config: dict | None = None, asset: list[str] | None = None) -> str:
    run_id = _launch(ui, job, config, asset)
    status = _wait_for_run(ui, run_id, timeout=600)
    assert status == "SUCCESS", (run_id, _errors(ui, run_id))
    return run_id


def _asset_config(asset: list[str], **values: object) -> dict:
    return {"ops": {"__".join(asset): {"config": values}}}


def _materialize(ui: E2EEnv, asset: list[str], **values: object) -> str:
    return _run(ui, "__ASSET_JOB", _asset_config(asset, **values) if values else None, asset)


RUN_TAGS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } runConfigYaml } } }
"""


def _tags(ui: E2EEnv, run_id: str) -> dict[str, str]:
    """The run's tags as the Runs page shows them."""
    run = graphql(ui.stack.url, RUN_TAGS, {"id": run_id})["runOrError"]
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list:
    return [
        record.event_log_entry
        for record in instance.get_records_for_run(run_id, of_type=kind, limit=1000).records
    ]


def _output_metadata(instance: dg.DagsterInstance, run_id: str) -> dict:
    [entry] = _events(instance, run_id, dg.DagsterEventType.STEP_OUTPUT)
    return entry.dagster_event.event_specific_data.metadata


def _materialization(instance: dg.DagsterInstance, run_id: str) -> dict:
    [entry] = _events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
    return entry.dagster_event.event_specific_data.materialization.metadata


def _checks(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    entries = _events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    found = [e.dagster_event.event_specific_data for e in entries]
    return {evaluation.check_name: evaluation for evaluation in found}


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


# --- state of the real servers, to prove a dry run wrote nothing ---------------------------


def _pg_state(conn: psycopg.Connection) -> dict[str, object]:
    """Every schema, table and sequence of the data database, and each table's content."""
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
        " AND nspname <> 'information_schema' ORDER BY 1"
    ).fetchall()
    relations = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'S', 'v', 'i') AND n.nspname NOT LIKE 'pg\\_%'"
        " AND n.nspname <> 'information_schema' ORDER BY 1, 2"
    ).fetchall()
    content = {}
    for schema, name, kind in relations:
        if kind == "r":
            query = sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
            ).format(sql.Identifier(schema, name))
            content[(schema, name)] = conn.execute(query).fetchone()[0]
    return {"schemas": schemas, "relations": relations, "content": content}


def _ftp_state(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(path.relative_to(root)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _write_old(path: Path, content: bytes, mtime: float = HOUR_AGO) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))


def _dry_runs(ui: E2EEnv, instance: dg.DagsterInstance) -> tuple[dict, dict]:
    """Both dry runs; asserts that neither changed PostgreSQL or the FTP server."""
    reason = {"reason": "look before turning deletes on", "requested_by": "ops-test"}
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        pg_before, ftp_before = _pg_state(conn), _ftp_state(ui.ftp.root)
        mysql_run = _run(ui, MYSQL_DRY_RUN_JOB, {"ops": {"plan_mysql_sync": {"config": reason}}})
        ftp_run = _run(ui, FTP_DRY_RUN_JOB, {"ops": {"plan_ftp_logs": {"config": reason}}})
        assert _pg_state(conn) == pg_before
    assert _ftp_state(ui.ftp.root) == ftp_before
    for run_id in (mysql_run, ftp_run):
        tags = _tags(ui, run_id)
        assert tags[ACTION_TAG] == "dry_run" and tags[REQUESTED_BY_TAG] == "ops-test"
        assert tags[REASON_TAG] == reason["reason"]
    mysql_plan = _output_metadata(instance, mysql_run)["plan_json"].value
    ftp_plan = _output_metadata(instance, ftp_run)["plan_json"].value["machine_logs"]
    return {p["table"]: p for p in mysql_plan}, ftp_plan


def _ledger(conn: psycopg.Connection) -> dict[str, tuple]:
    rows = conn.execute(
        "SELECT path, status, offset_bytes, size, run_id FROM sync_meta.ftp_ledger"
        " WHERE source = 'machine_logs'"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_dry_runs_report_modes_and_files_and_write_nothing(ui: E2EEnv, monkeypatch) -> None:
    with _test_instance(ui, monkeypatch) as instance:
        tables, files = _dry_runs(ui, instance)  # whatever ran before: nothing is written
        assert set(tables) == set(DEMO_TABLES)
        _materialize(ui, ORDERS)
        _materialize(ui, LOGS)
        new_file = ui.ftp.root / "dryrun" / "new.csv"
        _write_old(new_file, b"timestamp,machine,event\n2026-12-01T10:00:00Z,press-01,x\n")
        tables, files = _dry_runs(ui, instance)
    assert tables["orders"]["mode"] == "incremental", tables["orders"]
    assert tables["orders"]["reason"] == "cursor and primary key"
    assert tables["orders"]["watermark"]
    assert all(t["error"] is None for t in tables.values()), tables
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        ledger = _ledger(conn)
    assert files["load"] == ["/dryrun/new.csv"]
    assert files["backlog_bytes"] == new_file.stat().st_size
    # With DELETE_AFTER_SYNC=true: every file loaded whole, and the new one after its load.
    loaded_whole = {p for p, (status, offset, size, _) in ledger.items() if status == "loaded"}
    loaded_whole = {p for p in loaded_whole if ledger[p][1] >= ledger[p][2]}
    assert loaded_whole, ledger
    assert set(files["deleted_with_delete_after_sync"]) == loaded_whole | {"/dryrun/new.csv"}
    assert set(files["keep"]) >= set(ledger) - loaded_whole - set(files["failed"])


def test_verify_every_value_then_full_refresh_of_one_table(
    ui: E2EEnv, mysql_server: ServerInfo, monkeypatch
) -> None:
    _materialize(ui, ORDERS)  # the copy exists and has a watermark
    with mysql_admin_connect(mysql_server, ui.mysql_db) as my, my.cursor() as cur:
        # A change an incremental run cannot see: the cursor moved back in time.
        cur.execute("UPDATE orders SET note = 'backdated', updated_at = '2020-01-01' WHERE id = 1")
    _materialize(ui, ORDERS)
    why = {"reason": "auditor asked for a full comparison", "requested_by": "alice"}
    with _test_instance(ui, monkeypatch) as instance:
        verify = _materialize(ui, ORDERS, verify_values=True, **why)
        check = _checks(instance, verify)["values_match_source"]
        assert not check.passed and check.metadata["mismatched_rows"].value == 1
        assert check.metadata["sample_primary_keys"].value == "1"
        tags = _tags(ui, verify)
        assert tags[ACTION_TAG] == "verify_values" and tags[TARGET_TAG] == "legacy.orders"
        assert tags[REASON_TAG] == why["reason"] and tags[REQUESTED_BY_TAG] == "alice"
        line = "action verify_values of legacy.orders requested by alice: auditor asked"
        assert any(line in message for message in _messages(instance, verify))

        refresh = _materialize(ui, ORDERS, full_refresh=True, verify_values=True, **why)
        metadata = _materialization(instance, refresh)
        assert metadata["mode"].value == "full_refresh"
        assert why["reason"] in metadata["mode_reason"].value
        assert metadata["action"].value == "full_refresh+verify_values"
        checks = _checks(instance, refresh)
        assert checks["values_match_source"].passed
        assert checks["column_schema_change"].passed
        assert _tags(ui, refresh)[ACTION_TAG] == "full_refresh+verify_values"
        plain = _materialize(ui, ORDERS)  # empty config: as scheduled, no action recorded
        assert ACTION_TAG not in _tags(ui, plain)
        assert "values_match_source" not in _checks(instance, plain)
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        row = conn.execute("SELECT note, updated_at FROM legacy.orders WHERE id = 1").fetchone()
    assert row[0] == "backdated" and row[1].year == 2020


def test_reingest_one_file_and_all_failed_files(ui: E2EEnv, monkeypatch) -> None:
    good = gzip.compress(b"timestamp,machine,event\n2026-12-01T10:00:00Z,lathe-01,fixed\n")
    bad = (b"timestamp,machine,event\n" * 20)[: len(good)]  # not gzip: the file fails
    path = ui.ftp.root / "reingest" / "late.csv.gz"
    _write_old(path, bad)
    _materialize(ui, LOGS)
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        assert _ledger(conn)["/reingest/late.csv.gz"][0] == "failed"
        one = next(p for p, e in _ledger(conn).items() if e[0] == "loaded")
        rows_before = _rows_of(conn, one)
    # Fixed on the server with the same size and time: a scheduled run does not look again.
    _write_old(path, good)
    _materialize(ui, LOGS)
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        assert _ledger(conn)["/reingest/late.csv.gz"][0] == "failed"
    why = {"reason": "file fixed by the machine vendor", "requested_by": "bob"}
    with _test_instance(ui, monkeypatch) as instance:
        run_id = _materialize(ui, LOGS, reingest_paths=[one], reingest_failed=True, **why)
        metadata = _materialization(instance, run_id)
        checks = _checks(instance, run_id)
    assert sorted(metadata["reingested_files"].value) == sorted([one, "/reingest/late.csv.gz"])
    assert metadata["backlog_bytes"].value >= 0 and metadata["lag_seconds"].value > 0
    assert {"lines_accounted_for", "lag_within_bounds", "rejects_within_bounds"} <= set(checks)
    assert _tags(ui, run_id)[ACTION_TAG] == "reingest"
    with pg_admin_connect(ui.pg_server, ui.data_db) as conn:
        ledger = _ledger(conn)
        assert ledger["/reingest/late.csv.gz"][0] == "loaded"
        assert ledger["/reingest/late.csv.gz"][3] == run_id and ledger[one][3] == run_id
        assert _rows_of(conn, one) == rows_before  # loaded again, exactly once
        assert _run_ids_of(conn, one) == {run_id}
        assert _rows_of(conn, "/reingest/late.csv.gz") == 1


def _rows_of(conn: psycopg.Connection, path: str) -> int:
    query = "SELECT count(*) FROM machine_logs.machine_logs WHERE _source_file = %s"
    return conn.execute(query, (path,)).fetchone()[0]


def _run_ids_of(conn: psycopg.Connection, path: str) -> set[str]:
    query = "SELECT DISTINCT _run_id FROM machine_logs.machine_logs WHERE _source_file = %s"
    return {row[0] for row in conn.execute(query, (path,)).fetchall()}


def _text(value: object) -> str | None:
    return value.value if isinstance(value, dg.TextMetadataValue) else None


def test_backlog_observed_by_the_sensor_between_runs(ui: E2EEnv, monkeypatch) -> None:
    """The daemon's sensor records the backlog of ftp/machine_logs without any run."""
    key = dg.AssetKey(["ftp", "machine_logs"])
    deadline = time.monotonic() + 300
    with _test_instance(ui, monkeypatch) as instance:
        while time.monotonic() < deadline:
            found = instance.fetch_observations(key, limit=20).records
            by_sensor = [
                r.asset_observation
                for r in found
                if _text(r.asset_observation.metadata.get("observed_by")) == "sensor"
            ]
            if by_sensor:
                break
            time.sleep(2)
        else:
            pytest.fail(f"no observation by {SENSOR_NAME} within 300 s")
    metadata = by_sensor[0].metadata
    assert metadata["backlog_files"].value >= 0 and metadata["files_listed"].value > 0
    assert "backlog_bytes" in metadata
