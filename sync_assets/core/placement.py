"""Where a step ran, for its materialisation's metadata (which worker took a table or source)."""

from __future__ import annotations

import os
import socket

# Set by `sync-assets worker` to the Celery node name (`name@host`); unset elsewhere.
WORKER_ENV = "SYNC_ASSETS_WORKER"
HOST_KEY = "sync_assets/host"
WORKER_KEY = "sync_assets/worker"


def placement_metadata() -> dict[str, str]:
    """The host name, plus the Celery worker's name when the step ran on one."""
    metadata = {HOST_KEY: socket.gethostname()}
    worker = os.environ.get(WORKER_ENV)
    if worker:
        metadata[WORKER_KEY] = worker
    return metadata
