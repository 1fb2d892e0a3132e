"""Helpers for the reliability suite: child runs to kill, waiting on real state, exact checks.

Every fault is timed by watching the servers (pg_stat_activity / pg_stat_progress_copy, MySQL's
processlist, bytes an FTP handler served), never by sleeping and hoping.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from pyftpdlib.handlers import FTPHandler

from sync_assets.ftp.config import SourceConfig
from sync_assets.resources import PostgresResource
from sync_assets_tests.ftp.conftest import make_source, write_file
from sync_assets_tests.mysql.conftest import src, src_db, src_resource, sync, target_schema

# The engine tests' fixtures, reused as they are: a source factory (FTP); a per-test MySQL
# database, PostgreSQL schema and `sync` function (MySQL).
REUSED_FIXTURES = (make_source, src, src_db, src_resource, sync, target_schema)
REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(probe: Callable[[], T], what: str, timeout: float = 60, every: float = 0.005) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


# --- child runs -------------------------------------------------------------------------------


def spawn_run(args: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `runner.py` with `args` (see its docstring); stdout/stderr captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "sync_assets_tests.reliability.runner", json.dumps(args)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ftp_run_args(ftp: Any, pg: PostgresResource, source: SourceConfig) -> dict[str, Any]:
    fields = dataclasses.asdict(source)
    return {"kind": "ftp", "ftp": ftp.model_dump(), "pg": pg.model_dump(), "source": fields}


RunArgs = Callable[..., dict[str, Any]]


@pytest.fixture
def mysql_run_args(src_resource: Any, pg_resource: PostgresResource, target_schema: str) -> RunArgs:
    """`mysql_run_args(table=..., options=...)`: runner args for this test's MySQL database."""

    def make(kind: str = "mysql", **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "mysql": src_resource.model_dump(), "pg": pg_resource.model_dump(),
                "schema": target_schema, **extra}  # fmt: skip

    return make


def kill_hard(child: subprocess.Popen) -> None:
    """SIGKILL the run process (no cleanup code of ours runs) and reap it."""
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"child ended on its own: {child.returncode}"


def finish(child: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    try:
        return child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()


# --- watching PostgreSQL ----------------------------------------------------------------------


def active_copy(pg: psycopg.Connection, database: str, min_tuples: int = 1) -> int | None:
    """Backend pid of a COPY by `sync_assets` into `database` that has taken rows, or None."""
    row = pg.execute(
        "SELECT a.pid FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid)"
        " WHERE p.datname = %s AND a.application_name = 'sync_assets'"
        " AND p.tuples_processed >= %s LIMIT 1",
        (database, min_tuples),
    ).fetchone()
    return row[0] if row else None


def copy_in_flight(child: subprocess.Popen, pg: psycopg.Connection, database: str) -> int:
    """Wait until `child` has a COPY with >= 1000 rows in flight; its backend pid."""
    backend = wait_until(
        lambda: active_copy(pg, database, min_tuples=1000) or child.poll() is not None,
        "a COPY in flight",
    )
    assert child.poll() is None, f"the run ended before its COPY was seen: {finish(child)}"
    return backend


def backend_gone(pg: psycopg.Connection, pid: int) -> bool:
    return pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None


def sync_sessions(pg: psycopg.Connection, database: str) -> list[int]:
    rows = pg.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'sync_assets'",
        (database,),
    ).fetchall()
    return [pid for (pid,) in rows]


# --- FTP log files ----------------------------------------------------------------------------


def csv_file(first: int, last: int) -> bytes:
    """`id;value` lines with ids first..last (globally unique ids make doubles visible)."""
    body = "".join(f"{i};{i * 7}\n" for i in range(first, last + 1))
    return ("id;value\n" + body).encode()


def ids_by_file(pg: psycopg.Connection, source: SourceConfig) -> dict[str, list[int]]:
    """The table's ids grouped by `_source_file`, each list sorted (doubles stay visible)."""
    table = sql.Identifier(source.schema, source.table_name)
    query = sql.SQL("SELECT _source_file, id FROM {} ORDER BY _source_file, id").format(table)
    result: dict[str, list[int]] = {}
    for path, value in pg.execute(query).fetchall():
        result.setdefault(path, []).append(value)
    return result


def expected_ids(files: dict[str, tuple[int, int]]) -> dict[str, list[int]]:
    return {f"/{name}": list(range(first, last + 1)) for name, (first, last) in files.items()}


def write_csv_files(root: Path, files: dict[str, tuple[int, int]]) -> None:
    for name, (first, last) in files.items():
        write_file(root, name, csv_file(first, last))


def audited_handler(
    pg: PostgresResource, source: SourceConfig, expected: dict[str, list[int]], base: type
) -> type[FTPHandler]:
    """A handler that, before each DELE, checks the file's rows are committed in PostgreSQL.

    Its `audits` list gets (path, committed ids == expected ids) per delete command.
    """
    table = sql.Identifier(source.schema, source.table_name)
    query = sql.SQL("SELECT id FROM {} WHERE _source_file = %s ORDER BY id").format(table)

    class Audited(base):  # type: ignore[misc, valid-type]
        audits: list[tuple[str, bool]] = []
        lock = threading.Lock()

        def ftp_DELE(self, path: str) -> None:
            virtual = self.fs.fs2ftp(path)
            with pg.connection(autocommit=True) as conn:
                committed = [value for (value,) in conn.execute(query, (virtual,)).fetchall()]
            with Audited.lock:
                Audited.audits.append((virtual, committed == expected.get(virtual)))
            super().ftp_DELE(path)

    return Audited


class GatedDownloads(FTPHandler):
    """While `gate` is closed, a download waits there (its run holds its lock meanwhile, and
    the server can be killed under it); `reached` tells the test a download arrived."""

    reached = threading.Event()
    gate = threading.Event()

    def ftp_RETR(self, file: str) -> str | None:
        GatedDownloads.reached.set()
        GatedDownloads.gate.wait(timeout=120)
        return super().ftp_RETR(file)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The load tier (`@pytest.mark.load`) runs only when asked for: `pytest -m load`."""
    if "load" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="load tier: run with `pytest -m load`")
    for item in items:
        if item.get_closest_marker("load") is not None:
            item.add_marker(skip)
