"""One stdout line per run start and finish: what `tail -f /var/log/cron.log` gave before.

One sensor (`run_log`) follows the run start/finish events in the instance, in order, and
prints a single `key=value` line per event, e.g.

    sync_assets run finished status=SUCCESS job=mysql_sync_job run=1a2b... duration=12.4s
        assets=16 rows=47268

(on one line). The line carries figures only: no config, no connection string, and the
failure text goes through `redact()` with every password variable's value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

from sync_assets.core.metadata import ROW_COUNT
from sync_assets.core.secrets import environment_secrets, redact

SECRET_ENV_NAMES = ("POSTGRES_PASSWORD", "MYSQL_PASSWORD", "FTP_PASS")
SENSOR_INTERVAL_SECONDS = 15
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class RunFigures:
    assets: int
    rows: int


def redact_secrets(text: str) -> str:
    """`text` with the value of every password variable (or its `*_FILE`) masked."""
    return redact(text, environment_secrets(SECRET_ENV_NAMES, os.environ))


def run_figures(instance: dg.DagsterInstance, run_id: str) -> RunFigures:
    """Materialised assets and the sum of their `dagster/row_count` metadata in one run."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    rows = 0
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(ROW_COUNT) if materialization else None
        if value is not None and isinstance(value.value, int):
            rows += value.value
    return RunFigures(assets=len(records), rows=rows)


def _duration(instance: dg.DagsterInstance, run_id: str) -> str:
    stats = instance.get_run_stats(run_id)
    if stats.start_time and stats.end_time:
        return f"{stats.end_time - stats.start_time:.1f}s"
    return "?"


def format_line(event: str, fields: dict[str, object]) -> str:
    parts = " ".join(f"{key}={value}" for key, value in fields.items())
    return redact_secrets(f"sync_assets run {event} {parts}")


RUN_EVENTS = {
    dg.DagsterEventType.RUN_START: "started",
    dg.DagsterEventType.RUN_SUCCESS: "finished",
    dg.DagsterEventType.RUN_FAILURE: "finished",
    dg.DagsterEventType.RUN_CANCELED: "finished",
}
BATCH = 100


def started_line(run: dg.DagsterRun) -> str:
    selected = len(run.asset_selection) if run.asset_selection else "all"
    return format_line("started", {"job": run.job_name, "run": run.run_id, "assets": selected})


def finished_line(instance: dg.DagsterInstance, run: dg.DagsterRun, error: str | None) -> str:
    figures = run_figures(instance, run.run_id)
    fields: dict[str, object] = {
        "status": run.status.value,
        "job": run.job_name,
        "run": run.run_id,
        "duration": _duration(instance, run.run_id),
        "assets": figures.assets,
        "rows": figures.rows,
    }
    if error:
        fields["error"] = repr(error.strip().splitlines()[0][:MAX_ERROR_CHARS])
    return format_line("finished", fields)


def status_changes_since(instance: dg.DagsterInstance, after_id: int) -> list[dg.EventLogRecord]:
    """Run start/finish events stored after `after_id`, oldest first, across all four kinds."""
    records: list[dg.EventLogRecord] = []
    for event_type in RUN_EVENTS:
        result = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after_id),
            limit=BATCH,
            ascending=True,
        )
        records.extend(result.records)
    return sorted(records, key=lambda record: record.storage_id)[:BATCH]


def line_for(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> str | None:
    run = instance.get_run_by_id(record.run_id)
    if run is None:
        return None
    if RUN_EVENTS[record.event_log_entry.dagster_event_type] == "started":
        return started_line(run)
    error = record.event_log_entry.message if run.status != dg.DagsterRunStatus.SUCCESS else None
    return finished_line(instance, run, error)


@dg.sensor(
    name="run_log",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Prints one stdout line per run start and finish, with the key figures.",
)
def run_log_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    if context.cursor is None:  # first tick: start from now, not from the whole history
        latest = context.instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(str(latest))
        return dg.SkipReason("run log starts from now")
    printed = 0
    after_id = int(context.cursor)
    for record in status_changes_since(context.instance, after_id):
        line = line_for(context.instance, record)
        if line:
            print(line, flush=True)  # the container's stdout, as the cron log was
            printed += 1
        after_id = record.storage_id
    context.update_cursor(str(after_id))
    return dg.SkipReason(f"printed {printed} run log line(s)")


RUN_LOG_SENSORS = [run_log_sensor]
