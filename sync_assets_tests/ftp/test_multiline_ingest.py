"""CSV as Windows tools write it (RFC 4180), through a real FTP server into PostgreSQL:
quoted delimiters, doubled quotes and line breaks make one row numbered by its first line;
a quote never closed is one reject and the records after it load; a record still open at
the end of a growing file waits for the next run."""

from __future__ import annotations

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rejects, rows, set_age, write_file

EXPORT = (
    b"id;note;value\r\n"
    b'1;"first line\r\nsecond line";1,5\r\n'
    b'2;"semi;colon and ""quotes""";2,5\r\n'
    b'3;"three\nLF\nlines";3,5\r\n'
    b"4;plain;4,5\r\n"
)


def test_multiline_quoted_fields_load_one_row_per_record(
    ftp_server, pg_resource, pg_conn, make_source
) -> None:
    write_file(ftp_server.root, "notes.csv", EXPORT)
    source = make_source("notes")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert (report.rows_loaded, report.rows_rejected, report.files[0].lines_read) == (4, 0, 4)
    assert rows(pg_conn, source, "id, note, value, _line_number", "id") == [
        (1, "first line\r\nsecond line", 1.5, 2),
        (2, 'semi;colon and "quotes"', 2.5, 4),
        (3, "three\nLF\nlines", 3.5, 5),
        (4, "plain", 4.5, 8),
    ]
    assert ledger(pg_conn, source)["/notes.csv"]["offset_bytes"] == len(EXPORT)


def test_a_bad_quote_is_one_reject_and_the_following_records_load(
    ftp_server, pg_resource, pg_conn, make_source
) -> None:
    body = (
        b"id;note;value\n"
        b'1;"never closed;1\n'
        b"2;ok;2\n"
        b'3;"a ""quoted"" word";3\n'
        b'4;"two\nlines";4\n'
        b"5;end;5\n"
    )
    write_file(ftp_server.root, "bad.csv", body)
    source = make_source("bad")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert (report.rows_loaded, report.rows_rejected) == (4, 1)
    assert rows(pg_conn, source, "id, note, _line_number", "id") == [
        (2, "ok", 3),
        (3, 'a "quoted" word', 4),
        (4, "two\nlines", 5),
        (5, "end", 7),
    ]
    [(path, line, raw, reason)] = rejects(pg_conn, source)
    assert (path, line, raw) == ("/bad.csv", 2, '1;"never closed;1')
    assert "quoting" in reason


def test_a_record_open_at_the_end_of_a_growing_file_waits_for_the_next_run(
    ftp_server, pg_resource, pg_conn, make_source
) -> None:
    ftp = make_ftp_resource(ftp_server)
    source = make_source("grow", final_line_seconds=1e9)
    head = b"id;note\r\n1;one\r\n"
    path = write_file(ftp_server.root, "grow.csv", head + b'2;"being\r\nwritten')
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 1
    assert ledger(pg_conn, source)["/grow.csv"]["offset_bytes"] == len(head)

    with path.open("ab") as handle:
        handle.write(b' still"\r\n3;three\r\n')
    set_age(path, 3000)
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 2 and report.files[0].resumed_from == len(head)
    assert rows(pg_conn, source, "id, note, _line_number", "id") == [
        (1, "one", 2),
        (2, "being\r\nwritten still", 3),
        (3, "three", 5),
    ]
    assert rejects(pg_conn, source) == []
