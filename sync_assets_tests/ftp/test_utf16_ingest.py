"""UTF-16 files as Windows machines write them, through a real FTP server into PostgreSQL:
LE with BOM, BE with BOM, configured without BOM, gzip, and a growing file appended between
runs (resumed at a byte offset of the UTF-16 file: each line once)."""

from __future__ import annotations

import codecs
import gzip
import json
from datetime import UTC, datetime

import pytest

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rejects, rows, set_age, write_file

HEADER = "Zeit;Maschine;Temperatur;Zähler\r\n"
LINES = [
    "28.11.2026 10:00:00;Presse Süd 😀;12,5;3\r\n",
    '28.11.2026 10:01:00;"Straße; Halle ""2""";-1,25;4\r\n',
    "28.11.2026 10:02:00;€uro;NaN;\r\n",
]
EXPECTED = [
    (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), "Presse Süd 😀", 12.5, 3, 2),
    (datetime(2026, 11, 28, 10, 1, tzinfo=UTC), 'Straße; Halle "2"', -1.25, 4, 3),
    (datetime(2026, 11, 28, 10, 2, tzinfo=UTC), "€uro", None, None, 4),
]
COLUMNS = '"Zeit", "Maschine", "Temperatur", "Zähler", _line_number'
BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_loads_value_exact(
    ftp_server, pg_resource, pg_conn, make_source, encoding
) -> None:
    body = BOMS[encoding] + (HEADER + "".join(LINES)).encode(encoding)
    write_file(ftp_server.root, "press.csv", body)
    source = make_source("u16")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert (report.files_loaded, report.rows_loaded, report.rows_rejected) == (1, 3, 0)
    assert rows(pg_conn, source, COLUMNS, "_line_number") == EXPECTED
    entry = ledger(pg_conn, source)["/press.csv"]
    assert entry["offset_bytes"] == len(body) and entry["status"] == "loaded"
    assert json.loads(entry["format"])["encoding"] == encoding  # the file's, not UTF-8's


def test_configured_utf16_without_bom_and_gzip(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    write_file(ftp_server.root, "be/a.csv", (HEADER + "".join(LINES)).encode("utf-16-be"))
    be = make_source("be", directory="/be", encoding="utf-16be")
    assert ingest_source(ftp, pg_resource, be).rows_loaded == 3
    assert rows(pg_conn, be, COLUMNS, "_line_number") == EXPECTED

    plain = BOMS["utf-16-le"] + (HEADER + "".join(LINES)).encode("utf-16-le")
    write_file(ftp_server.root, "gz/a.csv.gz", gzip.compress(plain))
    gz = make_source("gz", directory="/gz")
    report = ingest_source(ftp, pg_resource, gz)
    assert (report.rows_loaded, report.rows_rejected) == (3, 0)
    assert rows(pg_conn, gz, COLUMNS, "_line_number") == EXPECTED


def test_a_growing_utf16_file_loads_each_line_once(
    ftp_server, pg_resource, pg_conn, make_source
) -> None:
    ftp = make_ftp_resource(ftp_server)
    source = make_source("grow", final_line_seconds=1e9)
    encoding = "utf-16-le"
    first = BOMS[encoding] + (HEADER + LINES[0]).encode(encoding)
    # The writer is in the middle of line 3, and of a code unit of it.
    partial = LINES[1].encode(encoding) + LINES[2].encode(encoding)[:7]
    path = write_file(ftp_server.root, "grow.csv", first + partial)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 2
    offset = ledger(pg_conn, source)["/grow.csv"]["offset_bytes"]
    assert offset == len(first) + len(LINES[1].encode(encoding))

    with path.open("ab") as handle:
        handle.write(
            LINES[2].encode(encoding)[7:] + "28.11.2026 10:03:00;x;1;5\r\n".encode(encoding)
        )
    set_age(path, 3000)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 2 and report.files[0].resumed_from == offset
    got = rows(pg_conn, source, COLUMNS, "_line_number")
    assert got[:3] == EXPECTED
    assert got[3][1:] == ("x", 1.0, 5, 5)
    assert rejects(pg_conn, source) == []
    assert ledger(pg_conn, source)["/grow.csv"]["offset_bytes"] == path.stat().st_size
