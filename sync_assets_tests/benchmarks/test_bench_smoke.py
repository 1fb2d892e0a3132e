"""The benchmark harness itself, on tiny sizes: it runs end to end and its checks can fail.

Real servers only: MariaDB and PostgreSQL from the test bed, a pyftpdlib server started by the
harness. The whole module stays well under 30 seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import dataset, verify
from benchmarks.__main__ import main
from benchmarks.corpus import CorpusSpec, build_corpus, corpus_check
from benchmarks.floors import FLOOR_SCHEMA, FTP_FLOOR_TABLE, FloorRunner
from benchmarks.measure import _Sampler
from benchmarks.servers import BenchServers
from benchmarks.suite import SCHEDULE_INTERVAL
from sync_assets.devtools.servers import ServerInfo
from sync_assets.orchestration.schedules import MYSQL_CRON

SMOKE_ROWS = 2_000


@pytest.fixture
def bench_servers(
    pg_server: ServerInfo, mysql_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> BenchServers:
    """The harness pointed at the test bed's servers (the same variables a user would set)."""
    for prefix, server in (("BENCH_PG", pg_server), ("BENCH_MYSQL", mysql_server)):
        monkeypatch.setenv(f"{prefix}_HOST", server.host)
        monkeypatch.setenv(f"{prefix}_PORT", str(server.port))
        monkeypatch.setenv(f"{prefix}_USER", server.user)
        monkeypatch.setenv(f"{prefix}_PASSWORD", server.password)
    return BenchServers(pg_server, mysql_server)


@pytest.fixture
def floor_db(bench_servers: BenchServers) -> Iterator[str]:
    name = bench_servers.create_pg_database("smoke")
    yield name
    bench_servers.drop_pg_database(name)


def test_generated_table_is_deterministic_and_typical(
    bench_servers: BenchServers, source_db: str
) -> None:
    with bench_servers.mysql_connect(source_db) as conn:
        dataset.generate(conn, source_db, SMOKE_ROWS)
        first = verify.mysql_fingerprint(conn, source_db, dataset.TABLE, dataset.PRIMARY_KEY)
        dataset.generate(conn, source_db, SMOKE_ROWS)
        again = verify.mysql_fingerprint(conn, source_db, dataset.TABLE, dataset.PRIMARY_KEY)
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT SUM(note IS NULL), SUM(customer REGEXP '[^ -~]'),"
                f" AVG(LENGTH(CONCAT_WS(' ', {', '.join(dataset.COLUMNS)})))"
                f" FROM `{dataset.TABLE}`"
            )
            nulls, non_ascii, avg_bytes = cur.fetchone()
    assert first == again
    assert first.rows == SMOKE_ROWS and len(first.columns) == len(dataset.COLUMNS)
    assert nulls == SMOKE_ROWS // 4 and non_ascii > SMOKE_ROWS // 2
    assert 120 < float(avg_bytes) < 200  # "about 150 bytes a row"


def test_a_round_is_stamped_across_its_schedule_interval(
    bench_servers: BenchServers, source_db: str
) -> None:
    """A round's 1% lands across the interval ending `ago` seconds back, so the engine's
    overlap window re-reads only the previous interval's last minutes, as it does in
    production; the interval is the MySQL schedule's."""
    minutes = [int(m) for m in MYSQL_CRON.split()[0].split(",")]
    gaps = {(b - a) * 60 for a, b in zip(minutes, [*minutes[1:], minutes[0] + 60], strict=True)}
    assert gaps == {SCHEDULE_INTERVAL}
    ago, spread = 2 * SCHEDULE_INTERVAL, 7  # 20 rows here: a spread they wrap around
    with bench_servers.mysql_connect(source_db) as conn:
        dataset.generate(conn, source_db, SMOKE_ROWS)
        changed = dataset.change_one_percent(conn, source_db, 3, ago, spread)
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT `{dataset.UPDATE_COLUMN}`),"
                f" TIMESTAMPDIFF(SECOND, MIN(`{dataset.UPDATE_COLUMN}`), NOW()),"
                f" TIMESTAMPDIFF(SECOND, MAX(`{dataset.UPDATE_COLUMN}`), NOW())"
                f" FROM `{dataset.TABLE}` WHERE `note` = 'geändert in Runde 3'"
            )
            rows, stamps, oldest, newest = cur.fetchone()
    assert rows == changed.updated == SMOKE_ROWS // 100
    assert stamps == spread  # every second of the spread used, none outside it
    assert ago <= newest <= ago + 2 and oldest - newest == spread - 1


