"""Which executor runs the two jobs' steps: multiprocess on one host (default), Celery or k8s.

On one host a run of a single step runs it in the run's own process (`local_executor.py`).

`SYNC_EXECUTOR=celery` (dagster-celery, the `celery` extra) hands every step (one legacy table,
one FTP source) to a Celery queue that any `sync-assets worker` on any machine may take. The
run itself (the orchestrating loop) stays where the run launcher starts it. `SYNC_EXECUTOR=k8s`
(dagster-k8s, the `k8s` extra) runs each step as its own Kubernetes Job next to the
K8sRunLauncher's run pod (deploy/helm). Either extra missing is an error naming it, at load.
Only environment variables are read here, never a server: the code location loads with the
broker down.

Delivery semantics (the same settings on the submitting side and on every worker):
- `task_acks_late` + `task_reject_on_worker_lost`: a task is acknowledged only once its step has
  finished, so a worker that dies or is cut off mid-step leaves the task to be delivered again to
  another worker. The steps are safe to run again (one transaction per table or file, the FTP
  ledger, per-table/per-source advisory locks), which is what makes at-least-once correct here.
- `broker_heartbeat`: RabbitMQ notices a silent worker within about two heartbeats and
  requeues its unacknowledged task at once.
- `visibility_timeout` (Redis broker only): Redis has no connections to watch; an unacknowledged
  task is handed out again after this many seconds. It must exceed the longest step, or a slow
  step is started a second time (it then waits on the first one's advisory lock).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from sync_assets.core.extras import import_extra
from sync_assets.core.settings import ConfigError, parse_int, require
from sync_assets.orchestration.local_executor import local_executor

EXECUTOR_ENV = "SYNC_EXECUTOR"
BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_BACKEND_URL"
VISIBILITY_TIMEOUT_ENV = "CELERY_VISIBILITY_TIMEOUT"

MULTIPROCESS = "multiprocess"
CELERY = "celery"
K8S = "k8s"
EXECUTORS = (MULTIPROCESS, CELERY, K8S)

K8S_MAX_CONCURRENT_ENV = "K8S_STEP_MAX_CONCURRENT"
DEFAULT_K8S_MAX_CONCURRENT = 8
# Each step pod: one table or one FTP source streams with bounded memory (COPY, spooled files).
K8S_STEP_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    }
}

DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 3600
BROKER_HEARTBEAT_SECONDS = 10
# dagster-celery's own broker_transport_options, kept (connection retries of the producer).
DAGSTER_TRANSPORT_OPTIONS = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2,
                             "interval_max": 0.5}  # fmt: skip


def executor_kind() -> str:
    """`multiprocess` (default) or `celery`; another value is an error naming the variable."""
    kind = os.environ.get(EXECUTOR_ENV, "").strip().lower() or MULTIPROCESS
    if kind not in EXECUTORS:
        raise ConfigError(f"{EXECUTOR_ENV} must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    return kind


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


def backend_source() -> str | dict[str, str]:
    """The result backend: CELERY_BACKEND_URL, else the Redis broker itself, else `rpc://`.

    Given as `{"env": NAME}` where it comes from a variable, so a password in the URL is read
    where the run executes and never stored in the run's configuration.
    """
    if os.environ.get(BACKEND_ENV):
        return {"env": BACKEND_ENV}
    if is_redis(os.environ.get(BROKER_ENV, "")):
        return {"env": BROKER_ENV}
    return "rpc://"


def backend_url() -> str:
    source = backend_source()
    return os.environ[source["env"]] if isinstance(source, dict) else source


def celery_settings() -> dict[str, Any]:
    """Celery app settings shared by the executor (producer) and `sync-assets worker`."""
    visibility = parse_int(
        VISIBILITY_TIMEOUT_ENV,
        os.environ.get(VISIBILITY_TIMEOUT_ENV),
        DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        minimum=1,
    )
    transport = {**DAGSTER_TRANSPORT_OPTIONS, "visibility_timeout": visibility}
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A worker cut off from the broker cannot acknowledge anyway: it stops its steps (the
        # broker hands them to another worker) instead of finishing them unseen.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_heartbeat": BROKER_HEARTBEAT_SECONDS,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility},
    }


def broker_url() -> str:
    return require(BROKER_ENV, os.environ.get(BROKER_ENV))


def k8s_executor() -> dg.ExecutorDefinition:
    """dagster-k8s's step executor; image, env ConfigMaps/Secrets come from the run launcher."""
    dagster_k8s = import_extra("dagster_k8s", "k8s", f"{EXECUTOR_ENV}={K8S}")
    max_concurrent = parse_int(
        K8S_MAX_CONCURRENT_ENV,
        os.environ.get(K8S_MAX_CONCURRENT_ENV),
        DEFAULT_K8S_MAX_CONCURRENT,
        minimum=1,
    )
    return dagster_k8s.k8s_job_executor.configured(
        {"max_concurrent": max_concurrent, "step_k8s_config": K8S_STEP_CONFIG},
        name="sync_assets_k8s",
    )


def build_executor() -> dg.ExecutorDefinition:
    """The jobs' executor: on one host, multiprocess with one-step plans in the run's process
    (`local_executor.py`); Celery or Kubernetes steps when SYNC_EXECUTOR says so."""
    kind = executor_kind()
    if kind == K8S:
        return k8s_executor()
    if kind != CELERY:
        return local_executor
    dagster_celery = import_extra("dagster_celery", CELERY, f"{EXECUTOR_ENV}={CELERY}")
    return dagster_celery.celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": backend_source(),
            "config_source": celery_settings(),
        },
        name="sync_assets_celery",
    )
