"""Dagster's default run launcher, plus a worker health check for run monitoring.

The default launcher starts each run worker as a child of the code server. When the code
server's container is replaced (a redeploy), its run workers die with it, but the default
launcher cannot tell run monitoring so: the run would stay STARTED for ever, and the job's
one-run-at-a-time limit would then block every later tick. Here the daemon asks the code
server that launched the run (its address is on the run's tags) for the runs it is executing:
a server that answers without this run means the worker is gone, the run is marked failed and
`run_retries` launches it again. An unreachable server is UNKNOWN (no action): a code server
that is only restarting must not fail runs.
"""

from __future__ import annotations

from dagster import DagsterRun
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._grpc.types import GetCurrentRunsResult
from dagster._serdes import deserialize_value


class SyncAssetsRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no code server address on the run")
        try:
            result = deserialize_value(client.get_current_runs(), GetCurrentRunsResult)
        except Exception as exc:  # down or restarting: decide at a later poll
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"code server: {type(exc).__name__}")
        if result.serializable_error_info is not None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "code server reported an error")
        if run.run_id in result.current_runs:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        # The worker may have finished between the daemon's read of the run and this call.
        latest = self._instance.get_run_by_id(run.run_id)
        if latest is not None and latest.is_finished:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return CheckRunHealthResult(
            WorkerStatus.NOT_FOUND, "the code server that launched this run no longer runs it"
        )
