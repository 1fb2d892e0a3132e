"""Whatever goes wrong with one file stays with that file (issue 19).

A generated corpus of 100+ good and hostile files on a real FTP server, one run: every good
file loads exactly once with its values, every odd file ends `loaded` (with rejects) or
`failed` with its reason, and nothing escapes a file. Failures that are not a file's (a dead
PostgreSQL connection) stop the run without marking any file failed.
"""

from __future__ import annotations

import errno
import gzip
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from pyftpdlib.handlers import FTPHandler

from sync_assets.core.settings import ConfigError
from sync_assets.devtools.ftp_server import ListOnlyFTPHandler
from sync_assets.ftp import filework
from sync_assets.ftp import lines as line_reader
from sync_assets.ftp.cli import reingest
from sync_assets.ftp.definitions import CHECK_NAME, build_log_asset, build_source_spec
from sync_assets.ftp.ingest import ingest_source
from sync_assets.resources import PostgresResource, SourceUnavailableError
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp import hostile_corpus
from sync_assets_tests.ftp.conftest import ledger, rejects, write_file

pytestmark = pytest.mark.slow


class CorpusHandler(FTPHandler):
    """Counts RETRs per file, and changes the files named in `changes` on their first RETR
    (a file that grows or shrinks during its download)."""

    retrs: Counter[str] = Counter()
    changes: dict[str, object] = {}
    lock = threading.Lock()

    def ftp_RETR(self, file: str) -> str | None:
        name = Path(file).name
        with CorpusHandler.lock:
            CorpusHandler.retrs[name] += 1
            change = CorpusHandler.changes.pop(name, None)
        if change is not None:
            Path(file).write_bytes(change(Path(file).read_bytes()))  # type: ignore[operator]
        return super().ftp_RETR(file)


def _rows_of(conn: psycopg.Connection, source, path: str) -> list[tuple]:
    query = sql.SQL(
        "SELECT id, value, ts FROM {} WHERE _source_file = %s ORDER BY _line_number"
    ).format(sql.Identifier(source.schema, source.table_name))
    return conn.execute(query, (path,)).fetchall()


def _loaded_rows(conn: psycopg.Connection, source) -> Counter[str]:
    query = sql.SQL("SELECT _source_file, count(*) FROM {} GROUP BY 1").format(
        sql.Identifier(source.schema, source.table_name)
    )
    return Counter(dict(conn.execute(query).fetchall()))


class ListOnlyCorpusHandler(CorpusHandler, ListOnlyFTPHandler):
    """The same, on a server that offers only LIST (sizes and times by SIZE and MDTM)."""