def test_verifier_accepts_the_raw_pipe_and_catches_one_changed_value(
    bench_servers: BenchServers, source_db: str, floor_db: str, tmp_path: Path
) -> None:
    with bench_servers.mysql_connect(source_db) as conn:
        dataset.generate(conn, source_db, SMOKE_ROWS)
        source = verify.mysql_fingerprint(conn, source_db, dataset.TABLE, dataset.PRIMARY_KEY)
    floors = FloorRunner(bench_servers, floor_db, source_db, tmp_path)
    assert floors.raw_pipe().returncode == 0

    def target() -> verify.Fingerprint:
        with bench_servers.pg_connect(floor_db) as pg:
            return verify.pg_fingerprint(pg, FLOOR_SCHEMA, dataset.TABLE, dataset.PRIMARY_KEY)

    assert verify.compare(source, target()).ok
    table = f"{FLOOR_SCHEMA}.{dataset.TABLE}"
    with bench_servers.pg_connect(floor_db) as pg:
        # One double off by one unit in the last place, two notes swapped between rows.
        pg.execute(f"UPDATE {table} SET weight = weight * (1 + 2.3e-16) WHERE id = 7")
        pg.execute(
            f"UPDATE {table} t SET note = s.note FROM {table} s"
            " WHERE (t.id, s.id) IN ((1, 2), (2, 1))"
        )
    comparison = verify.compare(source, target())
    assert not comparison.ok
    assert comparison.differing_columns == ["note", "weight"]


def test_corpus_check_matches_floor_load_and_catches_a_lost_line(
    bench_servers: BenchServers, source_db: str, floor_db: str, tmp_path: Path
) -> None:
    corpus = build_corpus(CorpusSpec(files=3, lines=500, gzip_every=2), tmp_path / "corpus")
    assert sorted(p.name for p in corpus.paths()) == [
        "log_0000.csv.gz",
        "log_0001.csv",
        "log_0002.csv.gz",
    ]
    floors = FloorRunner(bench_servers, floor_db, source_db, tmp_path)
    assert floors.ftp_copy(corpus).returncode == 0
    with bench_servers.pg_connect(floor_db) as pg:
        assert verify.CorpusCheck(corpus.expected, corpus_check(pg, FLOOR_SCHEMA,
                                                               FTP_FLOOR_TABLE)).ok  # fmt: skip
        pg.execute(f"DELETE FROM {FLOOR_SCHEMA}.{FTP_FLOOR_TABLE} WHERE counter = 700")
        lost = verify.CorpusCheck(corpus.expected, corpus_check(pg, FLOOR_SCHEMA, FTP_FLOOR_TABLE))
    assert not lost.ok and "rows: expected 1500 got 1499" in lost.describe()


