"""The benchmark's peers (Sling, pgloader) load the generated table value-exact, and Sling's
incremental mode picks up a change: on tiny sizes, against the test bed's real servers.

A peer that cannot be installed here (no uv, not root) is skipped with the harness's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import dataset, verify
from benchmarks.peers import PGLOADER_SCHEMA, SLING_SCHEMA, PeerRunner, find_pgloader, find_sling
from benchmarks.servers import BenchServers
from sync_assets.devtools.servers import ServerInfo

ROWS = 2_000


@pytest.fixture
def target_db(
    pg_server: ServerInfo, mysql_server: ServerInfo
) -> Iterator[tuple[BenchServers, str]]:
    servers = BenchServers(pg_server, mysql_server)
    name = servers.create_pg_database("peers")
    yield servers, name
    servers.drop_pg_database(name)


def _compare(servers: BenchServers, source_db: str, pg_db: str, schema: str) -> verify.Comparison:
    with servers.mysql_connect(source_db) as conn:
        source = verify.mysql_fingerprint(conn, source_db, dataset.TABLE, dataset.PRIMARY_KEY)
    with servers.pg_connect(pg_db) as conn:
        target = verify.pg_fingerprint(conn, schema, dataset.TABLE, dataset.PRIMARY_KEY)
    return verify.compare(source, target)


@pytest.mark.slow
def test_peers_copy_the_table_value_exact(
    source_db: str, target_db: tuple[BenchServers, str], tmp_path: Path
) -> None:
    servers, pg_db = target_db
    reasons: list[str] = []
    sling = find_sling(tmp_path / "peers", reasons.append)
    pgloader = find_pgloader(reasons.append)
    if not (sling and pgloader):
        pytest.skip("; ".join(reasons))
    with servers.mysql_connect(source_db) as conn:
        dataset.generate(conn, source_db, ROWS)
    runner = PeerRunner(servers, source_db, tmp_path, sling, pgloader)
    assert runner.sling_run(pg_db, incremental=False).wall > 0
    assert runner.pgloader_run(pg_db).wall > 0
    assert _compare(servers, source_db, pg_db, SLING_SCHEMA).ok
    assert _compare(servers, source_db, pg_db, PGLOADER_SCHEMA).ok
    assert not (tmp_path / "pgloader.load").exists()  # the file holding the URLs is gone
    with servers.mysql_connect(source_db) as conn:
        dataset.change_one_percent(conn, source_db, 1)
    assert not _compare(servers, source_db, pg_db, SLING_SCHEMA).ok  # the check sees the change
    runner.sling_run(pg_db, incremental=True)
    assert _compare(servers, source_db, pg_db, SLING_SCHEMA).ok