@pytest.mark.parametrize("handler", [CorpusHandler, ListOnlyCorpusHandler], ids=["mlsd", "list"])
def test_a_hostile_corpus_loads_every_good_file_once_and_isolates_the_odd_ones(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source, handler
) -> None:
    corpus = hostile_corpus.build(huge_line_bytes=50 * 1024 * 1024)
    assert len(corpus.files) >= 100
    server = ftp_server_factory(mlsd=handler is CorpusHandler, handler_base=handler)
    for name, content in corpus.files.items():
        write_file(server.root, name, content)
    CorpusHandler.retrs = Counter()
    CorpusHandler.changes = {
        name: change
        for name in corpus.files
        for suffix, change in hostile_corpus.CHANGES.items()
        if name.endswith(suffix)
    }
    ftp = make_ftp_resource(server)
    source = make_source("corpus")

    started = time.monotonic()
    report = ingest_source(ftp, pg_resource, source)  # no exception escapes a file
    first_run_seconds = time.monotonic() - started

    outcomes = {o.path.lstrip("/"): o for o in report.files}
    entries = {path.lstrip("/"): entry for path, entry in ledger(pg_conn, source).items()}
    loaded_rows = _loaded_rows(pg_conn, source)
    rejected = Counter((p.lstrip("/"), line) for p, line, *_ in rejects(pg_conn, source))
    problems = []
    for name, expect in corpus.expect.items():
        status = entries[name]["status"] if name in entries else outcomes[name].status
        if status not in expect.statuses:
            problems.append(f"{name}: {status} ({entries.get(name, {}).get('error')})")
            continue
        if status == "failed":
            error = entries[name]["error"] or ""
            if not error or (expect.reason and expect.reason not in error):
                problems.append(f"{name}: failed with {error!r}, expected {expect.reason!r}")
            if loaded_rows[f"/{name}"]:
                problems.append(f"{name}: failed but {loaded_rows[f'/{name}']} rows stayed")
        if expect.rejected_lines is not None:
            lines = {line for (path, line) in rejected if path == name}
            if lines != expect.rejected_lines:
                problems.append(f"{name}: rejected lines {sorted(lines)}")
        if status in ("loaded", "rejected") and loaded_rows[f"/{name}"] < expect.min_rows:
            problems.append(f"{name}: {loaded_rows[f'/{name}']} rows < {expect.min_rows}")
    assert problems == []
    assert report.unbalanced_files == []

    for name in corpus.good:  # exactly once, with its values
        assert _rows_of(pg_conn, source, f"/{name}") == corpus.expect[name].rows, name
        assert entries[name]["rows_rejected"] == 0, name
    failed = sorted(f"/{n}" for n, e in entries.items() if e["status"] == "failed")
    assert len(failed) >= 5
    assert sorted(report.newly_failed) == failed
    assert sorted(report.failed_files) == failed
    assert all(report.failed_files.values())
    assert not any(ftp.password in (e["error"] or "") for e in entries.values())

    # The next run: failed files are not downloaded again; the file that shrank while it was
    # read loads now, the one that grew loads its new line; nothing else loads twice.
    CorpusHandler.retrs = Counter()
    again = ingest_source(ftp, pg_resource, source)
    assert not [f for f in failed if CorpusHandler.retrs[Path(f).name]]
    assert again.newly_failed == [] and sorted(again.failed_files) == failed
    assert again.files_failed == 0
    by_status = {o.path: o.status for o in again.files}
    shrunk = next(n for n in corpus.files if n.endswith("shrinks_while_read.csv"))
    grown = next(n for n in corpus.files if n.endswith("grows_while_read.csv"))
    # A file of blank lines has not shown its header yet: it is read again (4 bytes) until it
    # does, so that a header written later is read as a header (see the preamble rule).
    no_header = next(n for n in corpus.files if n.endswith("only_newlines.csv"))
    assert set(by_status) - {f"/{no_header}"} == {f"/{shrunk}", f"/{grown}"}, by_status
    assert _rows_of(pg_conn, source, f"/{shrunk}") == [
        (7, 7.0, datetime(2026, 11, 28, 10, tzinfo=UTC))
    ]
    assert len(_rows_of(pg_conn, source, f"/{grown}")) == 101
    after = _loaded_rows(pg_conn, source)
    assert {p: n for p, n in after.items() if after[p] != loaded_rows[p]} == {
        f"/{shrunk}": 1,
        f"/{grown}": 101,
    }
    print(f"first run: {len(corpus.files)} files in {first_run_seconds:.1f} s")


# --- a failed file: not read again until it changes; a fix plus reingest loads it once -----------


def _csv_with_long_line(width: int) -> bytes:
    value = "2." + "0" * width  # a long but valid number
    return f"id;value;ts\n1;1;{hostile_corpus.TS}\n2;{value};{hostile_corpus.TS}\n".encode()


