"""Definitions of the jobs, schedules, run-status log lines and alerts.

Freshness is set where each side builds its asset specs (core/freshness.py).
"""

from __future__ import annotations

import dagster as dg

from sync_assets.orchestration.actions import DRY_RUN_JOBS
from sync_assets.orchestration.alerts import ALERT_SENSORS
from sync_assets.orchestration.jobs import build_mysql_sync_job, ftp_logs_job
from sync_assets.orchestration.local_executor import local_executor
from sync_assets.orchestration.run_log import RUN_LOG_SENSORS
from sync_assets.orchestration.schedules import build_schedules


def build_orchestration_defs(mysql_batched_steps: bool = False) -> dg.Definitions:
    mysql_sync_job = build_mysql_sync_job(mysql_batched_steps)
    return dg.Definitions(
        jobs=[ftp_logs_job, mysql_sync_job],
        schedules=build_schedules(mysql_sync_job),
        sensors=[*RUN_LOG_SENSORS, *ALERT_SENSORS],
        # Every other run (assets picked in the UI or the CLI) runs on the run's host, whatever
        # SYNC_EXECUTOR says for the two jobs: one asset in the run's own process.
        executor=local_executor,
    )


def build_action_defs() -> dg.Definitions:
    """The dry-run jobs (orchestration/actions.py). Apart from the schedules' definitions:
    their ops need the servers' resources, merged in with them."""
    return dg.Definitions(jobs=DRY_RUN_JOBS)
