"""Advisory locks so that two runs never work on the same table or source at once.

A session-level lock is held on a dedicated connection for the whole materialisation: if the
process dies, PostgreSQL closes the session and the lock goes with it, so no lock is orphaned.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


class LockBusyError(RuntimeError):
    """Another run holds the lock; raised after waiting, with the lock's name."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (same in every process and release)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def advisory_lock(
    conn: psycopg.Connection, name: str, wait_seconds: float = 30.0, poll_seconds: float = 0.5
) -> Iterator[None]:
    """Hold the advisory lock `name` on `conn` (autocommit recommended) for the block.

    Waits up to `wait_seconds` for a run that holds it, then refuses cleanly.
    """
    key = lock_key(name)
    deadline = time.monotonic() + wait_seconds
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row and row[0]:
            break
        if time.monotonic() >= deadline:
            raise LockBusyError(
                f"another run is syncing {name!r} (advisory lock held for more than "
                f"{wait_seconds:.0f}s); this run stops without writing"
            )
        time.sleep(poll_seconds)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# Every bookkeeping/schema DDL of both sides takes this one lock: two different locks would let
# the MySQL and FTP sides race on `CREATE SCHEMA IF NOT EXISTS sync_meta` on a fresh database
# (PostgreSQL's IF NOT EXISTS is not safe against a concurrent creator).
DDL_LOCK_NAME = "sync_assets:ddl"


@contextmanager
def ddl_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Cursor]:
    """A transaction holding the project-wide DDL lock, for idempotent schema/table creation."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(DDL_LOCK_NAME),))
        yield cur
