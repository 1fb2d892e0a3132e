"""Both jobs on Dagster's Celery executor with three workers, each on its own "host".

Marker `celery`: run by scripts/test-celery (pytest -m celery), not by the default tier.
"""

from __future__ import annotations

import pytest

from sync_assets_tests.celery.conftest import (
    FTP_SOURCES,
    MYSQL_POOL_LIMIT,
    WORKERS,
    Deployment,
    ProcesslistWatch,
    assert_tables_exact,
    create_table,
    finish_run,
    loaded_ids,
    materialisation_hosts,
    start_workers,
    write_logs,
)

pytestmark = [pytest.mark.celery, pytest.mark.timeout(900)]

TABLES = 32


def test_both_jobs_spread_over_all_workers(deployment: Deployment) -> None:
    for index in range(TABLES):
        create_table(deployment, f"t_{index:02d}", 500 + 50 * index)
    expected = write_logs(deployment, files_per_source=6, lines=400)
    start_workers(deployment)

    with ProcesslistWatch(deployment.servers.mariadb, deployment.mysql_db) as legacy_reads:
        runs = [deployment.start_run(job) for job in ("mysql_sync_job", "ftp_logs_job")]
        outputs = [finish_run(run) for run in runs]

    # The `mysql` pool's limit holds across workers: never more sessions on the legacy server.
    assert 1 <= legacy_reads.peak <= MYSQL_POOL_LIMIT, legacy_reads.peak

    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out[-4000:]
    assert_tables_exact(deployment)
    for source in FTP_SOURCES:
        assert loaded_ids(deployment, source) == expected[source]  # every file, each once
        assert not list((deployment.ftp.root / source).iterdir())  # all deleted after commit
    hosts = materialisation_hosts(deployment)
    assert len(hosts) == TABLES + len(FTP_SOURCES)
    assert set(hosts.values()) == {f"w{i}" for i in range(WORKERS)}, hosts
