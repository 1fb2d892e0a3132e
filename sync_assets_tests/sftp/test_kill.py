"""SFTP runs killed from outside (SIGKILL of the run process, `reliability/runner.py`): mid-file
while downloading, and between a file's commit and its delete; and the server's side of the
connection killed mid-file. The next run (or the retry) loads every line exactly once and
deletes only committed files."""

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest

from sync_assets.core.failpoint import FAILPOINT_ENV
from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.ftp.conftest import ledger, write_file
from sync_assets_tests.reliability.conftest import (
    csv_file,
    finish,
    ftp_run_args,
    ids_by_file,
    kill_hard,
    spawn_run,
    wait_until,
)
from sync_assets_tests.sftp.conftest import DeleteAudit, make_sftp_resource

pytestmark = pytest.mark.slow

BIG_LAST = 1_500_000  # big.csv: ~25 MB, many SFTP reads


def _write(root, files: dict[str, tuple[int, int]]) -> dict[str, list[int]]:
    for name, (first, last) in files.items():
        write_file(root, name, csv_file(first, last))
    return {f"{root}/{name}": list(range(first, last + 1)) for name, (first, last) in files.items()}


def _bytes_served(sshd) -> int:
    """Bytes read so far by the SFTP session processes (the file, and the pipe that carries
    it to the network side: about twice the file bytes)."""
    total = 0
    for process in sshd.session_processes():
        try:
            total += process.io_counters().read_chars
        except psutil.Error:  # ended meanwhile
            continue
    return total


def test_sigkill_mid_download_then_next_run_loads_once(
    sshd, known_hosts, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    expected = _write(sshd.root, {"a.csv": (1, 500), "big.csv": (501, BIG_LAST)})
    big_size = (sshd.root / "big.csv").stat().st_size
    source = make_source("sftp_kill_dl", parallel_files=1, chunk_lines=50_000)
    sftp = make_sftp_resource(sshd, known_hosts, delete_after_sync="true")
    child = spawn_run(ftp_run_args(sftp, pg_resource, source))
    try:
        # Once the server has served about a MB of big.csv, freeze the run (SIGSTOP): it
        # is in the middle of that download, and the server can only answer the reads already
        # asked for (at most 2 MB), so what was served stays far below the file's size.
        wait_until(lambda: _bytes_served(sshd) > 1_000_000 or child.poll() is not None,
                   "big.csv partly served", timeout=120)  # fmt: skip
        child.send_signal(signal.SIGSTOP)
        assert child.poll() is None, finish(child)
        served = _bytes_served(sshd)
        assert served < big_size / 2, f"{served} of {big_size} bytes served: not mid-file"
    finally:
        kill_hard(child)
    after_kill = ids_by_file(pg_conn, source)
    assert f"{sshd.root}/big.csv" not in after_kill  # nothing of the half-read file
    assert all(after_kill[path] == expected[path] for path in after_kill)
    assert (sshd.root / "big.csv").exists()

    report = ingest_source(sftp, pg_resource, source)
    assert report.files_failed == 0
    assert ids_by_file(pg_conn, source) == expected  # every line exactly once
    assert list(sshd.root.iterdir()) == []  # deleted once committed


def test_sigkill_between_commit_and_delete(
    sshd, known_hosts, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    expected = _write(sshd.root, {"a.csv": (1, 1000)})
    source = make_source("sftp_kill_commit", parallel_files=1)
    sftp = make_sftp_resource(sshd, known_hosts, delete_after_sync="true")
    audit = DeleteAudit(sshd.root, pg_resource, source, expected)
    try:
        # The run kills itself (SIGKILL) right after the file's commit, before its delete.
        child = spawn_run(ftp_run_args(sftp, pg_resource, source), {FAILPOINT_ENV: "after_commit"})
        finish(child)
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert ids_by_file(pg_conn, source) == expected  # committed ...
        assert ledger(pg_conn, source)[f"{sshd.root}/a.csv"]["status"] == "loaded"
        assert (sshd.root / "a.csv").exists()  # ... and not deleted
        assert audit.audits == []

        report = ingest_source(sftp, pg_resource, source)
    finally:
        audit.close()
    assert report.rows_loaded == 0 and report.deleted == [f"{sshd.root}/a.csv"]
    assert ids_by_file(pg_conn, source) == expected
    assert audit.audits == [(f"{sshd.root}/a.csv", True)]
    assert not os.path.exists(sshd.root / "a.csv")


# paramiko's prefetch thread dies with "Socket is closed" when the connection drops under it
# (its own thread: the download itself sees the error and retries).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_connection_dropped_mid_download_resumes_at_the_offset(
    sshd, known_hosts, pg_resource, pg_conn: psycopg.Connection, make_source, tmp_path, monkeypatch
) -> None:
    """The server side of the connections dies mid-file; the run reconnects and reads on from
    the byte it had reached. Proof that the first bytes are not read again: while the server
    is frozen between the break and the reconnect, they are overwritten (same size, same
    mtime); the table must still hold the original lines."""
    expected = _write(sshd.root, {"big.csv": (1, BIG_LAST)})
    path = sshd.root / "big.csv"
    big_size = path.stat().st_size
    source = make_source("sftp_drop", parallel_files=1, chunk_lines=50_000,
                         retry_backoff_seconds=0.2)  # fmt: skip
    sftp = make_sftp_resource(sshd, known_hosts)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # the run's download lands here
    result = {}
    run = threading.Thread(
        target=lambda: result.update(report=ingest_source(sftp, pg_resource, source))
    )
    run.start()
    listener = psutil.Process(sshd.process.pid)
    try:
        # The run has written 1 MB of the file to its local spool: it holds the first bytes
        # (what the server has sent is no proof: paramiko's prefetch thread takes responses
        # ahead of the download loop, which a loaded machine may not have run yet). The
        # sessions are frozen in the same poll that sees it, so the rest is still to come.
        frozen = wait_until(
            lambda: _freeze_when(sshd, lambda: _spooled_bytes(spool) > 1_000_000)
            or not run.is_alive(),
            "big.csv partly downloaded",
            timeout=120,
        )
        assert run.is_alive(), result
        assert _spooled_bytes(spool) < big_size, "the download ended before the freeze"
        for process in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()  # the server side of the SSH connections dies mid-file
        _rewrite_head(path, b"id;value\n1;7\n2;14\n", b"id;value\n7;1\n9;41\n")
    finally:
        listener.resume()
        run.join(timeout=300)
    report = result["report"]
    assert report.reconnects >= 1 and report.files_failed == 0
    assert ids_by_file(pg_conn, source) == expected  # original head: it was not read again


def _spooled_bytes(spool: Path) -> int:
    """Bytes in the files this process holds open under `spool` (the run's download sink:
    an unnamed temporary file, seen through /proc/self/fd)."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed (or reused) meanwhile
            if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{spool}/"):
                total += os.fstat(int(fd)).st_size
    return total


def _freeze_when(sshd, ready: Callable[[], bool]) -> list[psutil.Process]:
    """SIGSTOP the SFTP sessions, and sshd's listener (no new connection is served until it
    is resumed), as soon as `ready()`; [] before."""
    sessions = sshd.session_processes()
    if not sessions or not ready():
        return []
    psutil.Process(sshd.process.pid).suspend()
    for process in sessions:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.suspend()
    return sessions


def _rewrite_head(path, old: bytes, new: bytes) -> None:
    """Replace the first bytes in place, keeping the size and the mtime."""
    stat = path.stat()
    with path.open("r+b") as handle:
        assert handle.read(len(old)) == old
        handle.seek(0)
        handle.write(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
