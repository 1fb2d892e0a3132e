"""The bulk row-packet reader against crafted MySQL packets (pure protocol logic), and against
the real server for large rows and a server-side error mid-result."""

from __future__ import annotations

import io
import struct
from types import SimpleNamespace

import pymysql
import pytest

from sync_assets.mysql.stream import RowTooLargeError, StreamStats, raw_connection, read_chunks
from sync_assets.mysql.wire import MAX_PACKET, WireError, rows_reader
from sync_assets.resources import MySQLResource


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def _lenenc(value: bytes) -> bytes:
    n = len(value)
    if n < 0xFB:
        return bytes([n]) + value
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n) + value
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3] + value
    return b"\xfe" + struct.pack("<Q", n) + value


class _Trickle(io.BytesIO):
    """A socket file that hands out at most `step` bytes per read (split packets)."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read1(self, size: int = -1) -> bytes:
        return super().read1(min(size, self.step))


def _cursor(stream: bytes, step: int = 7) -> SimpleNamespace:
    conn = SimpleNamespace(
        _rfile=_Trickle(stream, step), _next_seq_id=3, encoding="utf8", _force_close=lambda: None
    )
    result = SimpleNamespace(unbuffered_active=True, field_count=1)
    return SimpleNamespace(connection=conn, _result=result)


EOF_PAYLOAD = b"\xfe\x00\x00\x02\x00"


@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_rows_of_every_length_encoding_and_null(step: int) -> None:
    values = [b"a", b"", b"x" * 300, b"y" * 70_000, None, b"\xfe\xff"]
    packets = b"".join(
        _packet(3 + i, b"\xfb" if v is None else _lenenc(v)) for i, v in enumerate(values)
    )
    cursor = _cursor(packets + _packet(3 + len(values), EOF_PAYLOAD), step)
    batches = list(rows_reader(cursor, batch_rows=4))
    assert [len(b) for b in batches] == [4, 2]
    assert [v for b in batches for v in b] == values
    assert cursor.connection._next_seq_id == 3 + len(values) + 1
    assert cursor._result.unbuffered_active is False and cursor._result.has_next == 0


def test_row_split_over_several_packets() -> None:
    value = b"z" * (MAX_PACKET + 10)
    payload = _lenenc(value)
    stream = (
        _packet(3, payload[:MAX_PACKET])
        + _packet(4, payload[MAX_PACKET:])
        + _packet(5, _lenenc(b"next"))
        + _packet(6, EOF_PAYLOAD)
    )
    rows = [v for b in rows_reader(_cursor(stream, 1 << 20)) for v in b]
    assert rows == [value, b"next"]


def test_protocol_errors_are_raised() -> None:
    with pytest.raises(WireError, match="sequence"):
        list(rows_reader(_cursor(_packet(9, _lenenc(b"a")))))
    with pytest.raises(WireError, match="lost connection"):
        list(rows_reader(_cursor(_packet(3, _lenenc(b"abc"))[:-1])))
    error = b"\xff" + struct.pack("<H", 1317) + b"#70100Query execution was interrupted"
    with pytest.raises(pymysql.err.OperationalError, match="interrupted"):
        list(rows_reader(_cursor(_packet(3, _lenenc(b"a")) + _packet(4, error))))


def test_unusable_cursor_falls_back() -> None:
    cursor = _cursor(b"")
    cursor._result.field_count = 2
    assert rows_reader(cursor) is None


@pytest.mark.parametrize("fast", [True, False])
def test_large_rows_and_rows_over_max_allowed_packet(
    mysql_resource: MySQLResource, fast: bool
) -> None:
    conn = raw_connection(mysql_resource)
    try:
        cur = conn.cursor()
        cur.execute("SELECT REPEAT('a', 5000000) UNION ALL SELECT 'b'")
        stats = StreamStats()
        chunks = list(read_chunks(cur, 10, stats, fast))
        assert b"".join(chunks) == b"a" * 5_000_000 + b"\nb\n" and stats.rows == 2
        cur.execute("SELECT 'x' UNION ALL SELECT REPEAT('a', @@max_allowed_packet + 1)")
        with pytest.raises(RowTooLargeError, match="max_allowed_packet"):
            list(read_chunks(cur, 10, StreamStats(), fast))
    finally:
        conn.close()
    # The connection stays usable after a complete result.
    conn = raw_connection(mysql_resource)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 'ok'")
        assert list(read_chunks(cur, 10, StreamStats(), fast)) == [b"ok\n"]
        cur.execute("SELECT 2")
        assert list(cur.fetchall()) == [(b"2",)]
    finally:
        conn.close()