def test_a_failed_file_is_retried_only_when_changed_and_loads_once_after_a_fix_and_reingest(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source, monkeypatch
) -> None:
    server = ftp_server_factory(mlsd=True, handler_base=CorpusHandler)
    CorpusHandler.retrs, CorpusHandler.changes = Counter(), {}
    write_file(server.root, "a.csv", _csv_with_long_line(5000))
    write_file(server.root, "b.csv", _csv_with_long_line(10))
    ftp, source = make_ftp_resource(server), make_source("fix")
    # The "parser" of this test cannot read lines longer than 1000 bytes: a.csv fails.
    monkeypatch.setattr(line_reader, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(line_reader, "BLOCK_BYTES", 512)

    first = ingest_source(ftp, pg_resource, source)
    assert first.newly_failed == ["/a.csv"] and list(first.failed_files) == ["/a.csv"]
    assert "longer than 1000 bytes" in first.failed_files["/a.csv"]
    assert ledger(pg_conn, source)["/b.csv"]["status"] == "loaded"

    second = ingest_source(ftp, pg_resource, source)  # unchanged: not downloaded again
    assert CorpusHandler.retrs["a.csv"] == 1
    assert second.files == [] and list(second.failed_files) == ["/a.csv"]

    # It changes: read again, fails again, but it is not "newly" failed (no second alert).
    write_file(server.root, "a.csv", _csv_with_long_line(6000))
    third = ingest_source(ftp, pg_resource, source)
    assert CorpusHandler.retrs["a.csv"] == 2
    assert third.files_failed == 1 and third.newly_failed == []
    assert "longer than" in ledger(pg_conn, source)["/a.csv"]["error"]

    # The parser is fixed: nothing happens to the unchanged file until the operator re-ingests.
    monkeypatch.undo()
    assert ingest_source(ftp, pg_resource, source).files == []
    with psycopg.connect(**pg_resource.conninfo(), autocommit=True) as conn:
        assert reingest(conn, source, [], failed=True) == {"/a.csv": 0}
    fixed = ingest_source(ftp, pg_resource, source)
    assert fixed.failed_files == {} and fixed.rows_loaded == 2
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 0
    ids = _loaded_ids(pg_conn, source)
    assert ids == {"/a.csv": [1, 2], "/b.csv": [1, 2]}  # exactly once each


def _loaded_ids(conn: psycopg.Connection, source) -> dict[str, list[int]]:
    query = sql.SQL("SELECT _source_file, id FROM {} ORDER BY 1, 2").format(
        sql.Identifier(source.schema, source.table_name)
    )
    result: dict[str, list[int]] = {}
    for path, value in conn.execute(query).fetchall():
        result.setdefault(path, []).append(value)
    return result


# --- not a file's fault: the run stops, no file is marked failed --------------------------------


class GatedRetr(FTPHandler):
    """RETR of `gated` waits until the test opens `gate` (`reached` tells it arrived)."""

    gated = ""
    reached = threading.Event()
    gate = threading.Event()

    def ftp_RETR(self, file: str) -> str | None:
        if Path(file).name == GatedRetr.gated:
            GatedRetr.reached.set()
            GatedRetr.gate.wait(timeout=120)
        return super().ftp_RETR(file)


def _waiting_on_a_lock(conn: psycopg.Connection, database: str) -> int | None:
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'sync_assets'"
        " AND wait_event_type = 'Lock' LIMIT 1",
        (database,),
    ).fetchone()
    return row[0] if row else None


