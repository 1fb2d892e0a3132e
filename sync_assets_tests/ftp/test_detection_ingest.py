"""Detection through a real FTP server and PostgreSQL: a column whose values start after a
long empty stretch, a source with a thousands separator, and the warning for a text column
that a file's values would have made numeric (log, report, materialisation metadata)."""

from __future__ import annotations

import gzip
import logging

import dagster as dg

from sync_assets.ftp.definitions import build_log_asset, build_source_spec
from sync_assets.ftp.formats import SAMPLE_BYTES
from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import column_types, rejects, rows, write_file
from sync_assets_tests.ftp.test_detection_values import night_then_day

DOUBLE = "double precision"


def _energy(i: int) -> float:
    return float(f"{100 + i % 50}.{i % 10}")  # what night_then_day writes as 1xx,y


def test_late_valued_decimal_comma_column_lands_numeric_and_exact(
    ftp_server_factory, pg_resource, pg_conn, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    night = night_then_day(empty=3000, valued=500, gap="-")
    assert night.index(b"Presse 1;1") > SAMPLE_BYTES  # no value in the sampled head
    write_file(server.root, "press/2026-11-27.csv", night)
    source = make_source("late")
    ftp = make_ftp_resource(server)
    report = ingest_source(ftp, pg_resource, source)

    assert (report.rows_loaded, report.rows_rejected, report.type_warnings) == (3500, 0, [])
    assert report.files[0].fast_chunks == 1  # the fast path still takes the file
    types = column_types(pg_conn, source)
    assert types["Energie"] == DOUBLE and types["Zähler"] == "bigint"
    assert types["Zeit"] == "timestamp with time zone" and types["Maschine"] == "text"
    got = rows(pg_conn, source, '"Zähler", "Energie"', '"Zähler"')
    assert got == [(i, None if i < 3000 else _energy(i)) for i in range(3500)]

    # The next file of the source appends numbers, not text (and its night is NULL).
    write_file(server.root, "press/2026-11-28.csv", night_then_day(empty=10, valued=90))
    again = ingest_source(ftp, pg_resource, source)
    assert (again.rows_loaded, again.rows_rejected, again.type_warnings) == (100, 0, [])
    total = rows(pg_conn, source, 'count(*), count("Energie"), sum("Energie")')
    expected = sum(_energy(i) for i in range(3000, 3500)) + sum(_energy(i) for i in range(10, 100))
    assert total[0][:2] == (3600, 590) and abs(total[0][2] - expected) < 1e-6

    # Gzipped, the look-ahead reads on through the decompressed stream: with the decimal
    # taken as "." every one of its values would be a reject in the double column.
    write_file(server.root, "press/2026-11-29.csv.gz", gzip.compress(night))
    zipped = ingest_source(ftp, pg_resource, source)
    assert (zipped.rows_loaded, zipped.rows_rejected) == (3500, 0)
    last = rows(pg_conn, source, '"Energie"', '_source_file DESC, "Zähler" DESC LIMIT 1')
    assert last == [(_energy(3499),)]


def test_thousands_separated_source_loads_exact_values(
    ftp_server_factory, pg_resource, pg_conn, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    lines = [
        "28.11.2026 10:00:00;1.234.567;1.234,5",
        "28.11.2026 10:01:00;1.234.568;-12.345.678,25",
        "28.11.2026 10:02:00;999;0,75",
        "28.11.2026 10:03:00;1.000;1.5",  # 1.5 is no grouping by three: a reject
        "28.11.2026 10:04:00;-;7",
        *(f"28.11.2026 11:{i:02}:00;{i}.000;{i}.{i:03},{i}" for i in range(1, 21)),
    ]
    write_file(
        server.root, "counts.csv", ("Zeit;Zähler;Menge\n" + "\n".join(lines) + "\n").encode()
    )
    ftp = make_ftp_resource(server)
    source = make_source("thousands", thousands=".", delimiter=";")
    report = ingest_source(ftp, pg_resource, source)

    assert (report.rows_loaded, report.rows_rejected, report.files[0].fast_chunks) == (24, 1, 0)
    types = column_types(pg_conn, source)
    assert (types["Zähler"], types["Menge"]) == ("bigint", DOUBLE)
    got = rows(pg_conn, source, '_line_number, "Zähler", "Menge"', "_line_number")
    assert got[:4] == [
        (2, 1234567, 1234.5),
        (3, 1234568, -12345678.25),
        (4, 999, 0.75),
        (6, None, 7.0),
    ]
    assert got[4:] == [(i + 6, i * 1000, float(f"{i * 1000 + i}.{i}")) for i in range(1, 21)]
    [(_, line, raw, reason)] = rejects(pg_conn, source)
    assert (line, raw) == (5, lines[3])
    assert "misplaced thousands separator" in reason

    # Never guessed: without the option the same file's grouped numbers are text.
    plain = make_source("no_thousands", delimiter=";")
    ingest_source(ftp, pg_resource, plain)
    assert column_types(pg_conn, plain)["Menge"] == "text"


def test_text_column_with_numeric_values_is_reported(
    ftp_server_factory, pg_resource, pg_conn, make_source, caplog
) -> None:
    """A column created as text (here: empty throughout its first file, so no value said
    otherwise) stays text; a later file whose values are numbers says so in the log, the
    report and the materialisation's metadata instead of appending silently."""
    server = ftp_server_factory(mlsd=True)
    ftp = make_ftp_resource(server)
    source = make_source("text_col")
    write_file(server.root, "a_night.csv", night_then_day(empty=200, valued=0))
    first = ingest_source(ftp, pg_resource, source)
    assert first.type_warnings == [] and column_types(pg_conn, source)["Energie"] == "text"

    write_file(server.root, "b_day.csv", night_then_day(empty=0, valued=30))
    with caplog.at_level(logging.WARNING, logger="detection_test"):
        second = ingest_source(ftp, pg_resource, source, log=logging.getLogger("detection_test"))
    assert second.rows_loaded == 30
    assert second.type_warnings == [
        {
            "column": "Energie",
            "table_type": "text",
            "would_be": DOUBLE,
            "files": 1,
            "first_file": "/b_day.csv",
        }
    ]
    assert any(
        "column 'Energie' is text in the table" in r.message and DOUBLE in r.message
        for r in caplog.records
    )
    loaded = rows(pg_conn, source, '"Energie"', "_source_file, _line_number")
    assert loaded[200:203] == [("100,0",), ("101,1",), ("102,2",)]  # as text, as written

    write_file(server.root, "c_day.csv", night_then_day(empty=0, valued=5))
    write_file(server.root, "d_day.csv", night_then_day(empty=0, valued=5))
    result = dg.materialize(
        [build_source_spec(source), build_log_asset(source)],
        resources={"postgres": pg_resource, "ftp": ftp},
    )
    assert result.success
    meta = result.asset_materializations_for_node(f"logs__{source.name}")[0].metadata
    assert meta["text_columns_with_numeric_values"].value == [
        {
            "column": "Energie",
            "table_type": "text",
            "would_be": DOUBLE,
            "files": 2,
            "first_file": "/c_day.csv",
        }
    ]
