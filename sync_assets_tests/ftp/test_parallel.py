"""Files loaded in parallel, and read during the stable-file pause: still exactly once.

Real pyftpdlib servers and the real PostgreSQL; crashes are real SIGKILLs at failpoints.
"""

from __future__ import annotations

import gzip
import threading
import time

import pytest
from pyftpdlib.handlers import FTPHandler

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.config import load_sources
from sync_assets.ftp.ingest import ingest_source
from sync_assets.ftp.parallel import SchemaGate, Snapshot, StableLooks
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import column_types, ledger, rows, write_file
from sync_assets_tests.ftp.test_exactly_once import _csv, _ids, _run_child_until_killed


def _ids_by_file(pg_conn, source) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path, value in rows(pg_conn, source, "_source_file, id", "_source_file, id"):
        found.setdefault(path, []).append(value)
    return found


def test_parallel_files_is_configurable_and_defaults_to_two() -> None:
    assert load_sources({})[0].parallel_files == 2
    custom = load_sources({"sources": {"press": {"parallel_files": 1}}})
    assert custom[0].parallel_files == 1
    for bad in (0, 1.5, "2", True):  # refused, naming the option, never rounded or clamped
        with pytest.raises(ConfigError, match="parallel_files"):
            load_sources({"sources": {"press": {"parallel_files": bad}}})
    with pytest.raises(ConfigError, match="chunk_lines"):
        load_sources({"defaults": {"chunk_lines": 0}})


