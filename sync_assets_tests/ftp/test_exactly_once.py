"""Exactly once: unstable and growing files, DELETE_AFTER_SYNC, crashes, transient failures.

Real pyftpdlib servers (MLSD and LIST-only) and the real PostgreSQL. Crashes are real: a child
process running the real code path SIGKILLs itself at an injected failpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from pyftpdlib.handlers import FTPHandler

from sync_assets.core.failpoint import FAILPOINT_ENV
from sync_assets.core.locks import LockBusyError, advisory_lock
from sync_assets.core.names import ftp_source_lock
from sync_assets.devtools.ftp_server import ListOnlyFTPHandler
from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rows, set_age, write_file


def _csv(first: int, last: int, header: bool = True) -> bytes:
    body = "".join(f"{i};{i * 10},5\n" for i in range(first, last + 1))
    return (("id;value\n" if header else "") + body).encode()


def _ids(pg_conn, source) -> list[int]:
    return [r[0] for r in rows(pg_conn, source, "id", "id")]


def test_file_still_being_written_is_skipped_then_loaded(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server)
    path = write_file(ftp_server.root, "young.csv", _csv(1, 3), age_seconds=0)
    source = make_source("young", min_age_seconds=60)
    report = ingest_source(ftp, pg_resource, source)
    assert (report.files_skipped, report.rows_loaded) == (1, 0)
    assert report.files[0].status == "too_young"

    set_age(path, 120)
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 3

    # Changed between the two looks (an upload in progress): skipped, loaded the next run.
    growing = write_file(ftp_server.root, "upload.csv", _csv(1, 2), age_seconds=0)
    busy = make_source("busy", stable_seconds=0.8)

    def keep_writing() -> None:
        time.sleep(0.3)
        with growing.open("ab") as handle:
            handle.write(b"3;30,5\n")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    report = ingest_source(ftp, pg_resource, dataclasses.replace(busy, include=("upload.csv",)))
    writer.join()
    assert [f.status for f in report.files] == ["unstable"] and report.rows_loaded == 0
    report = ingest_source(ftp, pg_resource, dataclasses.replace(busy, include=("upload.csv",)))
    assert report.rows_loaded == 3


def test_growing_file_loads_only_appended_lines_and_replacement_is_a_new_version(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("grow", final_line_seconds=1e9)
    path = write_file(ftp_server.root, "daily.csv", _csv(1, 2) + b"3;3")  # partial last line
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 2

    with path.open("ab") as handle:
        handle.write(b"0,5\n" + _csv(4, 5, header=False))
    set_age(path, 3000)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 3 and report.files[0].resumed_from > 0
    assert _ids(pg_conn, source) == [1, 2, 3, 4, 5]
    assert rows(pg_conn, source, "_line_number", "id") == [(n,) for n in range(2, 7)]
    assert rows(pg_conn, source, "value", "id")[2] == (30.5,)

    assert ingest_source(ftp, pg_resource, source).rows_loaded == 0  # unchanged

    write_file(ftp_server.root, "daily.csv", _csv(100, 100), age_seconds=2000)  # shrank
    report = ingest_source(ftp, pg_resource, source)
    assert report.files_replaced == 1 and report.files[0].version == 2
    assert _ids(pg_conn, source) == [1, 2, 3, 4, 5, 100]

    write_file(ftp_server.root, "daily.csv", _csv(200, 203))
    report = ingest_source(ftp, pg_resource, source)  # bigger, but the first bytes changed
    assert report.files_replaced == 1 and report.files[0].version == 3
    assert _ids(pg_conn, source)[-4:] == [200, 201, 202, 203]


def test_last_line_without_newline_is_taken_once_old_enough(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server, delete_after_sync="true")
    write_file(ftp_server.root, "tail.csv", _csv(1, 2) + b"3;30,5", age_seconds=30)
    report = ingest_source(ftp, pg_resource, make_source("tail", final_line_seconds=600))
    assert report.rows_loaded == 2 and report.deleted == []  # the last line waits

    # Same file, untouched: once it is older than final_line_seconds the line is complete.
    report = ingest_source(ftp, pg_resource, make_source("tail", final_line_seconds=20))
    assert report.rows_loaded == 1 and report.deleted == ["/tail.csv"]
    assert rows(pg_conn, make_source("tail"), "id, value", "id") == [
        (1, 10.5), (2, 20.5), (3, 30.5),
    ]  # fmt: skip


@pytest.mark.parametrize("delete", [True, False])
def test_delete_after_sync(ftp_server, pg_resource, pg_conn, make_source, delete):
    ftp = make_ftp_resource(ftp_server, delete_after_sync=str(delete).lower())
    root = ftp_server.root
    write_file(root, "a.csv", _csv(1, 3))
    write_file(root, "b.csv.gz", __import__("gzip").compress(_csv(4, 5)))
    write_file(root, "broken.csv", b"\x00\x00binary")
    write_file(root, "open.csv", _csv(6, 6) + b"7;7")  # partial last line: not complete yet
    source = make_source("del", final_line_seconds=1e9)

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 6 and report.files_failed == 1
    remaining = sorted(p.name for p in root.iterdir())
    if delete:
        assert sorted(report.deleted) == ["/a.csv", "/b.csv.gz"]
        assert remaining == ["broken.csv", "open.csv"]
        assert ledger(pg_conn, source)["/a.csv"]["status"] == "deleted"
    else:
        assert report.deleted == [] and len(remaining) == 4
    again = ingest_source(ftp, pg_resource, source)
    assert again.rows_loaded == 0 and again.deleted == []
    assert _ids(pg_conn, source) == [1, 2, 3, 4, 5, 6]


def test_failed_delete_is_recorded_and_retried_without_reingest(
    ftp_server_factory, pg_resource, pg_conn, make_source
):
    class RefusingDelete(FTPHandler):
        refuse = True

        def ftp_DELE(self, path: str) -> None:
            if RefusingDelete.refuse:
                self.respond("550 Permission denied by the test.")
                return
            super().ftp_DELE(path)

    server = ftp_server_factory(handler_base=RefusingDelete)
    ftp = make_ftp_resource(server, delete_after_sync="true")
    write_file(server.root, "a.csv", _csv(1, 4))
    source = make_source("refuse")
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 4 and "/a.csv" in report.delete_errors
    entry = ledger(pg_conn, source)["/a.csv"]
    assert "550" in entry["delete_error"] and entry["status"] == "loaded"

    RefusingDelete.refuse = False
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 0 and report.deleted == ["/a.csv"]
    assert not (server.root / "a.csv").exists()
    assert _ids(pg_conn, source) == [1, 2, 3, 4]


_CHILD = """
import json, os, sys
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.ingest import ingest_source
from sync_assets.resources import FTPResource, PostgresResource
args = json.loads(os.environ["CHILD_ARGS"])
fields = {k: tuple(v) if isinstance(v, list) else v for k, v in args["source"].items()}
source = SourceConfig(**fields)
ingest_source(FTPResource(**args["ftp"]), PostgresResource(**args["pg"]), source)
"""


def _run_child_until_killed(ftp, pg_resource, source, failpoint: str) -> None:
    args = {
        "ftp": ftp.model_dump(),
        "pg": pg_resource.model_dump(),
        "source": dataclasses.asdict(source),
    }
    env = {**os.environ, "CHILD_ARGS": json.dumps(args), FAILPOINT_ENV: failpoint}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def test_crash_between_commit_and_delete(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server, delete_after_sync="true")
    write_file(ftp_server.root, "a.csv", _csv(1, 5))
    source = make_source("crash_commit")
    _run_child_until_killed(ftp, pg_resource, source, "after_commit")
    assert _ids(pg_conn, source) == [1, 2, 3, 4, 5]  # committed ...
    assert (ftp_server.root / "a.csv").exists()  # ... but not deleted

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 0 and report.deleted == ["/a.csv"]
    assert _ids(pg_conn, source) == [1, 2, 3, 4, 5]


def test_crash_mid_copy(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    write_file(ftp_server.root, "a.csv", _csv(1, 25))
    write_file(ftp_server.root, "b.csv", _csv(26, 50))
    source = make_source("crash_copy", chunk_lines=10)
    # a.csv takes COPYs 1-3 and commits; the child dies inside b.csv's second COPY.
    _run_child_until_killed(ftp, pg_resource, source, "mid_copy:5")
    assert _ids(pg_conn, source) == list(range(1, 26))

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 25
    assert _ids(pg_conn, source) == list(range(1, 51))


def test_transient_failures_are_retried(ftp_server_factory, pg_resource, pg_conn, make_source):
    class Flaky(ListOnlyFTPHandler):
        failures = {"LIST": 1, "RETR_DROP": 1, "RETR_SHORT": 1}

        def ftp_LIST(self, path: str) -> None:
            if Flaky.failures["LIST"]:
                Flaky.failures["LIST"] -= 1
                self.respond("421 Too many connections, try later.")
                self.close_when_done()
                return
            super().ftp_LIST(path)

        def ftp_RETR(self, file: str) -> str | None:
            if Flaky.failures["RETR_DROP"]:
                Flaky.failures["RETR_DROP"] -= 1
                self.close()  # the control connection is reset mid-command
                return None
            if Flaky.failures["RETR_SHORT"] and file.endswith("big.csv"):
                Flaky.failures["RETR_SHORT"] -= 1
                with open(file, "rb") as handle:
                    data = handle.read()
                self.push_dtp_data(data[: len(data) // 2], cmd="RETR")  # data link drops early
                return file
            return super().ftp_RETR(file)

    server = ftp_server_factory(mlsd=False, handler_base=Flaky)
    write_file(server.root, "a.csv", _csv(1, 3))
    write_file(server.root, "big.csv", _csv(4, 3000))
    source = make_source("flaky")
    report = ingest_source(make_ftp_resource(server), pg_resource, source)
    assert report.reconnects >= 3
    assert Flaky.failures == {"LIST": 0, "RETR_DROP": 0, "RETR_SHORT": 0}
    assert _ids(pg_conn, source) == list(range(1, 3001))


def test_server_restarted_between_runs(ftp_server_factory, pg_resource, pg_conn, make_source):
    server = ftp_server_factory(mlsd=True)
    ftp = make_ftp_resource(server)
    write_file(server.root, "a.csv", _csv(1, 2))
    source = make_source("restart")
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 2
    server.stop()
    write_file(server.root, "b.csv", _csv(3, 4))
    ftp_server_factory(mlsd=True, root=server.root, port=server.port)
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 2
    assert _ids(pg_conn, source) == [1, 2, 3, 4]


def test_two_runs_of_a_source_never_interleave(ftp_server, pg_resource, make_source):
    source = make_source("locked", lock_wait_seconds=0.3)
    with (
        pg_resource.connection(autocommit=True) as conn,
        advisory_lock(conn, ftp_source_lock(source.name)),
        pytest.raises(LockBusyError),
    ):
        ingest_source(make_ftp_resource(ftp_server), pg_resource, source)


def test_file_changed_after_loading_is_not_deleted(
    ftp_server_factory, pg_resource, pg_conn, make_source
):
    class AppendAfterRead(FTPHandler):
        pending = True

        def ftp_RETR(self, file: str) -> str | None:
            result = super().ftp_RETR(file)
            if AppendAfterRead.pending:  # the machine appends right after we read it
                AppendAfterRead.pending = False
                with open(file, "ab") as handle:
                    handle.write(b"4;40,5\n")
            return result

    server = ftp_server_factory(handler_base=AppendAfterRead)
    ftp = make_ftp_resource(server, delete_after_sync="true")
    write_file(server.root, "a.csv", _csv(1, 3))
    source = make_source("changed")
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 3 and report.deleted == []
    assert (server.root / "a.csv").exists()

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 1 and report.deleted == ["/a.csv"]
    assert _ids(pg_conn, source) == [1, 2, 3, 4]


def test_file_unreadable_for_a_run_is_skipped_and_loaded_later(
    ftp_server_factory, pg_resource, pg_conn, make_source
):
    class DenyOnce(FTPHandler):
        denied = False

        def ftp_RETR(self, file: str) -> str | None:
            if file.endswith("a.csv") and not DenyOnce.denied:
                DenyOnce.denied = True
                self.respond("550 Permission denied (file locked by the machine).")
                return None
            return super().ftp_RETR(file)

    server = ftp_server_factory(handler_base=DenyOnce)
    ftp = make_ftp_resource(server)
    write_file(server.root, "a.csv", _csv(1, 2))
    write_file(server.root, "b.csv", _csv(3, 4))
    source = make_source("deny")
    report = ingest_source(ftp, pg_resource, source)
    assert {f.path: f.status for f in report.files} == {"/a.csv": "unreadable", "/b.csv": "loaded"}
    assert report.files_skipped == 1
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 2
    assert _ids(pg_conn, source) == [1, 2, 3, 4]


def test_a_hostile_listing_cannot_reach_outside_the_source_directory(
    ftp_server_factory, pg_resource, pg_conn, make_source
):
    from pyftpdlib.filesystems import AbstractedFS

    class HostileListing(AbstractedFS):
        def listdir(self, path: str) -> list[str]:
            names = super().listdir(path)
            return [*names, "../outside.csv"] if path.rstrip("/").endswith("/in") else names

    class Hostile(FTPHandler):
        abstracted_fs = HostileListing

    server = ftp_server_factory(handler_base=Hostile)
    write_file(server.root, "outside.csv", _csv(90, 91))
    write_file(server.root, "in/a.csv", _csv(1, 2))
    ftp = make_ftp_resource(server, delete_after_sync="true", directory="/in")
    source = make_source("hostile")
    report = ingest_source(ftp, pg_resource, source)
    assert [f.path for f in report.files] == ["/in/a.csv"]
    assert (server.root / "outside.csv").exists()
    assert _ids(pg_conn, source) == [1, 2]


def test_wrong_password_names_the_server_and_variables_without_the_secret(
    ftp_server_factory, pg_resource, make_source
):
    from sync_assets.resources import SourceUnavailableError

    class QuickRefusal(FTPHandler):
        auth_failed_timeout = 0.05  # pyftpdlib waits 3 s before answering 530 by default

    ftp_server = ftp_server_factory(handler_base=QuickRefusal)
    secret = "Wrong-Ftp-Secret-77"
    ftp = make_ftp_resource(ftp_server, password=secret)
    with pytest.raises(SourceUnavailableError) as raised:
        ingest_source(ftp, pg_resource, make_source("badpass"))
    message = str(raised.value)
    assert "530" in message and "FTP_PASS" in message and ftp_server.host in message
    assert secret not in message
