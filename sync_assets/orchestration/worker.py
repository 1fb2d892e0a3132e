"""`sync-assets worker`: a Celery worker that runs the jobs' steps (SYNC_EXECUTOR=celery).

The same as `dagster-celery worker start -A dagster_celery.app` (dagster-celery's app, its
`execute_plan` task, the `dagster` queue, prefetch 1), with the project's delivery settings
(`executor.celery_settings`) applied in-process instead of a generated config module, so the
worker and the runs that submit to it can never disagree. Each step loads the code location and
connects to PostgreSQL, MySQL and FTP with this process's environment variables.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from typing import Any

from sync_assets.core.extras import import_extra
from sync_assets.core.placement import WORKER_ENV
from sync_assets.orchestration import executor

DEFAULT_QUEUE = "dagster"


def worker_name(name: str | None) -> str:
    """`name@host` (Celery's node name); a unique `sync-assets-xxxxxx` when no name is given."""
    base = name or f"sync-assets-{uuid.uuid4().hex[:6]}"
    return f"{base}@{socket.gethostname()}"


def celery_app() -> Any:
    """dagster-celery's app with the project's broker, backend and delivery settings."""
    import_extra("dagster_celery", executor.CELERY, "the Celery worker")
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    settings = CeleryExecutor.for_cli(
        broker=executor.broker_url(),
        backend=executor.backend_url(),
        config_source=executor.celery_settings(),
    )
    app = make_app(settings.app_args())
    create_task(app)  # registers `execute_plan`, the task the executor submits per step
    return app


def worker_argv(args: argparse.Namespace, node: str) -> list[str]:
    return [
        "worker",
        f"--loglevel={args.loglevel}",
        f"--hostname={node}",
        f"--concurrency={args.concurrency}",
        f"--queues={args.queue}",
        "--prefetch-multiplier=1",
    ]


def run_worker(args: argparse.Namespace) -> int:
    node = worker_name(args.name)
    # Steps record where they ran; a worker also runs the jobs' steps with Celery semantics.
    os.environ[WORKER_ENV] = node
    os.environ[executor.EXECUTOR_ENV] = executor.CELERY
    app = celery_app()
    app.worker_main(worker_argv(args, node))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="start a Celery worker that runs table and FTP source steps (SYNC_EXECUTOR=celery)",
        description="Start a Celery worker on the broker CELERY_BROKER_URL (results:"
        " CELERY_BACKEND_URL, default the Redis broker or rpc://). Run one per machine; every"
        " worker needs the same variables as the code location (POSTGRES_*, MYSQL_*, FTP_*,"
        " DAGSTER_PG_DB, DAGSTER_HOME with dagster.yaml).",
    )
    parser.add_argument("--name", help="worker name (node name is NAME@host); default unique")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="steps run at once by this worker (default 1)"
    )
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="queue to consume (default dagster)")
    parser.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    parser.set_defaults(func=run_worker)
