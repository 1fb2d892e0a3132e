"""FTP side under faults: the run process SIGKILLed at three moments, its PostgreSQL backend
terminated, the data connection dropped and logins refused. After the next run the table holds
every line of every file exactly once, and no file was deleted before its rows were committed
(an FTP handler checks PostgreSQL at each DELE).

Complements ftp/test_exactly_once.py, whose crashes are self-inflicted at failpoints: here the
kill comes from outside, timed by what the servers show.
"""

import threading

import psycopg
import pytest
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler

from sync_assets.ftp.ingest import ingest_source
from sync_assets.resources import SourceUnavailableError
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger
from sync_assets_tests.reliability.conftest import (
    audited_handler,
    backend_gone,
    copy_in_flight,
    expected_ids,
    finish,
    ftp_run_args,
    ids_by_file,
    kill_hard,
    spawn_run,
    wait_until,
    write_csv_files,
)

pytestmark = pytest.mark.slow

FILES = {"a.csv": (1, 500), "b.csv": (501, 100_500), "c.csv": (100_501, 101_000)}


def _setup(factory, pg_resource, make_source, handler_base=FTPHandler, files=FILES, **source):
    """A server whose handler audits deletes, the files on it, a source and its resource."""
    src = make_source("fault", chunk_lines=10_000, **source)
    expected = expected_ids(files)
    handler = audited_handler(pg_resource, src, expected, handler_base)
    server = factory(mlsd=True, handler_base=handler)
    write_csv_files(server.root, files)
    return server, make_ftp_resource(server, delete_after_sync="true"), src, expected, handler


def _assert_recovered(pg_conn, server, src, expected, handler) -> None:
    """Every line exactly once; every file deleted, and only after its rows were committed."""
    assert ids_by_file(pg_conn, src) == expected
    assert sorted(p.name for p in server.root.iterdir()) == []
    assert handler.audits, "no DELE was audited"
    assert all(ok for _, ok in handler.audits), handler.audits


def _assert_partial_state_consistent(pg_conn, src, expected) -> None:
    """After a kill: each file is either absent or complete (never half-loaded)."""
    for path, ids in ids_by_file(pg_conn, src).items():
        assert ids == expected[path], f"{path}: {len(ids)} rows, partly loaded"