def _wait_for(probe, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def _run_until_gated(ftp, pg_resource, source, gated: str):
    """Start a run in a thread; return once its RETR of `gated` waits at GatedRetr's gate."""
    GatedRetr.gated, GatedRetr.reached, GatedRetr.gate = gated, threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest_source(ftp, pg_resource, source)
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    assert GatedRetr.reached.wait(timeout=120)
    return runner, errors


@pytest.mark.parametrize("parallel_files", [1, 2])
def test_a_cancelled_statement_stops_the_run_and_marks_no_file_failed(
    ftp_server_factory, pg_resource: PostgresResource, pg_server, pg_conn, make_source,
    parallel_files,
) -> None:  # fmt: skip
    """A statement cancelled by the server (an operator, a statement_timeout) leaves the
    connection alive, which a file's own errors do too: it must still not blame the file."""
    server = ftp_server_factory(mlsd=True, handler_base=GatedRetr)
    ftp, source = make_ftp_resource(server), make_source("cancel", parallel_files=parallel_files)
    write_file(server.root, "a.csv", _csv_with_long_line(3))
    ingest_source(ftp, pg_resource, source)  # the table exists: later files load in parallel
    for name in ("b.csv", "c.csv", "d.csv"):
        write_file(server.root, name, _csv_with_long_line(3))
    runner, errors = _run_until_gated(ftp, pg_resource, source, "c.csv")
    table = sql.Identifier(source.schema, source.table_name)
    with psycopg.connect(**pg_resource.conninfo()) as locker:  # holds the table meanwhile
        locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        GatedRetr.gate.set()
        backend = _wait_for(
            lambda: _waiting_on_a_lock(pg_conn, pg_resource.database), "a lock wait"
        )
        pg_conn.execute("SELECT pg_cancel_backend(%s)", (backend,))
        locker.rollback()
    runner.join(timeout=120)
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.QueryCanceled), errors
    assert [e for e in ledger(pg_conn, source).values() if e["status"] == "failed"] == []

    again = ingest_source(ftp, pg_resource, source)
    assert again.failed_files == {}
    assert _loaded_ids(pg_conn, source) == {f"/{n}.csv": [1, 2] for n in "abcd"}


# --- what the run says: metadata for an alert, an ERROR check while a file is failed ------------


