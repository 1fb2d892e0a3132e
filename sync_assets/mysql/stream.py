"""The hot path: MySQL rows (already COPY text) → bounded queue → PostgreSQL COPY.

A reader thread pulls rows from an unbuffered MySQL cursor and joins them into chunks while the
calling thread writes the previous chunks into COPY, so both servers work at once. The queue is
bounded, so memory stays a few chunks whatever the table size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import psycopg
import pymysql
from pymysql.converters import conversions

from sync_assets.core.pg import COPY_BYTE_ESCAPES
from sync_assets.mysql.wire import rows_reader

# Keep pymysql's parameter encoders but no value decoders: rows arrive as raw bytes.
ENCODERS_ONLY: dict[Any, Any] = {k: v for k, v in conversions.items() if not isinstance(k, int)}
QUEUE_DEPTH = 8
_END = object()
_first = itemgetter(0)


class RowTooLargeError(RuntimeError):
    """MySQL returned NULL for a row line: it exceeded max_allowed_packet."""


@dataclass
class StreamStats:
    rows: int = 0
    adjusted: int = 0  # values made NULL (zero dates) or stripped of NUL characters
    bytes: int = 0


@dataclass
class _Failure:
    error: BaseException


def raw_connection(resource: Any) -> pymysql.Connection:
    """A MySQL connection returning undecoded bytes from an unbuffered cursor."""
    return resource.connect(
        use_unicode=False, conv=ENCODERS_ONLY, cursorclass=pymysql.cursors.SSCursor
    )


# Marker bytes from `types` (never valid in UTF-8) → their COPY text meaning.
_MARKERS = bytes.maketrans(b"\xff\xfe\xfd\xfc", b"\t\n\\\\")
ROW_SEPARATOR = b"\xfe"


def finish_chunk(rows: list[bytes], stats: StreamStats) -> bytes:
    """Rows as MySQL rendered them (see `types`) → one chunk of COPY text, all in C loops."""
    chunk = ROW_SEPARATOR.join(rows)
    for special, escaped in COPY_BYTE_ESCAPES:
        if special in chunk:
            chunk = chunk.replace(special, escaped)
    if b"\x00" in chunk:  # PostgreSQL text cannot hold NUL characters: removed, counted
        stats.adjusted += chunk.count(b"\x00")
        chunk = chunk.replace(b"\x00", b"")
    if b"\xfc" in chunk:  # zero dates, sent as NULL
        stats.adjusted += chunk.count(b"\xfc")
    return chunk.translate(_MARKERS) + b"\n"


def _pymysql_batches(cur: pymysql.cursors.SSCursor, size: int) -> Iterator[list[bytes | None]]:
    while rows := cur.fetchmany(size):
        yield list(map(_first, rows))


def read_chunks(
    cur: pymysql.cursors.SSCursor, batch_rows: int, stats: StreamStats, fast: bool = True
) -> Iterator[bytes]:
    """COPY text chunks from an executed cursor whose rows are one pre-rendered line each."""
    batches = (rows_reader(cur, batch_rows) if fast else None) or _pymysql_batches(cur, batch_rows)
    for rows in batches:
        try:
            chunk = finish_chunk(rows, stats)  # type: ignore[arg-type]
        except TypeError:
            raise RowTooLargeError(
                "a row is larger than MySQL's max_allowed_packet once rendered as text;"
                " raise max_allowed_packet on the MySQL server"
            ) from None
        stats.rows += len(rows)
        stats.bytes += len(chunk)
        yield chunk


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def pipelined(
    chunks: Iterator[bytes],
    name: str = "mysql-reader",
    on_end: Callable[[], None] | None = None,
    gather: bool = False,
) -> Generator[bytes, None, None]:
    """Run `chunks` in a reader thread; yield its items here, re-raising its errors.

    `on_end` runs in the reader thread once `chunks` is exhausted (the MySQL connection is then
    free again) while this side may still be working on queued chunks. With `gather`, every
    chunk already queued is joined to the one taken, so a slow consumer writes fewer, larger
    pieces."""
    q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if not _put(q, chunk, stop):
                    return
            if on_end is not None:
                on_end()
            _put(q, _END, stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            _put(q, _Failure(exc), stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            if not gather:
                yield item
                continue
            parts = [item]
            ended = _take_queued(q, parts)
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            if ended:
                return
    finally:
        stop.set()
        thread.join(timeout=60)


def _take_queued(q: queue.Queue, parts: list[bytes]) -> bool:
    """Move the chunks already queued (at most QUEUE_DEPTH more, so memory stays bounded) into
    `parts`; True when the end was among them (a failure among them is raised)."""
    for _ in range(QUEUE_DEPTH):
        try:
            item = q.get_nowait()
        except queue.Empty:
            return False
        if item is _END:
            return True
        if isinstance(item, _Failure):
            raise item.error
        parts.append(item)
    return False


def copy_query(
    mysql_conn: pymysql.Connection,
    select_sql: str,
    params: tuple[Any, ...],
    pg_cur: psycopg.Cursor,
    copy_sql: Any,
    batch_rows: int,
    fast: bool = True,
    progress: Callable[[int], None] | None = None,
) -> StreamStats:
    """Stream the rows of `select_sql` (one COPY line each) into `copy_sql`; `progress` gets
    the rows read so far after each chunk written."""
    stats = StreamStats()
    cur = mysql_conn.cursor()
    cur.execute(select_sql, params or None)
    try:
        with pg_cur.copy(copy_sql) as copy:
            for chunk in pipelined(read_chunks(cur, batch_rows, stats, fast)):
                copy.write(chunk)
                if progress is not None:
                    progress(stats.rows)
    except BaseException:
        abandon_unread(cur)
        raise
    return stats


def abandon_unread(cursor: Any) -> None:
    """After a failure mid-stream: a result left unread cannot be finished (pymysql's SSCursor
    would read all the rest when the cursor is collected, the rest of a large table), so the
    connection is closed instead; the attempt starts over on a new one."""
    result = getattr(cursor, "_result", None)
    if result is not None and getattr(result, "unbuffered_active", False):
        cursor.connection._force_close()
        result.unbuffered_active = False