def test_sigkill_during_a_files_copy(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server, ftp, src, expected, handler = _setup(ftp_server_factory, pg_resource, make_source)
    child = spawn_run(ftp_run_args(ftp, pg_resource, src))
    backend = copy_in_flight(child, pg_conn, pg_resource.database)
    kill_hard(child)
    wait_until(lambda: backend_gone(pg_conn, backend), "the killed run's backend to end")
    _assert_partial_state_consistent(pg_conn, src, expected)
    assert "/b.csv" not in ids_by_file(pg_conn, src)
    assert (server.root / "b.csv").exists()

    report = ingest_source(ftp, pg_resource, src)
    assert report.files_failed == 0
    _assert_recovered(pg_conn, server, src, expected, handler)


def test_sigkill_after_commit_before_delete(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    reached, release = threading.Event(), threading.Event()

    class HoldStatBeforeDelete(FTPHandler):
        """The engine looks at a file (MLST) right before deleting it: hold that reply once."""

        def ftp_MLST(self, path: str) -> None:
            if path.endswith("a.csv") and not reached.is_set():
                reached.set()
                release.wait(timeout=60)
                return  # the client is dead by now: no reply
            super().ftp_MLST(path)

    files = {"a.csv": (1, 1000)}
    server, ftp, src, expected, handler = _setup(
        ftp_server_factory, pg_resource, make_source, HoldStatBeforeDelete, files
    )
    child = spawn_run(ftp_run_args(ftp, pg_resource, src))
    try:
        wait_until(lambda: reached.is_set() or child.poll() is not None, "the pre-delete MLST")
        assert child.poll() is None, finish(child)
        assert ids_by_file(pg_conn, src) == expected  # committed ...
        assert ledger(pg_conn, src)["/a.csv"]["status"] == "loaded"
        kill_hard(child)
    finally:
        release.set()
    assert (server.root / "a.csv").exists()  # ... and not deleted

    report = ingest_source(ftp, pg_resource, src)
    assert report.rows_loaded == 0 and report.deleted == ["/a.csv"]
    _assert_recovered(pg_conn, server, src, expected, handler)


class CountingDTP(ThrottledDTPHandler):
    """Counts the bytes served; can throttle them and drop the data connection once."""

    sent = 0
    drop_after: int | None = None

    def send(self, data: bytes) -> int:
        sent = super().send(data)
        CountingDTP.sent += sent
        if CountingDTP.drop_after is not None and CountingDTP.sent >= CountingDTP.drop_after:
            CountingDTP.drop_after = None
            self.handle_close()  # the data link drops mid-file (the server replies 426)
        return sent


class SlowServing(FTPHandler):
    dtp_handler = CountingDTP


def test_sigkill_during_a_download(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    CountingDTP.sent, CountingDTP.write_limit = 0, 256 * 1024  # b.csv (~1.3 MB) takes seconds
    server, ftp, src, expected, handler = _setup(
        ftp_server_factory, pg_resource, make_source, SlowServing
    )
    child = spawn_run(ftp_run_args(ftp, pg_resource, src))
    try:
        wait_until(lambda: CountingDTP.sent > 400_000 or child.poll() is not None,
                   "b.csv half served")  # fmt: skip
        assert child.poll() is None, finish(child)
        kill_hard(child)
    finally:
        CountingDTP.write_limit = 0
    _assert_partial_state_consistent(pg_conn, src, expected)
    assert "/b.csv" not in ids_by_file(pg_conn, src)

    ingest_source(ftp, pg_resource, src)
    _assert_recovered(pg_conn, server, src, expected, handler)


def test_postgres_backend_terminated_mid_load(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server, ftp, src, expected, handler = _setup(ftp_server_factory, pg_resource, make_source)
    child = spawn_run(ftp_run_args(ftp, pg_resource, src))
    backend = copy_in_flight(child, pg_conn, pg_resource.database)
    pg_conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
    _, stderr = finish(child)
    assert child.returncode == 1
    assert "terminat" in stderr.lower(), stderr[-2000:]  # the server's own reason surfaces
    _assert_partial_state_consistent(pg_conn, src, expected)
    assert (server.root / "b.csv").exists()

    ingest_source(ftp, pg_resource, src)
    _assert_recovered(pg_conn, server, src, expected, handler)


class RefusingLogins(SlowServing):
    """`busy` logins get 421 (try later); while `closed`, every login gets 530."""

    busy = 0
    closed = False

    def ftp_PASS(self, line: str) -> None:
        if RefusingLogins.closed:
            self.respond("530 Logins are disabled for maintenance.")
            return
        if RefusingLogins.busy:
            RefusingLogins.busy -= 1
            self.respond("421 Too many users, try later.")
            self.close_when_done()
            return
        super().ftp_PASS(line)


def test_data_connection_dropped_and_logins_refused(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    CountingDTP.sent, CountingDTP.write_limit = 0, 0
    CountingDTP.drop_after = 600_000  # inside b.csv
    RefusingLogins.busy, RefusingLogins.closed = 2, False
    server, ftp, src, expected, handler = _setup(
        ftp_server_factory, pg_resource, make_source, RefusingLogins, retries=4
    )
    # A busy server and a dropped transfer are retried within the run (REST resumes it).
    report = ingest_source(ftp, pg_resource, src)
    assert RefusingLogins.busy == 0 and CountingDTP.drop_after is None
    assert report.reconnects >= 3
    _assert_recovered(pg_conn, server, src, expected, handler)

    # Logins refused outright: the run fails, names the server, and loads nothing twice.
    late = {"d.csv": (400_000, 400_100)}
    write_csv_files(server.root, late)
    expected.update(expected_ids(late))  # the auditing handler reads the same dict
    RefusingLogins.closed = True
    with pytest.raises(Exception, match="530") as failure:
        ingest_source(ftp, pg_resource, src)
    assert ftp.password not in str(failure.value)
    RefusingLogins.closed = False
    ingest_source(ftp, pg_resource, src)
    _assert_recovered(pg_conn, server, src, expected, handler)


def test_unreachable_ftp_server_fails_with_a_clear_message(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    ftp = make_ftp_resource(server)
    server.stop()
    with pytest.raises(SourceUnavailableError, match=r"FTP ftp://machine@127\.0\.0\.1") as err:
        ingest_source(ftp, pg_resource, make_source("down", retries=2))
    assert "failed after 2 attempts" in str(err.value) and ftp.password not in str(err.value)
