"""Hostile log files and file names on a real FTP server: each bad file or line ends as a
rejects entry (file + line) or a failed ledger entry with a clear error; everything else loads.

Complements ftp/test_ingest_formats.py (field counts, bad numbers, undecodable bytes, binary
files, names with spaces/quotes/`;`/non-ASCII are proven there).
"""

import gzip
import random
from pathlib import Path

import psycopg
import pytest
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rejects, write_file
from sync_assets_tests.reliability.conftest import (
    csv_file,
    expected_ids,
    ids_by_file,
    write_csv_files,
)

pytestmark = pytest.mark.slow

HEADER = b"id;value;ts\n"
HUGE = 10 * 1024 * 1024


def _line(n: int, value: str = "1", ts: str = "2026-11-28 10:00:00") -> bytes:
    return f"{n};{value};{ts}\n".encode()


def _truncated_gzip() -> bytes:
    whole = gzip.compress(HEADER + b"".join(_line(n) for n in range(300, 5300)))
    return whole[: len(whole) // 2]


HOSTILE_FILES = {
    "a_good.csv": HEADER + b"".join(_line(n) for n in range(1, 101)),
    "b_dates.csv": HEADER
    + _line(101, ts="2026-02-30 10:00:00")
    + _line(102, ts="not a date")
    + _line(103),
    "c_huge_line.csv": HEADER + _line(201) + _line(202, value="x" * HUGE) + _line(203),
    "d_empty.csv": b"",
    "e_header_only.csv": HEADER,
    "f_truncated.csv.gz": _truncated_gzip(),
    "g_garbage.dat": random.Random(7).randbytes(50_000),
}


def test_hostile_log_files_reject_or_fail_clearly_and_the_rest_loads(
    ftp_server, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    for name, content in HOSTILE_FILES.items():
        write_file(ftp_server.root, name, content)
    source = make_source("hostile")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)

    assert ids_by_file(pg_conn, source) == {
        "/a_good.csv": list(range(1, 101)),
        "/b_dates.csv": [103],
        "/c_huge_line.csv": [201, 203],
    }
    got = {(path, line): reason for path, line, _, reason in rejects(pg_conn, source)}
    assert set(got) == {("/b_dates.csv", 2), ("/b_dates.csv", 3), ("/c_huge_line.csv", 3)}
    assert all("column 'ts'" in got["/b_dates.csv", n] for n in (2, 3)), got
    assert "column 'value'" in got["/c_huge_line.csv", 3]
    assert report.unbalanced_files == []

    entries = ledger(pg_conn, source)
    for name in ("f_truncated.csv.gz", "g_garbage.dat"):
        entry = entries[f"/{name}"]
        assert entry["status"] == "failed" and entry["error"], entry
        assert (ftp_server.root / name).exists()
    assert "end-of-stream" in entries["/f_truncated.csv.gz"]["error"]
    for name in ("d_empty.csv", "e_header_only.csv"):
        assert entries[f"/{name}"]["status"] in {"loaded", "failed"}, entries[f"/{name}"]
        assert entries[f"/{name}"]["rows_loaded"] == 0

    again = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert again.rows_loaded == 0 and again.rows_rejected == 0  # nothing twice


def test_a_number_out_of_range_is_a_rejected_line(
    ftp_server, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    write_file(ftp_server.root, "range.csv", b"id;value\n1;1.5\n2;1e999\n3;2.5\n")
    source = make_source("range")
    ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert ids_by_file(pg_conn, source) == {"/range.csv": [1, 3]}
    assert [(path, line) for path, line, *_ in rejects(pg_conn, source)] == [("/range.csv", 3)]


class ChangingWhileRead(FTPHandler):
    """On the first download of each file, rewrite it just before serving it."""

    changes: dict[str, bytes] = {}

    def ftp_RETR(self, file: str) -> str | None:
        name = Path(file).name
        if name in ChangingWhileRead.changes:
            Path(file).write_bytes(ChangingWhileRead.changes.pop(name))
        return super().ftp_RETR(file)


def test_file_changing_while_being_read(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = ftp_server_factory(mlsd=True, handler_base=ChangingWhileRead)
    write_file(server.root, "grows.csv", csv_file(1, 1000))
    write_file(server.root, "shrinks.csv", csv_file(2001, 3000))
    ChangingWhileRead.changes = {
        "grows.csv": csv_file(1, 1000) + csv_file(1001, 1500)[len(b"id;value\n") :],
        "shrinks.csv": csv_file(5001, 5010),  # replaced by another, shorter file
    }
    ftp = make_ftp_resource(server)
    source = make_source("changing")
    first = ingest_source(ftp, pg_resource, source)
    assert {f.path: f.status for f in first.files}["/shrinks.csv"] == "unstable"
    assert ids_by_file(pg_conn, source) == {"/grows.csv": list(range(1, 1001))}  # as listed

    ingest_source(ftp, pg_resource, source)
    assert ids_by_file(pg_conn, source) == expected_ids(
        {"grows.csv": (1, 1500), "shrinks.csv": (5001, 5010)}
    )


ODD_NAMES = ["tab\there.csv", "sp ace;semi'q\"uote.csv", "Grüße ☃.csv", "...csv", "a..b.csv"]


def _serve(factory, files: dict[str, tuple[int, int]], handler=FTPHandler):
    """A server holding `files` plus /outside.csv, which lies outside FTP_DIR (/in)."""
    server = factory(mlsd=True, handler_base=handler)
    write_file(server.root, "outside.csv", csv_file(9000, 9009))
    write_csv_files(server.root, files)
    return server, make_ftp_resource(server, delete_after_sync="true", directory="/in")


def test_odd_names_load_exactly_once_and_are_deleted(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    files = {f"in/{name}": (i * 100 + 1, i * 100 + 10) for i, name in enumerate(ODD_NAMES)}
    server, ftp = _serve(ftp_server_factory, files)
    source = make_source("odd")
    ingest_source(ftp, pg_resource, source)
    assert ids_by_file(pg_conn, source) == expected_ids(files)
    assert list((server.root / "in").iterdir()) == []
    assert (server.root / "outside.csv").exists()


def test_a_name_with_a_newline_does_not_block_the_other_files(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    files = {"in/a.csv": (1, 10), "in/new\nline.csv": (11, 20), "in/z.csv": (21, 30)}
    _, ftp = _serve(ftp_server_factory, files)
    source = make_source("newline")
    ingest_source(ftp, pg_resource, source)
    loaded = ids_by_file(pg_conn, source)
    assert loaded["/in/a.csv"] == list(range(1, 11)) and loaded["/in/z.csv"] == list(range(21, 31))


class HostileListing(AbstractedFS):
    """A server whose listing of /in also names `../outside.csv` (a file outside FTP_DIR)."""

    def listdir(self, path: str) -> list[str]:
        names = super().listdir(path)
        return [*names, "../outside.csv"] if path.rstrip("/").endswith("/in") else names


class HostileServer(FTPHandler):
    abstracted_fs = HostileListing


def test_a_hostile_listing_cannot_reach_outside_the_directory(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server, ftp = _serve(ftp_server_factory, {"in/a.csv": (1, 10)}, HostileServer)
    source = make_source("escape")
    ingest_source(ftp, pg_resource, source)
    assert (server.root / "outside.csv").exists(), "a file outside FTP_DIR was deleted"
    assert ids_by_file(pg_conn, source) == expected_ids({"in/a.csv": (1, 10)})
