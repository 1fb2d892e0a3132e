"""A fast reader for one-column result rows, straight from pymysql's socket buffer.

pymysql spends most of its per-row time in Python, building packet objects. Our SELECT returns
one column per row (the whole pre-rendered line), so a row packet is just a length-encoded
string: this reader takes the bytes of many packets at once from the connection's buffered
socket file and slices the row values out in one tight loop (docs/performance.md has the
figures).

It uses three pymysql internals (`_rfile`, `_next_seq_id`, the active unbuffered result) and
leaves them exactly as pymysql's own reader would, so the connection stays usable. When they
are not as expected (another pymysql release), `rows_reader` returns None and the caller uses
pymysql's public `fetchmany` instead; the fidelity tests run both readers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymysql.protocol import EOFPacketWrapper, MysqlPacket

MAX_PACKET = 0xFFFFFF
READ_SIZE = 1 << 20
# Bytes of the length prefix after the first byte of a length-encoded string.
_PREFIX = {0xFC: 3, 0xFD: 4, 0xFE: 9}


class WireError(RuntimeError):
    """The MySQL stream broke the protocol (or the connection was lost mid-result)."""


class _Stream:
    """Row packets of the active unbuffered result of `cursor`."""

    def __init__(self, cursor: Any) -> None:
        self.conn = cursor.connection
        self.result = cursor._result
        self.rfile = self.conn._rfile
        self.seq = self.conn._next_seq_id
        self.buf = b""
        self.pos = 0
        self.done = False

    def _more(self) -> None:
        """Append whatever the socket has (at least one byte) to the unparsed rest."""
        data = self.rfile.read1(READ_SIZE)
        if not data:
            self.conn._force_close()
            raise WireError("lost connection to MySQL server while reading rows")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def _need(self, count: int) -> None:
        while len(self.buf) - self.pos < count:
            self._more()

    def batch(self, max_rows: int) -> list[bytes | None]:
        """Up to `max_rows` row values (None for a NULL value); [] at the end."""
        rows: list[bytes | None] = []
        while not self.done and len(rows) < max_rows:
            if not self._parse(rows, max_rows):
                self._more()
        return rows

    def _parse(self, rows: list[bytes | None], max_rows: int) -> bool:
        """Parse the complete packets in the buffer; False when more bytes are needed."""
        buf, pos, seq = self.buf, self.pos, self.seq
        end = len(buf)
        progressed = False
        try:
            while len(rows) < max_rows and pos + 4 <= end:
                length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                stop = pos + 4 + length
                if stop > end or length == MAX_PACKET:
                    break
                if buf[pos + 3] != seq:
                    raise WireError(f"packet sequence {buf[pos + 3]} where {seq} was expected")
                seq = (seq + 1) & 0xFF
                first = buf[pos + 4]
                if first < 0xFB:
                    rows.append(buf[pos + 5 : stop])
                elif first == 0xFB:
                    rows.append(None)
                elif (first == 0xFE and length < 9) or first == 0xFF:
                    self.pos, self.seq = stop, seq
                    self._finish(buf[pos + 4 : stop])
                    return True
                else:
                    rows.append(buf[pos + 5 + _PREFIX[first] - 1 : stop])
                pos = stop
                progressed = True
        finally:
            self.buf, self.pos, self.seq = buf, pos, seq
        if pos + 4 <= end and (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16) == MAX_PACKET:
            rows.append(self._long_row())
            return True
        return progressed or len(rows) >= max_rows

    def _long_row(self) -> bytes | None:
        """A row of 16 MB or more arrives split over several packets."""
        parts: list[bytes] = []
        while True:
            self._need(4)
            head = self.buf[self.pos : self.pos + 4]
            length = head[0] | head[1] << 8 | head[2] << 16
            if head[3] != self.seq:
                raise WireError(f"packet sequence {head[3]} where {self.seq} was expected")
            self.seq = (self.seq + 1) & 0xFF
            self._need(4 + length)
            parts.append(self.buf[self.pos + 4 : self.pos + 4 + length])
            self.pos += 4 + length
            if length < MAX_PACKET:
                break
        payload = b"".join(parts)
        return payload[_PREFIX.get(payload[0], 1) :] if payload[0] != 0xFB else None

    def _finish(self, payload: bytes) -> None:
        """End of rows (EOF) or an error packet: leave pymysql as its own reader would."""
        self.done = True
        self.conn._next_seq_id = self.seq
        self.result.unbuffered_active = False
        packet = MysqlPacket(payload, self.conn.encoding)
        if packet.is_error_packet():
            packet.raise_for_error()
        if self.pos != len(self.buf):
            self.conn._force_close()
            raise WireError("unexpected bytes after the end of the result")
        eof = EOFPacketWrapper(packet)
        self.result.warning_count = eof.warning_count
        self.result.has_next = eof.has_next
        self.result.connection = None
        self.result.rows = None


def rows_reader(cursor: Any, batch_rows: int = 5000) -> Iterator[list[bytes | None]] | None:
    """Batches of the one-column rows of `cursor`'s active unbuffered result, or None if the
    pymysql internals this relies on are not as expected."""
    result = getattr(cursor, "_result", None)
    conn = getattr(cursor, "connection", None)
    usable = (
        result is not None
        and conn is not None
        and getattr(result, "unbuffered_active", False)
        and getattr(result, "field_count", 0) == 1
        and hasattr(conn, "_rfile")
        and hasattr(conn._rfile, "read1")
        and isinstance(getattr(conn, "_next_seq_id", None), int)
    )
    if not usable:
        return None
    return _batches(_Stream(cursor), batch_rows)


def _batches(stream: _Stream, size: int) -> Iterator[list[bytes | None]]:
    while True:
        rows = stream.batch(size)
        if not rows:
            return
        yield rows
