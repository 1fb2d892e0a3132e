"""Every format loads with the right values and types, against MLSD and LIST-only servers."""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, datetime

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import column_types, ledger, rejects, rows, write_file

EUROPEAN_CSV = (
    "Exported by PressLine 3000\n"  # a preamble line, skipped by configuration
    "Zeit;Maschine;Temperatur;Zähler;Ein\n"
    "28.11.2026 10:00:00;Presse 1;12,5;3;true\n"
    "28.11.2026 10:01:00;Presse 2;-;4;false\n"
    "28.11.2026 10:02:00;Straße;NaN;;yes\n"
).encode("cp1252")


def test_european_csv_cp1252_preamble_decimal_comma(ftp_server, pg_resource, pg_conn, make_source):
    write_file(ftp_server.root, "press/export 1.csv", EUROPEAN_CSV)
    source = make_source("press", skip_lines=1)
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)

    assert (report.files_loaded, report.rows_loaded, report.rows_rejected) == (1, 3, 0)
    assert report.files[0].fast_chunks == 1
    types = column_types(pg_conn, source)
    assert types["Zeit"] == "timestamp with time zone"
    assert types["Temperatur"] == "double precision"
    assert types["Zähler"] == "bigint"
    assert types["Ein"] == "boolean"
    assert types["Maschine"] == "text"
    got = rows(pg_conn, source, '"Zeit", "Maschine", "Temperatur", "Zähler", "Ein", _line_number',
               order="_line_number")  # fmt: skip
    assert got == [
        (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), "Presse 1", 12.5, 3, True, 3),
        (datetime(2026, 11, 28, 10, 1, tzinfo=UTC), "Presse 2", None, 4, False, 4),
        (datetime(2026, 11, 28, 10, 2, tzinfo=UTC), "Straße", None, None, True, 5),
    ]
    assert report.newest_record == datetime(2026, 11, 28, 10, 2, tzinfo=UTC)
    entry = ledger(pg_conn, source)["/press/export 1.csv"]
    assert entry["status"] == "loaded" and entry["offset_bytes"] == len(EUROPEAN_CSV)


def test_utf8_bom_tsv_jsonl_text_regex_and_gzip(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    write_file(ftp_server.root, "a.tsv", "\ufeffid\tname\n1\tÄpfel\n2\tx\\y\n".encode())
    tsv = make_source("tsv", include=("*.tsv",))
    assert ingest_source(ftp, pg_resource, tsv).rows_loaded == 2
    assert rows(pg_conn, tsv, "id, name", "id") == [(1, "Äpfel"), (2, "x\\y")]

    write_file(ftp_server.root, "m.jsonl", b'{"t": 1.5, "ok": true, "tags": ["a"]}\n{"t": 2}\n')
    jsonl = make_source("jsonl", include=("*.jsonl",))
    assert ingest_source(ftp, pg_resource, jsonl).rows_loaded == 2
    assert rows(pg_conn, jsonl, "t, ok, tags", "_line_number") == [
        (1.5, True, '["a"]'),
        (2.0, None, None),
    ]

    text = b"2026-11-28T10:00:00 ERROR spindle stalled\n2026-11-28T10:00:05 INFO resumed\n"
    write_file(ftp_server.root, "robot.log", text)
    regex = make_source(
        "robot",
        include=("*.log",),
        format="text",
        regex=r"^(?P<ts>\S+) (?P<level>\w+) (?P<msg>.*)$",
    )
    assert ingest_source(ftp, pg_resource, regex).rows_loaded == 2
    assert rows(pg_conn, regex, "ts, level, msg", "_line_number")[0] == (
        datetime(2026, 11, 28, 10, 0, tzinfo=UTC), "ERROR", "spindle stalled",
    )  # fmt: skip

    write_file(ftp_server.root, "old.csv.gz", gzip.compress(b"a,b\n1,2\n3,4\n"))
    gz = make_source("gz", include=("*.gz",))
    assert ingest_source(ftp, pg_resource, gz).rows_loaded == 2
    assert rows(pg_conn, gz, "a, b", "a") == [(1, 2), (3, 4)]


def test_bad_lines_go_to_rejects_and_the_rest_loads(ftp_server, pg_resource, pg_conn, make_source):
    good = b"".join(b"%d;%d,5\n" % (i, i) for i in range(10, 40))
    content = b"id;value\n1;1,5\n2;oops\n3\n4;2,5\n\xff\xfe;1\n5;3,0\n" + good
    write_file(ftp_server.root, "bad.csv", content)
    source = make_source("bad", encoding="utf-8")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)

    assert (report.lines_read, report.rows_loaded, report.rows_rejected) == (36, 33, 3)
    assert report.unbalanced_files == []
    assert rows(pg_conn, source, "id, value", "id")[:4] == [
        (1, 1.5),
        (4, 2.5),
        (5, 3.0),
        (10, 10.5),
    ]
    got = rejects(pg_conn, source)
    assert [(p, n, raw) for p, n, raw, _ in got] == [
        ("/bad.csv", 3, "2;oops"),
        ("/bad.csv", 4, "3"),
        ("/bad.csv", 6, "\\xff\\xfe;1"),
    ]
    reasons = [r for *_, r in got]
    assert "not a number" in reasons[0]
    assert "expected 2 fields" in reasons[1]
    assert "undecodable" in reasons[2]


