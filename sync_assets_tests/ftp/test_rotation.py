"""Log rotation and moved files: content already loaded is not loaded again under a new name.

Real pyftpdlib servers (MLSD and LIST-only), the real PostgreSQL; crashes are real SIGKILLs
of a child process at a failpoint (as in test_exactly_once.py).
"""

from __future__ import annotations

import dataclasses
import os

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rows, set_age, write_file
from sync_assets_tests.ftp.test_exactly_once import _run_child_until_killed


def _lines(first: int, last: int) -> bytes:
    return "".join(f"2026-12-04 10:{i // 60:02d}:{i % 60:02d} press-7 cycle={i}\n" for i in
                   range(first, last + 1)).encode()  # fmt: skip


def _loaded(pg_conn, source) -> list[tuple[str, str, int]]:
    """(cycle, _source_file, _line_number) of every row, in cycle order."""
    found = rows(pg_conn, source, "line, _source_file, _line_number")
    cycles = [(int(line.rsplit("=", 1)[1]), path, number) for line, path, number in found]
    return sorted(cycles)


def _cycles(pg_conn, source) -> list[int]:
    return [c for c, _, _ in _loaded(pg_conn, source)]


def _append(path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)
    set_age(path, 600)


def test_renamed_log_loads_only_its_new_tail_and_the_new_log_from_line_1(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("rotate", final_line_seconds=1e9)
    log = write_file(ftp_server.root, "press.log", _lines(1, 40) + b"2026-12-04 10:00:41 pre")
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 40  # partial 41st waits

    # The machine finishes line 41, writes 42-45, then rotates: press.log -> press.log.1.
    _append(log, b"ss-7 cycle=41\n" + _lines(42, 45))
    os.rename(log, ftp_server.root / "press.log.1")
    write_file(ftp_server.root, "press.log", _lines(1001, 1003), age_seconds=300)
    report = ingest_source(ftp, pg_resource, source)
    outcomes = {f.path: f for f in report.files}
    assert outcomes["/press.log.1"].moved_from == "/press.log"
    assert outcomes["/press.log.1"].rows_loaded == 5
    assert outcomes["/press.log"].rows_loaded == 3 and outcomes["/press.log"].replaced
    assert _cycles(pg_conn, source) == [*range(1, 46), 1001, 1002, 1003]

    # Provenance: the tail's rows name the file they were read from, numbered in it.
    loaded = _loaded(pg_conn, source)
    assert loaded[39] == (40, "/press.log", 40)
    assert loaded[40:45] == [(c, "/press.log.1", c) for c in range(41, 46)]
    assert loaded[45] == (1001, "/press.log", 1)

    # The next rotation: press.log.1 -> press.log.2, press.log -> press.log.1, a new press.log.
    root = ftp_server.root
    os.rename(root / "press.log.1", root / "press.log.2")
    _append(root / "press.log", _lines(1004, 1005))
    os.rename(root / "press.log", root / "press.log.1")
    write_file(root, "press.log", _lines(2001, 2001), age_seconds=300)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 3  # 1004, 1005 and 2001
    assert _cycles(pg_conn, source) == [*range(1, 46), *range(1001, 1006), 2001]
    entries = ledger(pg_conn, source)
    assert entries["/press.log.2"]["offset_bytes"] == (root / "press.log.2").stat().st_size
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 0


def test_new_log_already_longer_than_the_old_offset(ftp_server, pg_resource, pg_conn, make_source):
    """The new press.log outgrew the old one before the run: its first bytes tell it apart."""
    ftp = make_ftp_resource(ftp_server)
    source = make_source("outgrown")
    log = write_file(ftp_server.root, "press.log", _lines(1, 5))
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 5
    _append(log, _lines(6, 7))
    os.rename(log, ftp_server.root / "press.log.1")
    write_file(ftp_server.root, "press.log", _lines(101, 150), age_seconds=300)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 2 + 50
    assert _cycles(pg_conn, source) == [*range(1, 8), *range(101, 151)]


def test_moved_into_archive_with_a_dated_name(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("archive")
    root = ftp_server.root
    log = write_file(root, "press.log", _lines(1, 30))
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 30
    _append(log, _lines(31, 32))
    (root / "archive").mkdir()
    os.rename(log, root / "archive" / "press-2026-12-04.log")
    report = ingest_source(ftp, pg_resource, source)
    assert [(f.path, f.rows_loaded) for f in report.files] == [("/archive/press-2026-12-04.log", 2)]
    assert _cycles(pg_conn, source) == list(range(1, 33))
    entries = ledger(pg_conn, source)
    assert entries["/press.log"]["status"] == "moved"
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 0

    # A press.log at the old name again is new content: a new version from line 1.
    write_file(root, "press.log", _lines(500, 501))
    report = ingest_source(ftp, pg_resource, source)
    assert [(f.path, f.version, f.rows_loaded) for f in report.files] == [("/press.log", 2, 2)]
    assert _cycles(pg_conn, source) == [*range(1, 33), 500, 501]


def test_same_head_or_shorter_prefix_is_not_the_same_content(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("lookalike")
    root = ftp_server.root
    original = _lines(1, 100)  # > 1 KiB: the head hash covers the first 1024 bytes only
    write_file(root, "a.log", original)
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 100
    os.remove(root / "a.log")

    # Same first 1 KiB (and longer), other lines before the old offset: not a.log's content.
    same_head = _lines(1, 30) + _lines(900, 999)
    assert same_head[:1024] == original[:1024] and len(same_head) > len(original)
    write_file(root, "b.log", same_head)
    # A prefix of a.log, shorter than what was consumed of it: not the same content either.
    write_file(root, "c.log", _lines(1, 50))
    report = ingest_source(ftp, pg_resource, source)
    assert {f.path: f.moved_from for f in report.files} == {"/b.log": None, "/c.log": None}
    assert report.rows_loaded == 130 + 50
    assert ledger(pg_conn, source)["/a.log"]["status"] == "loaded"  # nobody took it over

    # A copy of a file whose original is still there is a file of its own, not a move.
    write_file(root, "d.log", _lines(1, 3))
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 3
    write_file(root, "copy-of-d.log", _lines(1, 3))
    report = ingest_source(ftp, pg_resource, source)
    assert [(f.path, f.moved_from, f.rows_loaded) for f in report.files] == [
        ("/copy-of-d.log", None, 3)
    ]


def test_delete_after_sync_deletes_the_renamed_file_after_its_tail_commits(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server, delete_after_sync="true")
    source = make_source("rotate_delete", final_line_seconds=1e9)
    root = ftp_server.root
    log = write_file(root, "press.log", _lines(1, 10) + b"2026-12-04 10:00:11 pr")
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 10 and report.deleted == []  # a partial line waits

    _append(log, b"ess-7 cycle=11\n")
    os.rename(log, root / "press.log.1")
    write_file(root, "press.log", _lines(20, 21), age_seconds=300)
    report = ingest_source(ftp, pg_resource, source)
    assert sorted(report.deleted) == ["/press.log", "/press.log.1"]
    assert _cycles(pg_conn, source) == [*range(1, 12), 20, 21]
    assert not (root / "press.log.1").exists() and not (root / "press.log").exists()


def test_crash_while_loading_the_rotated_tail(ftp_server, pg_resource, pg_conn, make_source):
    """Killed inside the renamed file's transaction (its tail and the takeover roll back
    together), then after its commit before the delete: each line exactly once."""
    ftp = make_ftp_resource(ftp_server, delete_after_sync="true")
    source = make_source("rotate_crash", final_line_seconds=1e9, chunk_lines=10)
    source = dataclasses.replace(source, parallel_files=1)
    root = ftp_server.root
    log = write_file(root, "press.log", _lines(1, 30) + b"2026-12-04 10:00:31 pr")
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 30

    _append(log, b"ess-7 cycle=31\n" + _lines(32, 60))
    os.rename(log, root / "press.log.1")
    _run_child_until_killed(ftp, pg_resource, source, "mid_copy:2")  # in the tail's 2nd COPY
    assert _cycles(pg_conn, source) == list(range(1, 31))
    assert ledger(pg_conn, source)["/press.log"]["status"] == "loaded"

    _run_child_until_killed(ftp, pg_resource, source, "after_commit")
    assert _cycles(pg_conn, source) == list(range(1, 61))
    assert (root / "press.log.1").exists()  # committed, not deleted yet

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 0 and report.deleted == ["/press.log.1"]
    assert _cycles(pg_conn, source) == list(range(1, 61))


def test_two_new_files_with_the_content_of_one_old_file(
    ftp_server, pg_resource, pg_conn, make_source
):
    """Moved to one name and copied to another: the first takes the content over, the second
    finds it taken (its transaction rolls back) and loads as a file of its own."""
    ftp = make_ftp_resource(ftp_server)
    source = dataclasses.replace(make_source("twice"), parallel_files=1)
    root = ftp_server.root
    log = write_file(root, "press.log", _lines(1, 5))
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 5
    _append(log, _lines(6, 6))
    (root / "b.log").write_bytes(log.read_bytes())
    set_age(root / "b.log", 600)
    os.rename(log, root / "a.log")
    report = ingest_source(ftp, pg_resource, source)
    assert [(f.path, f.moved_from, f.rows_loaded) for f in report.files] == [
        ("/a.log", "/press.log", 1),
        ("/b.log", None, 6),
    ]
    assert ledger(pg_conn, source)["/press.log"]["status"] == "moved"