@pytest.mark.slow
def test_whole_suite_runs_on_tiny_sizes(
    bench_servers: BenchServers, source_db: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "--rows",
        str(SMOKE_ROWS),
        "--files",
        "3",
        "--lines",
        "300",
        "--repeats",
        "1",
        "--only",
        "floors,full,incremental,deletes,ftp",
    ]  # peers: test_peers_* below
    code = main(["run", *args, "--mysql-db", source_db, "--results", str(tmp_path)])
    out = capsys.readouterr().out
    results = list(tmp_path.glob("bench_*.json"))
    assert code == 0, out
    assert len(results) == 1
    data = json.loads(results[0].read_text())
    keys = {row["key"] for row in data["rows"]}
    assert keys == {"mysql_read", "pg_copy", "raw_pipe", "full_sync", "operator_full_sync",
                    "incremental", "incremental_floor", "no_change", "cli_no_change",
                    "ftp_floor", "ftp_sync", "deletes_keys", "deletes_ranges",
                    "incremental_mariadb", "no_change_mariadb", "ftp_floor_like",
                    "incremental_exact", "no_change_exact", "deletes_grouped_count"}  # fmt: skip
    assert data["ok"] and all(check["ok"] for check in data["checks"].values())
    assert {"full sync", "incremental sync (1%)", "incremental floor (1%)",
            "exact incremental floor (1%)", "ftp ingestion", "after the deletes runs",
            "ftp floor, like for like"} <= set(data["checks"])  # fmt: skip
    # Each target's floor is judged alone; those of the parts run here are all measured.
    assert {v["key"] for v in data["floor_verdicts"]} >= {
        "full_vs_pipe", "operator_full_vs_pipe", "first_row_incremental", "deletes",
        "deletes_grouped", "ftp", "ftp_like"}  # fmt: skip
    assert "the floors behind them" in out
    # Both delete methods removed the same 100 rows (the harness checks it after each run).
    ranges = next(row for row in data["rows"] if row["key"] == "deletes_ranges")
    assert [s["extra"]["rows_deleted"] for s in ranges["samples"]] == [100]
    assert "key ranges" in " ".join(ranges["samples"][0]["extra"]["notes"])
    # The grouped-count floor ran once per round (it raises unless it counted every row),
    # over buckets as wide as the engine's own.
    grouped = next(row for row in data["rows"] if row["key"] == "deletes_grouped_count")
    assert len(grouped["samples"]) == 1 and grouped["median"]["wall"] > 0
    engine_note = " ".join(ranges["samples"][0]["extra"]["notes"])
    floor_extra = grouped["samples"][0]["extra"]
    assert f"buckets of {floor_extra['bucket_keys']} key values" in engine_note
    assert f"of {floor_extra['buckets']} buckets" in engine_note  # no bucket is empty here
    assert any("COUNT(*) per bucket" in line for line in data["floor_context"])
    # The hand-made incremental upserts exactly the changed rows, and says what share it is.
    hand = next(row for row in data["rows"] if row["key"] == "incremental_floor")
    assert hand["rows"] == SMOKE_ROWS // 100 and len(hand["samples"]) == 1
    assert any("hand-made incremental" in line for line in data["floor_context"])
    assert "[floor] hand-made incremental" in out
    # The exact one reads the window and compares both counts (it raises when they differ).
    exact = next(row for row in data["rows"] if row["key"] == "incremental_exact")
    assert len(exact["samples"]) == 1 and exact["median"]["wall"] > 0
    assert any("exact incremental by hand" in line for line in data["floor_context"])
    full = next(row for row in data["rows"] if row["key"] == "full_sync")
    assert full["median"]["peak_rss"] > 0 and full["median"]["cpu"] > 0
    assert full["median"]["first_row"] is not None
    assert data["ratios"]["full_sync"] > 0
    # The operator's command, its phases read back from the run it stored in PostgreSQL.
    operator = next(row for row in data["rows"] if row["key"] == "operator_full_sync")
    extra = operator["samples"][0]["extra"]
    assert 0 < extra["launch_to_run_start"] < extra["launch_to_step_start"]
    assert extra["step_seconds"] > 0  # (first row: too quick at this size for the probe)
    assert "operator full sync" in data["checks"]
    assert "sync_assets: full sync" in out
    # Every target of issue 6 is judged from the run's own figures (met or not at this size).
    judged = {t["target"].split(" <")[0].split(" >")[0].split(":")[0] for t in data["targets"]}
    assert judged == {"full sync", "incremental 1%", "no change", "peak RSS of a sync",
                      "FTP ingestion", "deletes by key ranges"}  # fmt: skip
    assert "targets (issue 6" in out
    assert not (tmp_path / "work").exists()  # scratch space cleaned up


