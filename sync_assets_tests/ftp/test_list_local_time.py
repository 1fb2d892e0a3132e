"""LIST-only servers that list their local time: unchanged files cost one LIST per directory.

The server is a real pyftpdlib in its own process with TZ=Asia/Kathmandu (UTC+05:45, no
daylight saving): LIST prints local times to the minute, MDTM prints UTC (as IIS does). The
server itself logs every command it receives; the counts below are read from that log.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ftplib import FTP
from pathlib import Path

import pytest

from sync_assets.ftp.ingest import ingest_source
from sync_assets.ftp.listtime import detect_offset, parse_offset
from sync_assets.resources import FTPResource
from sync_assets_tests.ftp.conftest import ledger

ZONE = "Asia/Kathmandu"
PER_FILE = {"SIZE", "MDTM", "RETR", "MLST", "STAT", "REST"}


@dataclass
class LocalTimeServer:
    root: Path
    log: Path
    port: int

    def resource(self, **overrides: str) -> FTPResource:
        values = {"host": "127.0.0.1", "port": str(self.port), "user": "machine"}
        values |= {"password": "ftp-secret", "directory": "/", **overrides}
        return FTPResource(**values)

    def commands(self) -> Counter[str]:
        """The commands received since the last call."""
        text = self.log.read_text(encoding="ascii")
        self.log.write_text("", encoding="ascii")
        return Counter(text.split())


@pytest.fixture
def local_time_server(tmp_path: Path) -> Iterator[LocalTimeServer]:
    root, log = tmp_path / "served", tmp_path / "commands.log"
    root.mkdir()
    log.write_text("", encoding="ascii")
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_assets.devtools.ftp_server_process", str(root), str(log)],
        env={**os.environ, "TZ": ZONE},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # pyftpdlib's own log of every session
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield LocalTimeServer(root, log, port)
    finally:
        process.kill()  # a throwaway server: nothing to shut down gracefully
        process.wait(timeout=10)


def _write_files(directory: Path, count: int, age_seconds: float, prefix: str = "m") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.time() - age_seconds
    for i in range(count):
        path = directory / f"{prefix}{i:05d}.csv"
        path.write_bytes(f"machine;value\n{i};{i},5\n".encode())
        os.utime(path, (stamp, stamp))


def test_server_lists_local_time(local_time_server: LocalTimeServer) -> None:
    """The premise: the listing is 5:45 ahead of MDTM for the same file."""
    _write_files(local_time_server.root, 1, age_seconds=7200)
    with FTP() as ftp:  # a raw look at what the server says
        ftp.connect("127.0.0.1", local_time_server.port)
        ftp.login("machine", "ftp-secret")
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        mdtm = ftp.sendcmd("MDTM m00000.csv")[4:]
    listed = lines[0].split()[7]  # HH:MM
    utc = f"{mdtm[8:10]}:{mdtm[10:12]}"
    minutes = (int(listed[:2]) * 60 + int(listed[3:])) - (int(utc[:2]) * 60 + int(utc[3:]))
    assert minutes % (24 * 60) == 5 * 60 + 45


def _seed_ledger(pg_conn, source, server: LocalTimeServer) -> None:
    """The ledger as runs before listed times existed left it for every file (loading
    10,000 files for real takes minutes here): size, precise UTC mtime, the hash of the
    whole (small) file as head, fully consumed. The format comes from a file loaded for real."""
    model = ledger(pg_conn, source)["/seed00000.csv"]
    paths, sizes, stamps, hashes = [], [], [], []
    for path in sorted(server.root.rglob("m*.csv")):
        stat = path.stat()
        paths.append("/" + path.relative_to(server.root).as_posix())
        sizes.append(stat.st_size)
        stamps.append(datetime.fromtimestamp(int(stat.st_mtime), UTC))
        hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
    pg_conn.execute(
        "INSERT INTO sync_meta.ftp_ledger (source, path, version, size, mtime, head_hash,"
        " head_len, offset_bytes, lines_consumed, rows_loaded, rows_rejected, status, format)"
        " SELECT %s, p, 1, s, m, h, s, s, 2, 1, 0, 'loaded', %s FROM unnest(%s::text[],"
        " %s::bigint[], %s::timestamptz[], %s::text[]) AS u(p, s, m, h)",
        (source.name, model["format"], paths, sizes, stamps, hashes),
    )


@pytest.mark.slow
def test_ten_thousand_unchanged_files_cost_one_list_per_directory(
    local_time_server: LocalTimeServer, pg_resource, pg_conn, make_source
) -> None:
    server = local_time_server
    _write_files(server.root, 1, age_seconds=7200, prefix="seed")
    ftp = server.resource()
    source = make_source("localtime")
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 1
    _write_files(server.root, 5000, age_seconds=7200)
    _write_files(server.root / "line2", 5000, age_seconds=7200)
    _seed_ledger(pg_conn, source, server)
    server.commands()

    # Without listed times in the ledger: one MDTM finds the offset, none per file.
    report = ingest_source(ftp, pg_resource, source)
    commands = server.commands()
    assert report.files_seen == 10_001 and report.rows_loaded == 0
    assert commands["LIST"] == 2 and commands["MDTM"] == 1, commands
    assert not {"SIZE", "RETR", "MLST"} & set(commands), commands

    # With them (kept by that run): the listing alone.
    started = time.monotonic()
    report = ingest_source(ftp, pg_resource, source)
    elapsed = time.monotonic() - started
    commands = server.commands()
    assert report.files_seen == 10_001 and report.rows_loaded == 0
    assert {f.status for f in report.files} <= {"unchanged"}
    assert commands["LIST"] == 2  # the root and line2/
    assert not PER_FILE & set(commands), commands
    assert sum(commands.values()) < 30, commands  # login, TYPE, CWD, PASV, LIST, QUIT
    print(f"10,000 unchanged files: {elapsed:.2f} s, commands {dict(commands)}")

    # One file grows: only it costs per-file commands (the looks, the head check, the tail).
    with (server.root / "line2" / "m00007.csv").open("ab") as handle:
        handle.write(b"7;8,5\n")
    stamp = time.time() - 600
    os.utime(server.root / "line2" / "m00007.csv", (stamp, stamp))
    report = ingest_source(ftp, pg_resource, source)
    commands = server.commands()
    assert report.rows_loaded == 1
    assert commands["RETR"] <= 2 and commands["SIZE"] <= 2, commands
    assert commands["MDTM"] <= 3, commands  # the looks, and at most one offset probe


def test_offset_is_detected_once_or_configured(
    local_time_server: LocalTimeServer, pg_resource, pg_conn, make_source, caplog
) -> None:
    """A ledger without listed times (written before them): the offset makes the listing
    comparable to the ledger's UTC times. Detected with one MDTM, or configured."""
    server = local_time_server
    _write_files(server.root, 50, age_seconds=7200)
    source = make_source("offset")
    assert ingest_source(server.resource(), pg_resource, source).rows_loaded == 50

    def forget_listed_times() -> None:
        pg_conn.execute(
            "UPDATE sync_meta.ftp_ledger SET listed_mtime = NULL WHERE source = %s",
            (source.name,),
        )
        server.commands()

    forget_listed_times()
    with caplog.at_level("INFO"):
        report = ingest_source(server.resource(), pg_resource, source)
    commands = server.commands()
    assert report.rows_loaded == 0 and {f.status for f in report.files} <= {"unchanged"}
    assert commands["MDTM"] == 1 and not {"SIZE", "RETR"} & set(commands), commands
    assert "UTC+05:45" in caplog.text
    assert all(e["listed_mtime"] is not None for e in ledger(pg_conn, source).values())
    ingest_source(server.resource(), pg_resource, source)
    assert not PER_FILE & set(server.commands())

    forget_listed_times()
    ingest_source(server.resource(list_time_offset="+05:45"), pg_resource, source)
    assert not PER_FILE & set(server.commands())

    # A wrong offset costs per-file looks, never a reload; the listed times are kept then.
    forget_listed_times()
    report = ingest_source(server.resource(list_time_offset="-03:00"), pg_resource, source)
    commands = server.commands()
    assert report.rows_loaded == 0 and commands["MDTM"] == 50 and commands["RETR"] == 0
    ingest_source(server.resource(list_time_offset="-03:00"), pg_resource, source)
    assert not PER_FILE & set(server.commands())


