"""Jobs, schedules, freshness and run log lines: definitions and tick logic (no servers)."""

import datetime as dt
import uuid

import dagster as dg
import pytest

from sync_assets.core.errors import STEP_RETRIES
from sync_assets.core.settings import ConfigError
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.definitions import build_log_asset, build_source_spec
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import build_table_asset
from sync_assets.orchestration import run_log, schedules
from sync_assets.orchestration.definitions import build_orchestration_defs
from sync_assets.orchestration.jobs import JOB_TAG
from sync_assets.resources import build_resources


@dg.asset(key=["legacy", "film"], group_name="legacy_mysql")
def legacy_film() -> None: ...


@dg.asset(key=["logs", "press"], group_name="machine_logs")
def logs_press() -> None: ...


FTP_SOURCE = dg.AssetSpec(["ftp", "press"], group_name="machine_logs")


@dg.asset(key=["other"], group_name="elsewhere")
def other() -> None: ...


def _defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(assets=[legacy_film, logs_press, other, FTP_SOURCE]),
        build_orchestration_defs(),
    )


def _built_defs() -> dg.Definitions:
    """The two sides' assets as their builders make them (freshness is set there)."""
    press = SourceConfig(name="press")
    mysql_source, film = build_table_asset("film", TableOptions(name="film"), "legacy")
    return dg.Definitions(
        assets=[film, mysql_source, build_log_asset(press), build_source_spec(press), other],
        resources=build_resources(),
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_schedules_target_their_jobs_with_the_old_cron_strings_in_utc() -> None:
    defs = _defs()
    ftp = defs.resolve_schedule_def("ftp_logs_schedule")
    mysql = defs.resolve_schedule_def("mysql_sync_schedule")
    assert (ftp.job_name, ftp.cron_schedule) == ("ftp_logs_job", "*/5 * * * *")
    assert (mysql.job_name, mysql.cron_schedule) == ("mysql_sync_job", "2,17,32,47 * * * *")
    assert ftp.execution_timezone == mysql.execution_timezone == "UTC"
    assert ftp.default_status == dg.DefaultScheduleStatus.RUNNING


def test_jobs_select_their_group_only_with_retry_policy_and_tag() -> None:
    defs = _defs()
    mysql_job = defs.resolve_job_def("mysql_sync_job")
    ftp_job = defs.resolve_job_def("ftp_logs_job")
    assert mysql_job.asset_layer.executable_asset_keys == {dg.AssetKey(["legacy", "film"])}
    assert ftp_job.asset_layer.executable_asset_keys == {dg.AssetKey(["logs", "press"])}
    assert mysql_job.tags[JOB_TAG] == "mysql_sync_job"
    policy = mysql_job.op_retry_policy
    assert policy is not None and policy.max_retries == STEP_RETRIES
    # the pause between retries is slept in the step (core/errors.py), not by the executor
    assert policy.delay is None


def test_timezone_and_start_stopped_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SCHEDULE_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("SCHEDULES_START_STOPPED", "true")
    built = {s.name: s for s in schedules.build_schedules()}
    assert built["mysql_sync_schedule"].execution_timezone == "Europe/Berlin"
    assert built["ftp_logs_schedule"].default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    ("name", "raw"), [("SCHEDULE_TIMEZONE", "Mars/Olympus"), ("SCHEDULES_START_STOPPED", "maybe")]
)
def test_bad_values_are_errors_naming_the_variable(monkeypatch, name: str, raw: str) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        schedules.build_schedules()


def _add_run(instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name=job_name, run_id=run_id, status=status))
    return run_id