def test_targets_are_judged_from_the_medians() -> None:
    from benchmarks.measure import Measurement
    from benchmarks.report import Report, Row

    def row(key: str, wall: float, step: float | None = None, rss_mb: int = 100) -> Row:
        extra = {} if step is None else {"step_seconds": step}
        sample = Measurement(wall, 1.0, rss_mb * 2**20, 1.0, None, 0, extra=extra)
        return Row(key, key, 1, 1, samples=[sample])

    report = Report(args={})
    for r in (row("raw_pipe", 2.0), row("full_sync", 3.0, step=2.0),
              row("incremental", 1.5, step=0.09, rss_mb=260), row("no_change", 1.4, step=0.5),
              row("ftp_floor", 6.0), row("ftp_sync", 13.0)):  # fmt: skip
        report.add(r)
    verdicts = {t["target"]: (round(t["value"], 3), t["met"]) for t in report.targets()}
    assert verdicts == {
        "full sync <= 1.8x the raw pipe": (1.5, True),
        "full sync <= 1.3x the raw pipe (stretch)": (1.5, False),
        "incremental 1% <= 5% of the full sync, wall (Dagster start-up included)": (0.5, False),
        "incremental 1% <= 5% of the full sync, step work (start-up excluded)": (0.045, True),
        "no change: < 2 s of step work": (0.5, True),
        "peak RSS of a sync < 250 MB": (260, False),
        "FTP ingestion >= 50% of psql \\copy's throughput": (0.462, False),
    }


def test_sizes_accept_the_documented_spellings() -> None:
    from benchmarks.__main__ import _size

    assert [_size(s) for s in ("100k", "1M", "5m", "2_000", "1.5M")] == [
        100_000, 1_000_000, 5_000_000, 2_000, 1_500_000,
    ]  # fmt: skip


def test_profile_summary_attributes_time_to_functions_and_lines(tmp_path: Path) -> None:
    from benchmarks.profile import summarise

    collapsed = tmp_path / "p.collapsed"
    main = "thread (1): MainThread;main (sync_assets/ftp/ingest.py:10)"
    collapsed.write_text(
        f"{main};rewrite (sync_assets/ftp/loader.py:5) 6\n"
        f"{main};rewrite (sync_assets/ftp/loader.py:7) 2\n"
        "thread (2): reader;wait (psycopg/connection.py:495) 2\n",
        encoding="utf-8",
    )
    text = summarise(collapsed)
    assert text.startswith("10 samples")
    assert " 80.0%  rewrite (sync_assets/ftp/loader.py)\n" in text  # lines of one function summed
    assert " 60.0%  rewrite (sync_assets/ftp/loader.py:5)\n" in text
    assert " 20.0%  wait (psycopg/connection.py)\n" in text
    inclusive = text.split("inclusive time of sync_assets functions:")[1]
    assert " 80.0%  main (sync_assets/ftp/ingest.py)" in inclusive
    assert "psycopg" not in inclusive


def test_ftp_rows_leave_mariadb_out_of_the_server_cpu(mysql_server: ServerInfo) -> None:
    """The FTP floor and ingestion never use MariaDB: its CPU (on a shared machine, other
    sessions' work) is not counted in their server CPU; the MySQL rows count it."""
    ftp_server_pid = os.getpid()  # any live process stands in for the FTP server
    with_mysql = _Sampler(os.getpid(), 0.0, None, [ftp_server_pid], mysql_server=True)
    without = _Sampler(os.getpid(), 0.0, None, [ftp_server_pid], mysql_server=False)
    assert without.server_pids == [ftp_server_pid]
    assert set(with_mysql.server_pids) > {ftp_server_pid}  # the test bed's MariaDB is found
