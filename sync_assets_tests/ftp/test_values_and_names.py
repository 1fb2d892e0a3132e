"""Values and column names arrive unaltered, and a value PostgreSQL refuses is one reject.

19-digit integers, JSON keys or header names equal in their first 63 bytes, values the fast
path and the line path must read alike. Real pyftpdlib server (MLSD) and the real PostgreSQL,
through `ingest_source`.
"""

from __future__ import annotations

import json

import pytest

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import (
    column_types,
    ledger,
    rejects,
    rows,
    write_file,
)


@pytest.fixture
def server(ftp_server_factory):
    return ftp_server_factory(mlsd=True)


def _run(server, pg_resource, source, log=None):
    return ingest_source(make_ftp_resource(server), pg_resource, source, log=log)


def test_nineteen_digit_integers_stay_exact_bigints(server, pg_resource, pg_conn, make_source):
    write_file(server.root, "ns.csv", b"ts_ns,v\n1764345600123456789,5\n1764345600123456790,6\n")
    source = make_source("ns")
    _run(server, pg_resource, source)
    assert column_types(pg_conn, source)["ts_ns"] == "bigint"
    assert rows(pg_conn, source, "ts_ns", "_line_number") == [
        (1764345600123456789,),
        (1764345600123456790,),
    ]


def test_jsonl_keys_equal_in_their_first_63_bytes_keep_both_values(
    server, pg_resource, pg_conn, make_source
):
    front = "plant.hall3.line2.machine7.spindle.controller.temperature.sensor.front"
    rear = "plant.hall3.line2.machine7.spindle.controller.temperature.sensor.rear"
    line = json.dumps({"ts": "2026-01-01T00:00:00", front: 40.5, rear: 55.25})
    write_file(server.root, "keys.jsonl", line.encode() + b"\n")
    source = make_source("keys")
    _run(server, pg_resource, source)
    data_columns = [c for c in column_types(pg_conn, source) if not c.startswith("_") and c != "ts"]
    assert len(data_columns) == 2
    values = rows(pg_conn, source, ", ".join(f'"{c}"' for c in sorted(data_columns)))
    assert sorted(values[0]) == [40.5, 55.25]


def test_duplicate_multibyte_header_names_fail_one_file_not_the_source(
    server, pg_resource, pg_conn, make_source
):
    name = "温度传感器" * 5  # 75 bytes: trimmed, then made unique within 63 bytes
    write_file(server.root, "a.csv", f"ts,{name},{name}\n2026-01-01 00:00:00,1,2\n".encode())
    write_file(server.root, "b.csv", b"ts,v\n2026-01-01 00:00:00,1\n")
    source = make_source("multibyte")
    _run(server, pg_resource, source)
    entries = ledger(pg_conn, source)
    assert entries["/b.csv"]["status"] == "loaded"
    assert entries["/a.csv"]["status"] == "loaded"  # both columns fit once trimmed by bytes
    assert len([c for c in column_types(pg_conn, source) if c.startswith("温")]) == 2


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (b"2026-01-01 00:00:01,bad\x00byte\n", "NUL"),
        (b"2026-01-01 00:00:01+18:00,tz\n", ""),
    ],
)
def test_a_value_postgres_refuses_rejects_one_line_not_the_file(
    server, pg_resource, pg_conn, make_source, bad_line, reason
):
    good = b"".join(b"2026-01-01 00:00:%02d,line%d\n" % (i % 60, i) for i in range(300))
    write_file(server.root, "x.csv", b"ts,msg\n" + good + bad_line + b"2026-01-01 00:00:02,ok\n")
    source = make_source("refused")
    _run(server, pg_resource, source)
    assert ledger(pg_conn, source)["/x.csv"]["status"] == "loaded"
    assert len(rows(pg_conn, source, "msg")) == 301
    [(path, line_number, _raw, why)] = rejects(pg_conn, source)
    assert (path, line_number) == ("/x.csv", 302)
    assert reason in why


def test_fast_and_line_paths_agree_on_booleans_and_empty_fields(
    server, pg_resource, pg_conn, make_source
):
    source = make_source("paths", null_values=("NaN",))
    write_file(server.root, "a.csv", b"ts,ok,msg\n2026-01-01 00:00:00,true,x\n")
    _run(server, pg_resource, source)
    write_file(server.root, "b.csv", b"ts,ok,msg\n2026-01-01 00:00:02,1,\n")  # clean chunk
    write_file(server.root, "c.csv", b'ts,ok,msg\n"2026-01-01 00:00:04",1,\n')  # quoted chunk
    _run(server, pg_resource, source)
    got = rows(pg_conn, source, "_source_file, ok, msg", "_source_file")
    assert got == [("/a.csv", True, "x"), ("/b.csv", True, ""), ("/c.csv", True, "")]