def _tick(instance: dg.DagsterInstance, name: str):
    schedule = _defs().resolve_schedule_def(name)
    when = dt.datetime(2026, 11, 28, 15, 17, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    return schedule.evaluate_tick(context)


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
def test_tick_while_the_previous_run_is_in_progress_is_skipped(instance, status) -> None:
    run_id = _add_run(instance, "mysql_sync_job", status)
    result = _tick(instance, "mysql_sync_schedule")
    assert not result.run_requests
    assert run_id in result.skip_message
    assert status.value in result.skip_message


def test_other_jobs_run_does_not_block_and_finished_runs_do_not_either(instance) -> None:
    _add_run(instance, "mysql_sync_job", dg.DagsterRunStatus.STARTED)
    _add_run(instance, "ftp_logs_job", dg.DagsterRunStatus.SUCCESS)
    _add_run(instance, "ftp_logs_job", dg.DagsterRunStatus.FAILURE)
    result = _tick(instance, "ftp_logs_schedule")
    assert result.skip_message is None
    assert len(result.run_requests) == 1


def test_freshness_windows_apply_per_group() -> None:
    graph = _built_defs().resolve_asset_graph()
    policy = graph.get(dg.AssetKey(["logs", "press"])).freshness_policy
    assert policy.fail_window.to_timedelta() == dt.timedelta(minutes=15)
    policy = graph.get(dg.AssetKey(["legacy", "film"])).freshness_policy
    assert policy.fail_window.to_timedelta() == dt.timedelta(minutes=45)
    assert graph.get(dg.AssetKey(["other"])).freshness_policy is None
    assert graph.get(FTP_SOURCE.key).freshness_policy is None  # external: never materialised


@dg.asset(key=["legacy", "counted"], group_name="legacy_mysql")
def counted() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 42})


def test_run_figures_and_line_count_rows_and_mask_passwords(instance, monkeypatch) -> None:
    monkeypatch.setenv("MYSQL_PASSWORD", "Zebra-Quartz-9931!")
    result = dg.materialize([counted, legacy_film], instance=instance)
    figures = run_log.run_figures(instance, result.run_id)
    assert figures == run_log.RunFigures(assets=2, rows=42)
    line = run_log.format_line("finished", {"rows": figures.rows, "error": "pw Zebra-Quartz-9931!"})
    assert line.startswith("sync_assets run finished rows=42 ")
    assert "Zebra-Quartz-9931!" not in line


@dg.asset(key=["legacy", "broken"], group_name="legacy_mysql")
def broken() -> None:
    raise RuntimeError("cannot connect: password Zebra-Quartz-9931! refused")


def _sensor_tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = run_log.run_log_sensor.evaluate_tick(context)
    return result.cursor


def test_run_log_prints_one_line_per_start_and_finish_in_order(instance, monkeypatch, capsys):
    monkeypatch.setenv("MYSQL_PASSWORD", "Zebra-Quartz-9931!")
    cursor = _sensor_tick(instance, None)
    assert capsys.readouterr().out == ""  # the first tick only marks "now"
    ok = dg.materialize([counted], instance=instance)
    failed = dg.materialize([broken], instance=instance, raise_on_error=False)
    cursor = _sensor_tick(instance, cursor)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["started", "finished"] * 2
    assert f"run={ok.run_id}" in lines[1] and "status=SUCCESS" in lines[1]
    assert "assets=1 rows=42" in lines[1]
    assert f"run={failed.run_id}" in lines[3] and "status=FAILURE" in lines[3]
    assert "error=" in lines[3]
    assert "Zebra-Quartz-9931!" not in "".join(lines)
    _sensor_tick(instance, cursor)
    assert capsys.readouterr().out == ""  # nothing printed twice


@dg.asset(key=["logs", "chatty"], group_name="machine_logs")
def chatty(context: dg.AssetExecutionContext) -> None:
    context.log.info("info-detail-line")
    context.log.warning("warning-line")


def test_job_runs_keep_stdout_quiet_but_the_event_log_complete(instance, capfd) -> None:
    defs = dg.Definitions.merge(dg.Definitions(assets=[chatty]), build_orchestration_defs())
    result = defs.resolve_job_def("ftp_logs_job").execute_in_process(instance=instance)
    printed = capfd.readouterr()
    assert "warning-line" in printed.err and "info-detail-line" not in printed.err
    messages = [event.message for event in instance.all_logs(result.run_id)]
    assert "info-detail-line" in messages
