"""SYNC_EXECUTOR picks the jobs' executor at load, with no I/O; default tier, about 20 s."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.orchestration import executor
from sync_assets.orchestration.local_executor import LOCAL_EXECUTOR_NAME
from sync_assets.orchestration.worker import worker_name
from sync_assets_tests.conftest import REPO_ROOT

LOAD = (
    "from sync_assets.definitions import defs; "
    "jobs = ('mysql_sync_job', 'ftp_logs_job'); "
    "print(*(defs.resolve_job_def(j).executor_def.name for j in jobs))"
)


# An environment installed without the `celery` extra: these imports fail as if not installed.
WITHOUT_CELERY = "import sys; sys.modules.update(dict.fromkeys(('dagster_celery', 'celery'))); "


def _python(code: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_EXECUTOR", "CELERY_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=check)  # fmt: skip


def _executor_names(**env: str) -> list[str]:
    """Load the code location in a fresh process (jobs are built at import) and name executors."""
    return _python(LOAD, **env).stdout.split()


ASSET_JOB = (
    "from sync_assets.definitions import defs; "
    "print(defs.resolve_implicit_global_asset_job_def().executor_def.name)"
)


def test_default_is_multiprocess_on_one_host_for_the_jobs_and_picked_assets() -> None:
    assert _executor_names() == [LOCAL_EXECUTOR_NAME] * 2
    assert _python(ASSET_JOB).stdout.split() == [LOCAL_EXECUTOR_NAME]


def test_celery_selected_with_broker_down_and_no_secret_in_config() -> None:
    # Port 1 on loopback: nothing listens; loading must not try to connect.
    names = _executor_names(
        SYNC_EXECUTOR="celery", CELERY_BROKER_URL="redis://:s3cret@127.0.0.1:1/0"
    )
    assert names == ["sync_assets_celery"] * 2
    # Assets picked in the UI or CLI run on the run's host, as before SYNC_EXECUTOR existed.
    picked = _python(ASSET_JOB, SYNC_EXECUTOR="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert picked.stdout.split() == [LOCAL_EXECUTOR_NAME]


def test_bad_executor_name_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(executor.EXECUTOR_ENV, "spark")
    with pytest.raises(ConfigError, match="SYNC_EXECUTOR"):
        executor.executor_kind()


def test_backend_follows_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(executor.BACKEND_ENV, raising=False)
    monkeypatch.setenv(executor.BROKER_ENV, "pyamqp://guest:guest@rabbit:5672//")
    assert executor.backend_source() == "rpc://"
    monkeypatch.setenv(executor.BROKER_ENV, "redis://:pw@redis:6379/0")
    assert executor.backend_source() == {"env": executor.BROKER_ENV}  # the URL itself never
    monkeypatch.setenv(executor.BACKEND_ENV, "redis://:pw@other:6379/1")
    assert executor.backend_source() == {"env": executor.BACKEND_ENV}


def test_delivery_settings_are_at_least_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(executor.VISIBILITY_TIMEOUT_ENV, "120")
    settings = executor.celery_settings()
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["broker_transport_options"]["visibility_timeout"] == 120
    monkeypatch.setenv(executor.VISIBILITY_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match=executor.VISIBILITY_TIMEOUT_ENV):
        executor.celery_settings()


def test_worker_node_name_carries_the_host() -> None:
    assert worker_name("w1").startswith("w1@")
    assert worker_name(None).startswith("sync-assets-")


def test_without_the_celery_extra_the_default_loads_and_celery_fails_naming_the_extra() -> None:
    assert _python(WITHOUT_CELERY + LOAD).stdout.split() == [LOCAL_EXECUTOR_NAME] * 2
    result = _python(WITHOUT_CELERY + LOAD, check=False, SYNC_EXECUTOR="celery",
                     CELERY_BROKER_URL="redis://:s3cret@127.0.0.1:1/0")  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "MissingExtraError: SYNC_EXECUTOR=celery needs the `celery` extra" in last
    assert "SYNC_ASSETS_EXTRAS=celery" in last and "s3cret" not in result.stderr


def test_worker_without_the_celery_extra_stops_at_start_naming_the_extra() -> None:
    start = WITHOUT_CELERY + "from sync_assets.cli import main; sys.exit(main(['worker']))"
    result = _python(start, check=False, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2
    expected = "sync-assets worker: the Celery worker needs the `celery` extra"
    assert result.stderr.startswith(expected)