def test_list_time_offset_is_validated(local_time_server, pg_resource, make_source) -> None:
    with pytest.raises(ValueError, match="FTP_LIST_TIME_OFFSET"):
        ingest_source(
            local_time_server.resource(list_time_offset="Europe/Paris"),
            pg_resource,
            make_source("bad_offset"),
        )


def test_offset_arithmetic() -> None:
    """The listed minute is truncated: any second of it gives the zone, quarter hours too."""
    precise = datetime(2026, 12, 4, 10, 0, 59, tzinfo=UTC)
    for zone_minutes in (0, 60, -180, 345, 330, -570, 14 * 60, -12 * 60):
        zone = timedelta(minutes=zone_minutes)
        listed = (precise + zone).replace(second=0)
        assert detect_offset(listed, precise) == zone
        assert detect_offset(listed, precise.replace(second=0)) == zone
    assert detect_offset(precise + timedelta(minutes=7), precise) is None  # written meanwhile
    assert detect_offset(precise + timedelta(hours=15), precise) is None
    assert parse_offset("auto") is None and parse_offset("0") == timedelta(0)
    assert parse_offset("+05:45") == timedelta(hours=5, minutes=45)
    assert parse_offset("-0300") == timedelta(hours=-3)
    with pytest.raises(ValueError, match="FTP_LIST_TIME_OFFSET"):
        parse_offset("+15:00")
