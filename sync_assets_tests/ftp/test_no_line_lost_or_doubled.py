"""No line lost or doubled by an odd history of a file: a preamble first seen in part, a local
write error in the middle of a download, a .gz touched or re-uploaded with the same bytes.

Real pyftpdlib server (MLSD) and the real PostgreSQL, through `ingest_source`.
"""

from __future__ import annotations

import gzip
import logging
import resource
import signal

import pytest

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rejects, rows, set_age, write_file


@pytest.fixture
def server(ftp_server_factory):
    return ftp_server_factory(mlsd=True)


def _run(server, pg_resource, source, log=None):
    return ingest_source(make_ftp_resource(server), pg_resource, source, log=log)


def test_preamble_seen_in_part_is_read_again_once_complete(
    server, pg_resource, pg_conn, make_source
):
    source = make_source("preamble", skip_lines=2)
    write_file(server.root, "p.csv", b"# machine M1 export\n")
    _run(server, pg_resource, source)
    assert ledger(pg_conn, source)["/p.csv"]["offset_bytes"] == 0  # nothing consumed yet

    body = b"# machine M1 export\n# firmware 1.2\nts,temp\n2026-01-01 00:00:00,21\n"
    write_file(server.root, "p.csv", body, age_seconds=1800)
    _run(server, pg_resource, source)
    assert rows(pg_conn, source, "temp") == [(21,)]
    assert rejects(pg_conn, source) == []


class _FreeDiskOnRetry(logging.Logger):
    """Lifts the file-size limit when the engine logs its first retry warning."""

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        super().warning(msg, *args, **kwargs)


def test_a_local_write_error_mid_download_never_doubles_bytes(
    server, pg_resource, pg_conn, make_source
):
    lines = 20_000
    body = b"ts,v\n" + b"".join(b"2026-01-01 00:00:00,%d\n" % i for i in range(lines))
    write_file(server.root, "big.csv", body)
    source = make_source("disk")
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_003, hard))
    try:
        _run(server, pg_resource, source, log=_FreeDiskOnRetry("disk-full"))
    except Exception:
        pass
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    _run(server, pg_resource, source)
    assert pg_conn.execute(
        f'SELECT count(*), count(DISTINCT v) FROM "{source.schema}"."{source.table_name}"'
    ).fetchone() == (lines, lines)
    assert rejects(pg_conn, source) == []


def test_a_touched_gzip_file_is_not_loaded_twice(server, pg_resource, pg_conn, make_source):
    body = b"ts,v\n" + b"".join(b"2026-01-01 00:00:00,%d\n" % i for i in range(50))
    path = write_file(server.root, "day.csv.gz", gzip.compress(body, mtime=0))
    source = make_source("touched")
    _run(server, pg_resource, source)
    set_age(path, 60)  # same bytes, new mtime (a re-upload of the same file)
    report = _run(server, pg_resource, source)
    assert report.files[0].status == "unchanged"
    assert rows(pg_conn, source, "count(*), count(DISTINCT v)") == [(50, 50)]

    write_file(server.root, "day.csv.gz", gzip.compress(body + b"2026-01-01 00:00:01,50\n"))
    _run(server, pg_resource, source)  # really new bytes: a new version, loaded and reported
    assert ledger(pg_conn, source)["/day.csv.gz"]["version"] == 2
