"""The runtime image without and with the `celery` extra (scripts/test-image builds both).

The default image has no Celery: the code location loads, and selecting Celery stops the code
location at load and the worker at start with the extra's name. The image built with
`SYNC_ASSETS_EXTRAS=celery` (what the compose profile `celery` builds) selects the Celery
executor and its worker connects to a real Redis. No stack needed: one `podman run` each.
"""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from sync_assets.orchestration.local_executor import LOCAL_EXECUTOR_NAME
from sync_assets_tests.celery.test_executor_selection import LOAD
from sync_assets_tests.image.conftest import podman, wait_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(600)]
TAG = os.environ.get("SYNC_ASSETS_TAG", "tier")
DEFAULT = f"localhost/sync-assets:{TAG}"
WITH_CELERY = f"localhost/sync-assets:{TAG}-celery"
# This machine's Redis (COMMON servers); the worker gets a queue of its own on it.
REDIS = "redis://127.0.0.1:6379/0"
FIND = "import importlib.util as u; print(*(u.find_spec(m) is not None for m in {}))"


def _logs(container: str) -> str:
    logs = podman("logs", container, check=False)
    return logs.stdout + logs.stderr


def _run(image: str, *command: str, **env: str) -> subprocess.CompletedProcess:
    flags = [f"--env={name}={value}" for name, value in env.items()]
    return podman("run", "--rm", "--network=host", *flags, image, *command, check=False,
                  timeout=240)  # fmt: skip


def test_default_image_has_no_celery_and_loads_with_the_default_executor() -> None:
    found = _run(DEFAULT, "python", "-c", FIND.format("('celery', 'dagster_celery', 'kombu')"))
    assert found.stdout.split() == ["False"] * 3, found.stderr
    loaded = _run(DEFAULT, "python", "-c", LOAD)
    assert loaded.stdout.split() == [LOCAL_EXECUTOR_NAME] * 2, loaded.stderr[-2000:]


def test_default_image_keeps_sftp() -> None:
    code = "from sync_assets.ftp.sftp_client import SFTPClient; import paramiko; print('ok')"
    result = _run(DEFAULT, "python", "-c", code)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_celery_without_the_extra_fails_at_load_and_at_worker_start_naming_it() -> None:
    loaded = _run(DEFAULT, "python", "-c", LOAD, SYNC_EXECUTOR="celery", CELERY_BROKER_URL=REDIS)
    assert loaded.returncode != 0
    assert "SYNC_EXECUTOR=celery needs the `celery` extra" in loaded.stderr
    assert "SYNC_ASSETS_EXTRAS=celery" in loaded.stderr
    worker = _run(DEFAULT, "sync-assets", "worker", CELERY_BROKER_URL=REDIS)
    assert worker.returncode == 2
    assert "sync-assets worker: the Celery worker needs the `celery` extra" in worker.stderr


def test_image_with_the_celery_extra_selects_celery_and_its_worker_connects() -> None:
    loaded = _run(WITH_CELERY, "python", "-c", LOAD, SYNC_EXECUTOR="celery",
                  CELERY_BROKER_URL=REDIS)  # fmt: skip
    assert loaded.stdout.split() == ["sync_assets_celery"] * 2, loaded.stderr[-2000:]
    name = f"sa-img-worker-{secrets.token_hex(3)}"
    podman("run", "-d", "--name", name, "--network=host", f"--env=CELERY_BROKER_URL={REDIS}",
           WITH_CELERY, "sync-assets", "worker", "--queue", name)  # fmt: skip
    try:
        wait_for(lambda: "ready." in _logs(name), "worker ready", 120)
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