def test_files_load_in_parallel_exactly_once(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("par", parallel_files=3, chunk_lines=7)
    for n in range(12):  # every 4th gzipped
        body = _csv(n * 100 + 1, n * 100 + 50)
        name = f"m{n % 3}/f{n:02d}.csv"
        write_file(ftp_server.root, name + (".gz" if n % 4 == 0 else ""),
                   gzip.compress(body) if n % 4 == 0 else body)  # fmt: skip
    report = ingest_source(ftp, pg_resource, source)
    assert (report.files_loaded, report.rows_loaded, report.rows_rejected) == (12, 600, 0)
    assert [f.path for f in report.files] == sorted(f.path for f in report.files)  # listing order
    assert _ids(pg_conn, source) == [n * 100 + i for n in range(12) for i in range(1, 51)]
    assert all(e["status"] == "loaded" for e in ledger(pg_conn, source).values())
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 0


@pytest.mark.parametrize("parallel", [1, 2])
def test_new_columns_in_parallel_files_evolve_the_table_in_listing_order(
    ftp_server, pg_resource, pg_conn, make_source, parallel
):
    """Files with new columns are redone alone (no two transactions wait on each other's
    table locks); the column types come from the first file that has them, as when the files
    load one after another."""
    ftp = make_ftp_resource(ftp_server)
    source = make_source("evolve", parallel_files=parallel)
    write_file(ftp_server.root, "a.csv", b"id;value\n1;1,5\n")
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 1  # the table exists now
    write_file(ftp_server.root, "b.csv", b"id;value;extra\n2;2,5;7\n")
    write_file(ftp_server.root, "c.csv", b"id;value;extra\n3;3,5;x\n")
    write_file(ftp_server.root, "d.csv", b"id;value;other\n4;4,5;2026-01-01 00:00:00\n")
    write_file(ftp_server.root, "e.csv", b"id;value\n5;5,5\n")
    report = ingest_source(ftp, pg_resource, source)
    assert (report.rows_loaded, report.rows_rejected) == (3, 1)  # c's "x" is no bigint
    types = column_types(pg_conn, source)
    assert (types["extra"], types["other"]) == ("bigint", "timestamp with time zone")
    assert rows(pg_conn, source, "id, value, extra", "id") == [
        (1, 1.5, None), (2, 2.5, 7), (4, 4.5, None), (5, 5.5, None),
    ]  # fmt: skip


def test_a_broken_file_does_not_affect_the_files_loaded_beside_it(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("broken", parallel_files=2)
    write_file(ftp_server.root, "a.csv", _csv(1, 30))
    write_file(ftp_server.root, "b.csv.gz", gzip.compress(_csv(31, 60))[:-20])  # cut short
    write_file(ftp_server.root, "c.csv", _csv(61, 90))
    write_file(ftp_server.root, "d.csv", b"\x00\x01binary\x00")
    report = ingest_source(ftp, pg_resource, source)
    statuses = {f.path: f.status for f in report.files}
    assert statuses == {"/a.csv": "loaded", "/b.csv.gz": "failed", "/c.csv": "loaded",
                        "/d.csv": "failed"}  # fmt: skip
    assert _ids(pg_conn, source) == [*range(1, 31), *range(61, 91)]
    assert ledger(pg_conn, source)["/b.csv.gz"]["status"] == "failed"


class _Recording(FTPHandler):
    """Records when each file is served and when directories are listed; appends a line to
    `grow` right after serving it once (the machine is still writing it)."""

    events: list[tuple[float, str]] = []
    grow = "late.csv"
    grown = False

    def ftp_MLSD(self, path: str) -> None:
        _Recording.events.append((time.monotonic(), "MLSD"))
        super().ftp_MLSD(path)

    def ftp_RETR(self, file: str) -> str | None:
        _Recording.events.append((time.monotonic(), f"RETR {file.rsplit('/', 1)[-1]}"))
        result = super().ftp_RETR(file)
        if file.endswith(_Recording.grow) and not _Recording.grown:
            _Recording.grown = True
            with open(file, "ab") as handle:
                handle.write(b"999;1,5\n")
        return result


def test_files_read_during_the_stable_pause_commit_only_if_the_second_look_agrees(
    ftp_server_factory, pg_resource, pg_conn, make_source
):
    server = ftp_server_factory(handler_base=_Recording)
    ftp = make_ftp_resource(server, delete_after_sync="true")
    source = make_source("pause", stable_seconds=1.0, parallel_files=2)
    write_file(server.root, "a.csv", _csv(1, 5))
    ingest_source(ftp, pg_resource, source)  # the table exists: later files load in parallel
    _Recording.events.clear()
    write_file(server.root, "b.csv", _csv(6, 10))
    write_file(server.root, "late.csv", _csv(11, 15))  # grows right after it is read
    started = time.monotonic()
    report = ingest_source(ftp, pg_resource, source)
    listings = [t for t, what in _Recording.events if what == "MLSD"]
    read_at = {what[5:]: t for t, what in _Recording.events if what.startswith("RETR")}
    # Both files were read before the second look (during the pause), ...
    assert read_at["late.csv"] < listings[-1] and read_at["b.csv"] < listings[-1]
    assert listings[-1] - started >= 1.0
    # ... but only the one the second look confirmed was committed (and deleted).
    assert {f.path: f.status for f in report.files} == {"/b.csv": "loaded",
                                                        "/late.csv": "unstable"}  # fmt: skip
    assert 0 < report.stable_wait_seconds <= listings[-1] - started + 1  # they waited for it
    assert report.deleted == ["/b.csv"]
    assert "/late.csv" not in ledger(pg_conn, source)
    assert _ids(pg_conn, source) == list(range(1, 11))
    assert (server.root / "late.csv").exists()

    report = ingest_source(ftp, pg_resource, source)  # stable now: loaded with its new line
    assert report.rows_loaded == 6 and report.deleted == ["/late.csv"]
    assert _ids(pg_conn, source) == [*range(1, 16), 999]


def test_a_young_file_waits_for_the_second_look(ftp_server, pg_resource, pg_conn, make_source):
    ftp = make_ftp_resource(ftp_server)
    source = make_source("young_par", min_age_seconds=30, stable_seconds=0.3, parallel_files=2)
    write_file(ftp_server.root, "old.csv", _csv(1, 3))
    write_file(ftp_server.root, "new.csv", _csv(4, 6), age_seconds=0)
    report = ingest_source(ftp, pg_resource, source)
    assert {f.path: f.status for f in report.files} == {"/new.csv": "too_young",
                                                        "/old.csv": "loaded"}  # fmt: skip
    assert _ids(pg_conn, source) == [1, 2, 3]


def test_a_run_killed_while_files_load_in_parallel_leaves_whole_files_only(
    ftp_server, pg_resource, pg_conn, make_source
):
    ftp = make_ftp_resource(ftp_server, delete_after_sync="true")
    files = {f"f{n}.csv": (n * 100 + 1, n * 100 + 40) for n in range(6)}
    for name, (first, last) in files.items():
        write_file(ftp_server.root, name, _csv(first, last))
    source = make_source("par_crash", parallel_files=2, chunk_lines=10)
    # f0 (alone: it gives the new table its columns) takes COPYs 1-4; the child dies in the
    # 3rd COPY after that, with two files in flight.
    _run_child_until_killed(ftp, pg_resource, source, "mid_copy:7")
    expected = {f"/{n}": list(range(a, b + 1)) for n, (a, b) in files.items()}
    loaded = _ids_by_file(pg_conn, source)
    assert "/f0.csv" in loaded and len(loaded) < len(files)
    assert all(ids == expected[path] for path, ids in loaded.items())  # no half file
    assert all((ftp_server.root / p.lstrip("/")).exists() == (p not in loaded) for p in expected)

    report = ingest_source(ftp, pg_resource, source)
    assert report.rows_loaded == 40 * (len(files) - len(loaded))
    assert _ids_by_file(pg_conn, source) == expected
    assert list(ftp_server.root.iterdir()) == []


def test_schema_gate_orders_exclusive_files_after_earlier_ones() -> None:
    gate, order = SchemaGate(parallel=True), []
    for index in range(3):
        gate.started(index)
    in_shared = threading.Event()

    def shared(index: int) -> None:
        with gate.enter(index, exclusive=False, stopped=lambda: False):
            in_shared.set()
            time.sleep(0.2)
            order.append(index)
        gate.finished(index)

    def exclusive(index: int) -> None:
        with gate.enter(index, exclusive=True, stopped=lambda: False):
            order.append(index)
        gate.finished(index)

    threads = [threading.Thread(target=exclusive, args=(2,)), threading.Thread(target=shared,
               args=(1,)), threading.Thread(target=exclusive, args=(0,))]  # fmt: skip
    threads[1].start()
    in_shared.wait()
    threads[0].start()
    time.sleep(0.05)
    threads[2].start()
    for thread in threads:
        thread.join(timeout=5)
    assert order == [1, 0, 2]


def test_row_count_of_the_table_is_exact_without_a_count_after_the_run(
    ftp_server, pg_resource, pg_conn, make_source
):
    """Counted before the run's first commit (in a thread, meanwhile) plus the rows the run
    committed; rows written between runs by someone else are counted too."""
    ftp = make_ftp_resource(ftp_server)
    source = make_source("counted", parallel_files=2)
    write_file(ftp_server.root, "a.csv", _csv(1, 3))
    write_file(ftp_server.root, "b.csv", _csv(4, 5) + b"x;1,5\n")  # one reject
    assert ingest_source(ftp, pg_resource, source).table_rows == 5
    pg_conn.execute(
        f'INSERT INTO "{source.schema}"."{source.table_name}" (id, _source_file, _file_version,'
        " _line_number) VALUES (100, 'by hand', 1, 1)"
    )
    write_file(ftp_server.root, "c.csv", _csv(6, 9))
    assert ingest_source(ftp, pg_resource, source).table_rows == 10
    assert ingest_source(ftp, pg_resource, source).table_rows == 10  # nothing new


@pytest.mark.parametrize("delete", [True, False], ids=["deleting", "keeping"])
def test_a_file_is_durable_before_its_delete(ftp_server, pg_resource, pg_conn, make_source, delete):
    """With DELETE_AFTER_SYNC a file's commit waits for the WAL flush (the DELE follows it);
    without, it need not (the file stays on the server). Observed inside the file's own
    transaction by a trigger on the ledger row it writes."""
    ftp = make_ftp_resource(ftp_server, delete_after_sync=str(delete).lower())
    source = make_source("durable")
    write_file(ftp_server.root, "a.csv", _csv(1, 3))
    assert ingest_source(ftp, pg_resource, source).files_loaded == 1  # ledger table exists now
    seen = f"durable_seen_{'del' if delete else 'keep'}"
    pg_conn.execute(f"CREATE TABLE {seen} (n serial, path text, sync_commit text)")
    pg_conn.execute(
        f"CREATE FUNCTION {seen}_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" INSERT INTO public.{seen} (path, sync_commit)"
        " VALUES (NEW.path, current_setting('synchronous_commit'));"
        " RETURN NEW; END $$"
    )
    pg_conn.execute(
        f"CREATE TRIGGER {seen}_t AFTER INSERT OR UPDATE ON sync_meta.ftp_ledger"
        f" FOR EACH ROW EXECUTE FUNCTION {seen}_f()"
    )
    try:
        write_file(ftp_server.root, "b.csv", _csv(4, 6))
        report = ingest_source(ftp, pg_resource, source)
        assert report.files_loaded == 1
        # The first write of b's ledger row is the one in its loading transaction (a later
        # one marks it deleted, in a transaction of its own).
        settings = dict(
            pg_conn.execute(
                f"SELECT DISTINCT ON (path) path, sync_commit FROM {seen} ORDER BY path, n"
            ).fetchall()
        )
    finally:
        pg_conn.execute(f"DROP TRIGGER {seen}_t ON sync_meta.ftp_ledger")
        pg_conn.execute(f"DROP FUNCTION {seen}_f()")
        pg_conn.execute(f"DROP TABLE {seen}")
    assert settings["/b.csv"] == ("on" if delete else "off")
    assert (ftp_server.root / "b.csv").exists() != delete  # deleted only in the deleting run


def test_stable_looks_report_no_wait_when_nobody_waited() -> None:
    looks = StableLooks({"/a.csv": Snapshot(5, None)}, min_age_seconds=0)
    looks.settle(looks.first)
    assert looks.verdict("/a.csv") == Snapshot(5, None)
    assert looks.wait_seconds == 0.0


def test_stable_looks_measure_a_workers_wait_for_the_second_look() -> None:
    looks = StableLooks({"/a.csv": Snapshot(5, None)}, min_age_seconds=0)
    waiting = threading.Thread(target=looks.verdict, args=("/a.csv",))
    waiting.start()
    deadline = time.monotonic() + 30
    while looks._first_wait is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the worker is really waiting
    time.sleep(0.3)
    looks.settle(looks.first)
    waiting.join()
    assert 0.3 <= looks.wait_seconds < 30