def test_new_columns_evolve_the_table_and_ints_widen(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("evolve")
    write_file(ftp_server.root, "day1.csv", b"ts,value\n2026-01-01 00:00:00,1\n")
    ingest_source(ftp, pg_resource, source)
    write_file(ftp_server.root, "day2.csv", b"ts,value,extra\n2026-01-02 00:00:00,2.5,x\n")
    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 1 and report.rows_rejected == 0
    assert column_types(pg_conn, source)["value"] == "double precision"
    assert rows(pg_conn, source, "value, extra, _source_file", "ts") == [
        (1.0, None, "/day1.csv"),
        (2.5, "x", "/day2.csv"),
    ]


def test_awkward_names_and_a_file_that_cannot_be_parsed(
    ftp_server, pg_resource, pg_conn, make_source
):
    names = ["with space.csv", 'quote\'s "q".csv', "semi;colon.csv", "Grüße.csv", "..dots..csv"]
    for index, name in enumerate(names):
        write_file(ftp_server.root, f"sub dir/{name}", f"n\n{index}\n".encode())
    write_file(ftp_server.root, "sub dir/binary.csv", b"\x00\x01\x02\x03")
    source = make_source("names")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)

    assert report.files_seen == 6 and report.files_failed == 1
    loaded = dict(rows(pg_conn, source, "_source_file, n"))
    assert loaded == {f"/sub dir/{name}": i for i, name in enumerate(names)}
    entry = ledger(pg_conn, source)["/sub dir/binary.csv"]
    assert entry["status"] == "failed" and "binary" in entry["error"]
    # unchanged failed file: not retried, not reloaded
    again = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert again.rows_loaded == 0 and again.files_failed == 0


def test_latin1_server_with_non_ascii_names(ftp_server_factory, pg_resource, pg_conn, make_source):
    from sync_assets.devtools.ftp_server import ListOnlyFTPHandler

    class Latin1Handler(ListOnlyFTPHandler):
        encoding = "latin-1"

    server = ftp_server_factory(mlsd=False, handler_base=Latin1Handler)
    write_file(server.root, "Müller Übersicht.csv", "a;b\n1;ä\n".encode("latin-1"))
    source = make_source("latin")
    report = ingest_source(make_ftp_resource(server, encoding="latin-1"), pg_resource, source)
    assert report.rows_loaded == 1
    assert rows(pg_conn, source, "_source_file, a, b") == [("/Müller Übersicht.csv", 1, "ä")]


def test_fast_and_line_by_line_paths_give_the_same_rows(
    ftp_server, pg_resource, pg_conn, make_source
):
    """Clean chunks are COPYed by PostgreSQL, a chunk with a bad value line by line: same
    values, line numbers and provenance, the bad line alone rejected (CRLF file, chunks of 3)."""
    lines = [f"28.11.2026 10:0{i}:00;M {i};{i},5;{i};yes" for i in range(8)]
    lines[5] = "28.11.2026 10:05:00;M 5;not a number;5;yes"
    lines[6] = "28.11.2026 10:06:00;-;NaN;;no"
    content = ("t;m;v;n;b\r\n" + "\r\n".join(lines) + "\r\n").encode()
    write_file(ftp_server.root, "crlf.csv", content)
    source = make_source("paths", chunk_lines=3)
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert (report.rows_loaded, report.rows_rejected, report.unbalanced_files) == (7, 1, [])
    assert report.files[0].fast_chunks == 2  # lines 1-3 and 7-8; the chunk 4-6 line by line
    got = rows(pg_conn, source, "_line_number, t, m, v, n, b, _file_version", "_line_number")
    expected = [
        (i + 2, datetime(2026, 11, 28, 10, i, tzinfo=UTC), f"M {i}", i + 0.5, i, True, 1)
        for i in range(8)
        if i != 5
    ]
    expected[5] = (8, datetime(2026, 11, 28, 10, 6, tzinfo=UTC), None, None, None, False, 1)
    assert got == expected
    assert [(n, raw) for _, n, raw, _ in rejects(pg_conn, source)] == [(7, lines[5])]
    # The per-file provenance (column defaults on the fast path, explicit values line by
    # line) is the same on every row.
    provenance = rows(pg_conn, source, "DISTINCT _source_file, _file_version, _file_mtime, _run_id")
    mtime = datetime.fromtimestamp(int((ftp_server.root / "crlf.csv").stat().st_mtime), UTC)
    assert provenance == [("/crlf.csv", 1, mtime, report.run_id)]


