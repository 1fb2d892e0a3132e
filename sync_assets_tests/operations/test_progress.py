"""Progress lines of long copies, and metadata the UI can plot (one number per phase)."""

import logging

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.core.progress import Progress
from sync_assets.ftp.definitions import build_log_asset
from sync_assets.mysql.definitions import build_mysql_defs
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.conftest import FTPServerFactory, make_ftp_resource
from sync_assets_tests.ftp.conftest import make_source, write_file  # noqa: F401
from sync_assets_tests.mysql.conftest import (  # noqa: F401
    run_sql,
    src,
    src_db,
    src_resource,
    target_schema,
)


class Clock:
    """Time that moves only when the test says so (the 10 s rhythm without waiting)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture, total: int, steps: list[tuple[float, int]]):
    """The lines logged for `update(done)` at each (second, done) of `steps`."""
    clock = Clock()
    progress = Progress(logging.getLogger("copy"), "orders: copy", total=total, clock=clock)
    with caplog.at_level(logging.INFO, logger="copy"):
        for second, done in steps:
            clock.now = second
            progress.update(done)
    return caplog.messages


def test_progress_logs_every_ten_seconds_with_rate_and_time_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = [(3, 30_000), (9.9, 99_000), (10, 100_000), (15, 150_000), (20, 200_000)]
    assert _lines(caplog, 1_000_000, steps) == [
        "orders: copy: 100,000 rows done, 10,000 rows/s, ~10% of ~1,000,000, about 1 min 30 s left",
        "orders: copy: 200,000 rows done, 10,000 rows/s, ~20% of ~1,000,000, about 1 min 20 s left",
    ]


def test_progress_without_a_usable_estimate_gives_no_time_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # past the estimate (InnoDB's TABLE_ROWS is approximate): no percentage, no time left
    assert _lines(caplog, 100, [(10, 5_000)]) == ["orders: copy: 5,000 rows done, 500 rows/s"]


def test_each_phase_is_a_number_of_its_own_in_the_metadata(
    monkeypatch: pytest.MonkeyPatch,
    src: pymysql.Connection,  # noqa: F811
    src_resource: MySQLResource,  # noqa: F811
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,  # noqa: F811
) -> None:
    run_sql(src, "CREATE TABLE parts (id INT PRIMARY KEY, name VARCHAR(20))")
    run_sql(src, "INSERT INTO parts VALUES (1, 'bolt'), (2, 'nut')")
    monkeypatch.setenv("MYSQL_TABLES", "parts")
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    assets = [a for a in build_mysql_defs().assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(assets, resources={"mysql": src_resource, "postgres": pg_resource})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    phases = metadata["phase_seconds"].value
    assert phases and "copy" in phases
    for phase, seconds in phases.items():
        value = metadata[f"phase_{phase}_seconds"]
        assert isinstance(value, dg.FloatMetadataValue) and value.value == seconds


def test_an_ftp_run_logs_one_line_per_file_with_k_of_n(
    ftp_server_factory: FTPServerFactory,
    make_source,  # noqa: F811
    pg_resource: PostgresResource,
) -> None:
    handle = ftp_server_factory()
    write_file(handle.root, "a.csv", b"ts,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,2\n")
    write_file(handle.root, "b.csv", b"ts,value\n2026-01-01 00:02:00,3\n")
    asset = build_log_asset(make_source("press", parallel_files=1))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset],
            resources={"ftp": make_ftp_resource(handle), "postgres": pg_resource},
            instance=instance,
        )
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert "file 1 of 2: /a.csv: loaded, 2 rows" in "\n".join(messages)
    assert "file 2 of 2: /b.csv: loaded, 1 rows" in "\n".join(messages)
