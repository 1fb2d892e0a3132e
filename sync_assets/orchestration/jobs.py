"""The two jobs of the old cron container, selected by asset group.

Selecting by group (not by key) keeps the jobs right whatever tables or log sources the other
sides discover: a new `legacy/<t>` asset joins `mysql_sync_job` without a change here.
"""

from __future__ import annotations

import dagster as dg

from sync_assets.core.errors import STEP_RETRIES
from sync_assets.core.names import FTP_GROUP, MYSQL_GROUP
from sync_assets.orchestration.executor import build_executor
from sync_assets.orchestration.local_executor import local_executor

FTP_JOB_NAME = "ftp_logs_job"
MYSQL_JOB_NAME = "mysql_sync_job"

# Tag read by the run queue's per-value limit in dagster.yaml: one run per job at a time,
# while the two jobs never wait for each other.
JOB_TAG = "sync_assets/job"

# Transient failures (a dropped connection, a busy FTP server) are retried in the same run;
# the asset boundary (core/errors.py) sleeps 15 s, 30 s, 60 s in the step before each retry
# and fails permanent causes at once. No delay here: a RetryPolicy delay is waited out by the
# executor's loop, which spins a core for the whole pause.
ASSET_RETRY_POLICY = dg.RetryPolicy(max_retries=STEP_RETRIES)


# The run's own console logger prints every event at DEBUG to the code server's stdout; the
# events stay complete in the UI, and stdout keeps the one-line-per-run summary (run_log.py)
# plus warnings and errors.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# Batch steps under the multiprocess executor run in the run's own process (one at a time;
# each syncs several tables on threads): a step process would cost a Python start and the
# code location's load (CPU-seconds each) and its own 150 MB beside the run's. The pool's
# slots bound the tables read at once either way, and the launchpad may still pick
# `multiprocess` for one run. Figures: docs/performance.md (many tables).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _job(
    name: str, group: str, description: str, in_process: bool = False
) -> dg.UnresolvedAssetJobDefinition:
    executor = build_executor()
    on_one_host = executor is local_executor
    return dg.define_asset_job(
        name=name,
        selection=dg.AssetSelection.groups(group),
        description=description,
        op_retry_policy=ASSET_RETRY_POLICY,
        tags={JOB_TAG: name},
        config={**QUIET_CONSOLE, **(IN_PROCESS if in_process and on_one_host else {})},
        # SYNC_EXECUTOR=celery: each table/source step goes to any `sync-assets worker`.
        executor_def=executor,
    )


def build_mysql_sync_job(batched_steps: bool = False) -> dg.UnresolvedAssetJobDefinition:
    """The MySQL job; `batched_steps` (the tables are synced in batch steps, `mysql/steps.py`)
    runs them in the run's process unless SYNC_EXECUTOR sends steps elsewhere."""
    return _job(
        MYSQL_JOB_NAME,
        MYSQL_GROUP,
        "Copy the legacy MySQL tables into PostgreSQL.",
        in_process=batched_steps,
    )


ftp_logs_job = _job(
    FTP_JOB_NAME, FTP_GROUP, "Load new and grown machine log files from FTP into PostgreSQL."
)
mysql_sync_job = build_mysql_sync_job()
