"""The FTP backlog (observations between runs, materialisation metadata), the lag and rejects
checks and the reason an action needs: against a real FTP server and PostgreSQL, in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg

from sync_assets.ftp.actions import preview_source
from sync_assets.ftp.definitions import (
    LAG_CHECK,
    REJECTS_CHECK,
    build_log_asset,
    build_source_spec,
    lag_check,
    source_key,
)
from sync_assets.ftp.observe import build_backlog_sensor
from sync_assets.resources import FTPResource
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp import conftest as ftp_conftest
from sync_assets_tests.ftp.conftest import write_file

# The FTP tests' source factory (own table and schema per test, no stable-file waits).
make_source = ftp_conftest.make_source

OLD = b"ts;v\n2026-11-28 10:00:00;1\n2026-11-28 10:05:00;2\n"
YOUNG = b"ts;v\n2026-11-28 11:00:00;3\n"


def _materialize(source, resources, config: dict | None = None) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {f"logs__{source.name}": {"config": config}}} if config else None
    return dg.materialize(
        [build_source_spec(source), build_log_asset(source)],
        resources=resources,
        run_config=run_config,
        raise_on_error=False,
    )


def _sensor_observation(source, resources) -> dict:
    sensor = build_backlog_sensor([(source, source_key(source))])
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = sensor(context)
    assert isinstance(result, dg.SensorResult), result
    [observation] = result.asset_events
    assert observation.asset_key == source_key(source)
    return {k: v.value for k, v in observation.metadata.items()}


def test_backlog_between_runs_and_after_a_run(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    old = write_file(server.root, "a.csv", OLD)
    young = write_file(server.root, "b.csv", YOUNG, age_seconds=0)
    source = make_source("backlog", min_age_seconds=600)
    resources = {"postgres": pg_resource, "ftp": make_ftp_resource(server)}
    tables_before = pg_conn.execute("SELECT count(*) FROM pg_tables").fetchone()

    # Before any run: both files wait (one loadable now, one too young); nothing created.
    seen = _sensor_observation(source, resources)
    assert seen["backlog_files"] == 2 and seen["files_listed"] == 2
    assert seen["backlog_bytes"] == old.stat().st_size + young.stat().st_size
    assert pg_conn.execute("SELECT count(*) FROM pg_tables").fetchone() == tables_before

    result = _materialize(source, resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node(f"logs__{source.name}")
    assert materialization.metadata["backlog_files"].value == 1  # the young file
    assert materialization.metadata["backlog_bytes"].value == young.stat().st_size
    seen = _sensor_observation(source, resources)
    assert (seen["backlog_files"], seen["backlog_bytes"]) == (1, young.stat().st_size)

    # The file grows: only the appended bytes wait.
    extra = b"2026-11-28 10:10:00;9\n"
    write_file(server.root, "a.csv", OLD + extra)
    preview = preview_source(make_ftp_resource(server), pg_resource, source)
    grown = next(f for f in preview.files if f.path == "/a.csv")
    assert (grown.action, grown.pending_bytes) == ("load", len(extra))
    assert grown.why == f"grew by {len(extra)} bytes"


def test_sensor_skips_with_a_reason_when_the_server_is_down(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    ftp = make_ftp_resource(server, password="Wr0ng-Secret-Pw")
    source = make_source("down")
    sensor = build_backlog_sensor([(source, source_key(source))])
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"postgres": pg_resource, "ftp": ftp}
        )
        result = sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert source.name in result.skip_message and "Wr0ng-Secret-Pw" not in result.skip_message


def test_lag_and_rejects_checks_warn_beyond_their_bounds(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "a.csv", b"ts;v\n2026-11-28 10:00:00;1\n2026-11-28 10:05:00;x;y\n")
    source = make_source("bounds")
    resources = {"postgres": pg_resource, "ftp": make_ftp_resource(server)}
    assets = [build_source_spec(source), build_log_asset(source)]
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, resources=resources, instance=instance)
        # A run that loads nothing still reports the lag, from the last materialisation.
        again = dg.materialize(assets, resources=resources, instance=instance)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    # Lines from days ago: beyond the hour; one line of two rejected: beyond 1 %.
    assert not checks[LAG_CHECK].passed and checks[LAG_CHECK].severity.value == "WARN"
    assert checks[LAG_CHECK].metadata["lag_seconds"].value > 3600
    assert not checks[REJECTS_CHECK].passed
    assert checks[REJECTS_CHECK].metadata["rejected_share"].value == 0.5
    [materialization] = again.asset_materializations_for_node(f"logs__{source.name}")
    assert materialization.metadata["rows_loaded"].value == 0
    assert materialization.metadata["lag_seconds"].value > 3600
    assert not {c.check_name: c for c in again.get_asset_check_evaluations()}[LAG_CHECK].passed
    key = dg.AssetKey(["logs", "x"])
    assert lag_check(key, datetime.now(UTC) - timedelta(minutes=5)).passed
    assert lag_check(key, None).passed  # no line loaded yet: nothing is late


def test_an_action_without_a_reason_is_refused_and_writes_nothing(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "a.csv", OLD)
    source = make_source("noreason")
    ftp: FTPResource = make_ftp_resource(server)
    result = _materialize(source, {"postgres": pg_resource, "ftp": ftp}, {"reingest_failed": True})
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "give a `reason` in the run config" in failure.step_failure_data.error.message
    found = pg_conn.execute("SELECT to_regclass(%s)", (f"{source.schema}.{source.name}",))
    assert found.fetchone() == (None,)


def test_dry_run_preview_says_why_a_young_file_waits(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "late.csv", YOUNG, age_seconds=0)
    source = make_source("young", min_age_seconds=600)
    preview = preview_source(make_ftp_resource(server), pg_resource, source)
    [planned] = preview.files
    assert planned.action == "wait" and planned.why.startswith("younger than min_age_seconds")
    assert not planned.deleted_if_enabled and preview.would_delete == []