def test_a_chunk_postgresql_refuses_keeps_the_provenance_of_the_chunks_after_it(
    ftp_server, pg_resource, pg_conn, make_source
):
    """The provenance settings are made once per file, before its first COPY: the first chunk
    COPY refuses (a value only PostgreSQL rejects, rolled back to its savepoint) must not take
    them along, or the next chunks' NOT NULL defaults would fail. Each file has its own, and
    the run leaves no thread behind."""
    bad = "2026-01-01 10:00:00;1e999;1"  # passes the byte checks, refused by PostgreSQL
    good = [f"2026-01-01 10:0{i}:00;{i}.5;{i}" for i in range(2, 7)]
    write_file(ftp_server.root, "a.csv", ("t;v;n\n" + "\n".join([bad, *good]) + "\n").encode())
    write_file(ftp_server.root, "b.csv", b"t;v;n\n2026-01-01 11:00:00;7.5;7\n")
    source = make_source("refused", chunk_lines=2, parallel_files=1)
    threads = threading.active_count()
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert threading.active_count() == threads
    outcomes = {f.path: f for f in report.files}
    assert (outcomes["/a.csv"].status, outcomes["/a.csv"].fast_chunks) == ("loaded", 2)
    assert (report.rows_loaded, report.rows_rejected) == (6, 1)
    assert [n for _, n, _, _ in rejects(pg_conn, source)] == [2]
    got = rows(pg_conn, source, "_source_file, _line_number, v, n, _file_version, _run_id", "n")
    assert got == [("/a.csv", i + 1, i + 0.5, i, 1, report.run_id) for i in range(2, 7)] + [
        ("/b.csv", 2, 7.5, 7, 1, report.run_id)
    ]


def test_number_out_of_range_is_a_rejected_line(ftp_server, pg_resource, pg_conn, make_source):
    write_file(ftp_server.root, "range.csv", b"id;value\n1;1.5\n2;1e999\n3;2.5\n4;1e-400\n")
    source = make_source("range")
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)
    assert (report.rows_loaded, report.rows_rejected, report.files_failed) == (2, 2, 0)
    assert rows(pg_conn, source, "id, value", "id") == [(1, 1.5), (3, 2.5)]
    assert [n for _, n, _, _ in rejects(pg_conn, source)] == [3, 5]


def test_chunks_read_ahead_follow_a_widening_and_a_broken_gzip_fails_whole(
    ftp_server, pg_resource, pg_conn, make_source
):
    """The next chunk is read and prepared while the current one's COPY runs: a column widened
    meanwhile (bigint → double) makes the prepared data stale, and it is recomputed; a gzip
    broken after some chunks fails the whole file, with no row of it committed."""
    lines = [f"{i},m{i}" for i in range(1, 11)]
    lines[4] = "5.5,m5"  # chunk 3 of 5 (chunks of 2): widens `a` to double precision
    write_file(ftp_server.root, "widen.csv", ("a,b\n" + "\n".join(lines) + "\n").encode())
    body = "a,b\n" + "".join(f"{i},x{i}\n" for i in range(5000))
    broken = gzip.compress(body.encode(), compresslevel=1)
    write_file(ftp_server.root, "broken.csv.gz", broken[: len(broken) * 2 // 3])
    source = make_source("ahead", chunk_lines=2)
    report = ingest_source(make_ftp_resource(ftp_server), pg_resource, source)

    outcomes = {f.path: f for f in report.files}
    assert outcomes["/broken.csv.gz"].status == "failed"
    assert outcomes["/widen.csv"].status == "loaded" and outcomes["/widen.csv"].fast_chunks >= 3
    assert column_types(pg_conn, source)["a"] == "double precision"
    got = rows(pg_conn, source, "_source_file, _line_number, a, b", "_line_number")
    assert got == [("/widen.csv", n + 2, float(v), b) for n, (v, b) in
                   enumerate(line.split(",") for line in lines)]  # fmt: skip
    assert ledger(pg_conn, source)["/broken.csv.gz"]["status"] == "failed"
