"""The two cadences of the old crontab, with no overlap and an explicit time zone.

A tick that finds a run of the same job still queued or in progress is skipped with a reason
the UI shows (the cron container would have started a second copy; a run queue would build a
backlog that later runs back to back). The FTP and MySQL schedules only look at their own job.
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from sync_assets.core.settings import ConfigError, parse_bool
from sync_assets.orchestration.jobs import ftp_logs_job, mysql_sync_job

FTP_CRON = "*/5 * * * *"
MYSQL_CRON = "2,17,32,47 * * * *"

TIMEZONE_ENV = "SCHEDULE_TIMEZONE"
START_STOPPED_ENV = "SCHEDULES_START_STOPPED"
DEFAULT_TIMEZONE = "UTC"

IN_PROGRESS_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def schedule_timezone() -> str:
    """`SCHEDULE_TIMEZONE` (an IANA name such as Europe/Berlin), default UTC; checked at load."""
    name = os.environ.get(TIMEZONE_ENV, "").strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{TIMEZONE_ENV} must be an IANA time zone such as UTC or Europe/Berlin, got {name!r}"
        ) from None
    return name


def default_schedule_status() -> dg.DefaultScheduleStatus:
    """RUNNING as the cron container was, unless `SCHEDULES_START_STOPPED` is true.

    This is only the default: a toggle in the UI is stored in the instance and wins.
    """
    if parse_bool(START_STOPPED_ENV, os.environ.get(START_STOPPED_ENV), default=False):
        return dg.DefaultScheduleStatus.STOPPED
    return dg.DefaultScheduleStatus.RUNNING


def run_in_progress(instance: dg.DagsterInstance, job_name: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS_STATUSES), limit=1
    )
    return runs[0] if runs else None


def _skip_reason(job_name: str, run: dg.DagsterRun) -> dg.SkipReason:
    return dg.SkipReason(
        f"{job_name}: previous run {run.run_id} is still {run.status.value}; "
        "skipping this tick instead of stacking runs"
    )


def build_no_overlap_schedule(
    name: str, cron: str, job: dg.UnresolvedAssetJobDefinition, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        execution_timezone=schedule_timezone(),
        default_status=default_schedule_status(),
        description=description,
    )
    def _no_overlap(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        busy = run_in_progress(context.instance, job.name)
        if busy is not None:
            return _skip_reason(job.name, busy)
        return dg.RunRequest()

    return _no_overlap


def build_schedules(
    mysql_job: dg.UnresolvedAssetJobDefinition = mysql_sync_job,
) -> list[dg.ScheduleDefinition]:
    return [
        build_no_overlap_schedule(
            "ftp_logs_schedule", FTP_CRON, ftp_logs_job, "Every 5 minutes, like the old crontab."
        ),
        build_no_overlap_schedule(
            "mysql_sync_schedule",
            MYSQL_CRON,
            mysql_job,
            "At minutes 2, 17, 32 and 47, like the old crontab.",
        ),
    ]
