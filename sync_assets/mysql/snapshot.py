"""Facts read in the MySQL snapshot before the rows themselves: the cursor's bounds, and on
request which TINYINT(1) columns hold values other than 0/1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from sync_assets.mysql.job import Job
from sync_assets.mysql.naming import mq
from sync_assets.mysql.type_rules import cursor_kind


@dataclass(frozen=True)
class Snapshot:
    upper: str | None  # MAX(cursor) in the snapshot, as MySQL prints it: the read's bound
    watermark: str | None  # what the next run starts from: the upper bound, but never later
    # than the snapshot's NOW(), so a row stamped in the future cannot hide the rows after it


def open_read_snapshot(my: pymysql.Connection) -> None:
    """Start the one consistent snapshot every read of a run shares (counts, keys, rows)."""
    with my.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")


def _text(value: Any) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def snapshot_facts(job: Job, my: pymysql.Connection) -> Snapshot:
    """The cursor's maximum in the read snapshot (an index lookup when the cursor is indexed);
    the row count comes later, while PostgreSQL works (`job.counting_source`)."""
    if not job.cursor:
        return Snapshot(None, None)
    col = next(c for c in job.source.columns if c.name == job.cursor)
    upper = watermark = f"CAST(MAX({mq(col.name)}) AS CHAR)"
    future = "NULL"
    if cursor_kind(col) == "temporal":
        watermark = f"CAST(LEAST(MAX({mq(col.name)}), NOW(6)) AS CHAR)"
        future = f"MAX({mq(col.name)}) > NOW(6)"
    with my.cursor() as cur:
        cur.execute(f"SELECT {upper}, {watermark}, {future} FROM {job.source_sql}")
        top, mark, in_future = cur.fetchone()
    if in_future and int(in_future):
        job.report.notes.append(
            f"cursor values in the future (up to {_text(top)}): watermark held at the"
            " snapshot's time; those rows are re-read (not rewritten) until then"
        )
    return Snapshot(_text(top), _text(mark))


def not_boolean(job: Job, my: pymysql.Connection, names: list[str]) -> set[str]:
    """Which of the TINYINT(1) columns `names` hold values other than 0/1 (a full scan: asked
    only when a full refresh cannot guess; incremental runs check the staged rows)."""
    if not names:
        return set()
    sums = ", ".join(f"COALESCE(SUM({mq(n)} NOT IN (0, 1)), 0)" for n in names)
    with my.cursor() as cur:
        cur.execute(f"SELECT {sums} FROM {job.source_sql}")
        row = cur.fetchone()
    return {n for n, bad in zip(names, row, strict=True) if int(bad)}
