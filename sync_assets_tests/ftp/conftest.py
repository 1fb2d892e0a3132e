"""Helpers for the FTP engine tests: fast source configs, files with chosen ages, queries."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sync_assets.ftp.config import SourceConfig

SourceFactory = Callable[..., SourceConfig]


@pytest.fixture
def make_source() -> SourceFactory:
    """A source with its own table/schema and fast test timings (no stable wait, no min age)."""
    token = secrets.token_hex(3)

    def make(name: str = "logs", **overrides: Any) -> SourceConfig:
        values: dict[str, Any] = {
            "name": f"{name}_{token}",
            "schema": f"ftp_test_{token}",
            "min_age_seconds": 0.0,
            "stable_seconds": 0.0,
            "final_line_seconds": 0.0,
            "retries": 3,
            "retry_backoff_seconds": 0.05,
        }
        values.update(overrides)
        return SourceConfig(**values)

    return make


def write_file(root: Path, relative: str, content: bytes, age_seconds: float = 3600) -> Path:
    """Write a file and set its mtime `age_seconds` in the past (old files are stable)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    set_age(path, age_seconds)
    return path


def set_age(path: Path, age_seconds: float) -> None:
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))


def rows(conn: psycopg.Connection, source: SourceConfig, columns: str, order: str = "") -> list:
    query = sql.SQL("SELECT {} FROM {} {}").format(
        sql.SQL(columns),
        sql.Identifier(source.schema, source.table_name),
        sql.SQL(f"ORDER BY {order}" if order else ""),
    )
    return conn.execute(query).fetchall()


def column_types(conn: psycopg.Connection, source: SourceConfig) -> dict[str, str]:
    result = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        (source.schema, source.table_name),
    )
    return dict(result.fetchall())


def rejects(conn: psycopg.Connection, source: SourceConfig) -> list[tuple]:
    return conn.execute(
        "SELECT path, line_number, raw, reason FROM sync_meta.ftp_rejects"
        " WHERE source = %s ORDER BY path, line_number",
        (source.name,),
    ).fetchall()


def ledger(conn: psycopg.Connection, source: SourceConfig) -> dict[str, dict[str, Any]]:
    cur = conn.execute("SELECT * FROM sync_meta.ftp_ledger WHERE source = %s", (source.name,))
    names = [d.name for d in cur.description or []]
    return {row[1]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
