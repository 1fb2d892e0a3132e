"""dagster.yaml validates against Dagster's schema and says what the schedules rely on."""

from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def instance_config(monkeypatch) -> dict:
    for name, value in {
        "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432", "POSTGRES_USER": "u",
        "POSTGRES_PASSWORD": "p", "DAGSTER_PG_DB": "dagster",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(REPO_ROOT))
    return dict(config)


def test_storage_is_ours_and_carries_no_setting(instance_config) -> None:
    # Connection settings are read from the environment by each process
    # (test_instance_storage.py): nothing here can hold a secret or demand a variable.
    custom = instance_config["storage"]["custom"]
    assert custom == {
        "module": "sync_assets.core.instance_storage",
        "class": "SyncAssetsStorage",
        "config": {},
    }


def test_one_run_per_job_and_jobs_independent(instance_config) -> None:
    runs = instance_config["concurrency"]["runs"]
    assert runs["tag_concurrency_limits"] == [
        {"key": "sync_assets/job", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert runs["max_concurrent_runs"] >= 2  # room for both jobs at once
    assert "tag_concurrency_limits" not in (instance_config["run_coordinator"].get("config") or {})


def test_retries_monitoring_retention_and_no_telemetry(instance_config) -> None:
    assert instance_config["run_retries"]["enabled"] is True
    assert instance_config["run_monitoring"]["enabled"] is True
    assert instance_config["retention"]["schedule"]["purge_after_days"]["skipped"] <= 7
    assert instance_config["telemetry"]["enabled"] is False