def test_materialisation_counts_failed_files_and_the_check_is_an_error(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "good.csv", _csv_with_long_line(3))
    write_file(server.root, "broken.csv.gz", b"not gzip at all\n")
    source = make_source("meta")
    resources = {"postgres": pg_resource, "ftp": make_ftp_resource(server)}

    def materialise() -> tuple[dict, dg.AssetCheckEvaluation]:
        result = dg.materialize(
            [build_source_spec(source), build_log_asset(source)], resources=resources
        )
        assert result.success  # a failed file does not fail the step
        [materialisation] = result.asset_materializations_for_node(f"logs__{source.name}")
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        check = checks[CHECK_NAME]
        return materialisation.metadata, check

    meta, check = materialise()
    assert meta["files_failed"].value == 1 and meta["files_newly_failed"].value == 1
    assert meta["files_failed_total"].value == 1 and meta["rows_loaded"].value == 2
    [newly] = meta["newly_failed_files"].value
    assert newly["path"] == "/broken.csv.gz" and "gzip" in newly["error"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "/broken.csv.gz: BadGzipFile" in check.metadata["failed_files"].value

    # The next run: nothing newly failed (no second alert), still an ERROR until it is fixed.
    meta, check = materialise()
    assert meta["files_newly_failed"].value == 0 and meta["newly_failed_files"].value == []
    assert meta["files_failed_total"].value == 1
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR

    (server.root / "broken.csv.gz").unlink()  # removed by the operator: the check passes
    meta, check = materialise()
    assert meta["files_failed_total"].value == 0 and check.passed


def test_whose_fault_with_real_errors(pg_resource: PostgresResource) -> None:
    """A file's errors (a value PostgreSQL refuses, a broken gzip, a parser surprise) against
    the servers' (a cancelled statement, a lost connection, a full disk, FTP unreachable)."""
    conn = pg_resource.connect(autocommit=True)
    with pytest.raises(psycopg.DataError) as refused:
        conn.execute("SELECT 'x'::bigint")
    assert filework.is_file_fault(refused.value, conn)
    with pytest.raises(psycopg.errors.TooManyColumns) as too_wide:
        conn.execute(
            sql.SQL("CREATE TEMP TABLE wide ({})").format(
                sql.SQL(", ").join(sql.SQL(f"c{i} int") for i in range(1700))
            )
        )
    assert filework.is_file_fault(too_wide.value, conn)
    with pytest.raises(gzip.BadGzipFile) as not_gzip:
        gzip.decompress(b"not gzip")
    assert filework.is_file_fault(not_gzip.value, conn)
    assert filework.is_file_fault(ValueError("a parser surprise"), conn)

    conn.execute("SET statement_timeout = '1ms'")
    with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
        conn.execute("SELECT pg_sleep(1)")
    assert not filework.is_file_fault(cancelled.value, conn)
    assert not filework.is_file_fault(OSError(errno.ENOSPC, "No space left on device"), conn)
    assert not filework.is_file_fault(SourceUnavailableError("FTP down"), conn)
    assert not filework.is_file_fault(MemoryError(), conn)

    conn.execute("SET statement_timeout = 0")
    pid = conn.info.backend_pid
    with pg_resource.connection(autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError) as lost:
        conn.execute("SELECT 1")
    assert not filework.is_file_fault(lost.value, conn)
    # Even an error that would be a file's is not, once the connection is gone.
    assert not filework.is_file_fault(refused.value, conn)
    conn.close()


class RefusingOneFile(FTPHandler):
    """A server that answers everything but cannot send `refused` (451 on each RETR)."""

    refused = ""

    def ftp_RETR(self, file: str) -> str | None:
        if Path(file).name == RefusingOneFile.refused:
            self.respond("451 Requested action aborted: local error in processing.")
            return None
        return super().ftp_RETR(file)


def _serve_abc(ftp_server_factory, handler: type[FTPHandler]):
    """A server with three small files a.csv, b.csv, c.csv (ids 1 and 2 each)."""
    server = ftp_server_factory(mlsd=True, handler_base=handler)
    for name in ("a.csv", "b.csv", "c.csv"):
        write_file(server.root, name, _csv_with_long_line(3))
    return server


def test_a_file_the_server_cannot_send_is_skipped_and_the_others_load(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = _serve_abc(ftp_server_factory, RefusingOneFile)
    RefusingOneFile.refused = "b.csv"
    ftp, source = make_ftp_resource(server), make_source("refused", retries=2)
    report = ingest_source(ftp, pg_resource, source)
    outcomes = {o.path: o for o in report.files}
    assert outcomes["/b.csv"].status == "unreadable" and "451" in outcomes["/b.csv"].error
    assert "/b.csv" not in ledger(pg_conn, source)  # not failed: read again next run
    assert _loaded_ids(pg_conn, source) == {"/a.csv": [1, 2], "/c.csv": [1, 2]}

    RefusingOneFile.refused = ""
    ingest_source(ftp, pg_resource, source)
    assert _loaded_ids(pg_conn, source) == {f"/{n}.csv": [1, 2] for n in "abc"}


def test_an_ftp_server_lost_during_a_download_stops_the_run_and_marks_no_file_failed(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = _serve_abc(ftp_server_factory, GatedRetr)
    ftp, source = make_ftp_resource(server), make_source("lost", retries=2)
    runner, errors = _run_until_gated(ftp, pg_resource, source, "b.csv")
    server.stop()  # every session of the run is cut; nothing answers on the port any more
    GatedRetr.gate.set()
    runner.join(timeout=120)
    assert len(errors) == 1 and isinstance(errors[0], SourceUnavailableError), errors
    assert ftp.password not in str(errors[0])
    assert [e for e in ledger(pg_conn, source).values() if e["status"] == "failed"] == []


def test_a_configuration_error_stops_the_run_and_marks_no_file_failed(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    server = _serve_abc(ftp_server_factory, FTPHandler)
    source = make_source("config", encoding="no-such-encoding")
    with pytest.raises(ConfigError, match="no-such-encoding"):
        ingest_source(make_ftp_resource(server), pg_resource, source)
    assert ledger(pg_conn, source) == {}
