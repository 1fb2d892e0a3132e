"""Regressions found in review: each once lost, doubled or altered lines, or stalled a source.

Real pyftpdlib server (MLSD) and the real PostgreSQL, through `ingest_source`.
"""

from __future__ import annotations

import gzip
import json
import logging
import resource
import signal

import pytest

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import (
    column_types,
    ledger,
    rejects,
    rows,
    set_age,
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


def test_preamble_seen_in_part_is_read_again_once_complete(
    server, pg_resource, pg_conn, make_source
):
    source = make_source("preamble", skip_lines=2)
    write_file(server.root, "p.csv", b"# machine M1 export\n")
    _run(server, pg_resource, source)
    assert ledger(pg_conn, source)["/p.csv"]["offset_bytes"] == 0  # nothing consumed yet

    body = b"# machine M1 export\n# firmware 1.2\nts,temp\n2026-01-01 00:00:00,21\n"
    write_file(server.root, "p.csv", body, age_seconds=1800)
    _run(server, pg_resource, source)
    assert rows(pg_conn, source, "temp") == [(21,)]
    assert rejects(pg_conn, source) == []


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


class _FreeDiskOnRetry(logging.Logger):
    """Lifts the file-size limit when the engine logs its first retry warning."""

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        super().warning(msg, *args, **kwargs)


def test_a_local_write_error_mid_download_never_doubles_bytes(
    server, pg_resource, pg_conn, make_source
):
    lines = 20_000
    body = b"ts,v\n" + b"".join(b"2026-01-01 00:00:00,%d\n" % i for i in range(lines))
    write_file(server.root, "big.csv", body)
    source = make_source("disk")
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_003, hard))
    try:
        _run(server, pg_resource, source, log=_FreeDiskOnRetry("disk-full"))
    except Exception:
        pass
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    _run(server, pg_resource, source)
    assert pg_conn.execute(
        f'SELECT count(*), count(DISTINCT v) FROM "{source.schema}"."{source.table_name}"'
    ).fetchone() == (lines, lines)
    assert rejects(pg_conn, source) == []


def test_a_touched_gzip_file_is_not_loaded_twice(server, pg_resource, pg_conn, make_source):
    body = b"ts,v\n" + b"".join(b"2026-01-01 00:00:00,%d\n" % i for i in range(50))
    path = write_file(server.root, "day.csv.gz", gzip.compress(body, mtime=0))
    source = make_source("touched")
    _run(server, pg_resource, source)
    set_age(path, 60)  # same bytes, new mtime (a re-upload of the same file)
    report = _run(server, pg_resource, source)
    assert report.files[0].status == "unchanged"
    assert rows(pg_conn, source, "count(*), count(DISTINCT v)") == [(50, 50)]

    write_file(server.root, "day.csv.gz", gzip.compress(body + b"2026-01-01 00:00:01,50\n"))
    _run(server, pg_resource, source)  # really new bytes: a new version, loaded and reported
    assert ledger(pg_conn, source)["/day.csv.gz"]["version"] == 2
