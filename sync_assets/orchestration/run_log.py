"""One stdout line per run start and finish: what `tail -f /var/log/cron.log` gave before.

Run-status sensors print a single `key=value` line per event, e.g.

    sync_assets run finished status=SUCCESS job=mysql_sync_job run=1a2b... duration=12.4s
        assets=16 rows=47268

(on one line). The line carries figures only: no config, no connection string, and the
failure text goes through `redact()` with every password variable's value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

from sync_assets.core.secrets import redact

SECRET_ENV_NAMES = ("POSTGRES_PASSWORD", "MYSQL_PASSWORD", "FTP_PASS")
ROW_COUNT_KEY = "dagster/row_count"
SENSOR_INTERVAL_SECONDS = 15
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class RunFigures:
    assets: int
    rows: int


def redact_secrets(text: str) -> str:
    """`text` with the value of every password variable masked."""
    secrets = [os.environ[name] for name in SECRET_ENV_NAMES if os.environ.get(name)]
    return redact(text, secrets)


def run_figures(instance: dg.DagsterInstance, run_id: str) -> RunFigures:
    """Materialised assets and the sum of their `dagster/row_count` metadata in one run."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    rows = 0
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(ROW_COUNT_KEY) if materialization else None
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


def emit(context: dg.RunStatusSensorContext, line: str) -> None:
    print(line, flush=True)  # the container's stdout, as the cron log was
    context.log.info(line)


def finished_line(context: dg.RunStatusSensorContext, error: str | None = None) -> str:
    run = context.dagster_run
    figures = run_figures(context.instance, run.run_id)
    fields: dict[str, object] = {
        "status": run.status.value,
        "job": run.job_name,
        "run": run.run_id,
        "duration": _duration(context.instance, run.run_id),
        "assets": figures.assets,
        "rows": figures.rows,
    }
    if error:
        fields["error"] = repr(error.strip().splitlines()[0][:MAX_ERROR_CHARS])
    return format_line("finished", fields)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    name="run_started_log",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Prints one stdout line when a run starts.",
)
def run_started_log(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    selected = len(run.asset_selection or ())
    emit(
        context,
        format_line(
            "started", {"job": run.job_name, "run": run.run_id, "assets_selected": selected}
        ),
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_succeeded_log",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Prints one stdout line with the figures when a run succeeds.",
)
def run_succeeded_log(context: dg.RunStatusSensorContext) -> None:
    emit(context, finished_line(context))


@dg.run_failure_sensor(
    name="run_failed_log",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Prints one stdout line with the figures and the first error line on failure.",
)
def run_failed_log(context: dg.RunFailureSensorContext) -> None:
    emit(context, finished_line(context, context.failure_event.message or "unknown error"))


RUN_LOG_SENSORS = [run_started_log, run_succeeded_log, run_failed_log]
