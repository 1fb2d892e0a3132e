"""The benchmark run: data, floors, the project's syncs, checks, report — in one process.

Order matters: the floors and full syncs read the pristine table; the incremental rounds then
change 1% per round; the no-change rounds follow; the FTP corpus comes last. Each full sync
and each FTP ingestion gets a fresh PostgreSQL database, so every repeat is a first load.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks import dataset, many_tables, verify
from benchmarks.corpus import Corpus, CorpusSpec, build_corpus, corpus_check
from benchmarks.deletes import (
    GROUPED_COUNT_LABEL,
    METHODS,
    DeleteBench,
    as_measurement,
    floor_measurement,
    timed_full_load,
)
from benchmarks.floors import FLOOR_SCHEMA, FTP_FLOOR_TABLE, FloorRunner
from benchmarks.ftp_like_floor import LikeForLikeFloor
from benchmarks.measure import Measurement
from benchmarks.peers import PGLOADER_SCHEMA, SLING_SCHEMA, PeerRunner, find_pgloader, find_sling
from benchmarks.profile import summarise
from benchmarks.project import (
    FTP_ASSET,
    FTP_SOURCE,
    FTP_TARGET_SCHEMA,
    MYSQL_ASSET,
    MYSQL_TARGET_SCHEMA,
    ProjectRunner,
    SyncResult,
)
from benchmarks.report import Report, Row
from benchmarks.servers import BenchServers
from sync_assets.mysql.config import TableOptions

OVERLAP = TableOptions(name=dataset.TABLE).overlap_seconds  # the engine's default window
# One incremental round models one interval of the MySQL schedule (MYSQL_CRON: every 15
# minutes): its changes are stamped across the interval, the last round's ending now. The
# overlap window then re-reads what the previous interval wrote in its last OVERLAP seconds,
# as in production; rounds stamped seconds apart would re-read every earlier round.
SCHEDULE_INTERVAL = 15 * 60
TIMESTAMP_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class AssetMissingError(RuntimeError):
    """The project defines no such asset yet: that part cannot be measured."""


@dataclass
class Options:
    rows: int
    files: int
    lines: int
    gzip_every: int
    repeats: int
    ftp_repeats: int
    mysql_db: str
    parts: frozenset[str]  # of: floors, full, incremental, peers, deletes, ftp, tables
    results_dir: Path = RESULTS_DIR
    keep: bool = False
    py_spy: str | None = None  # set: one extra sync per kind runs under py-spy
    tables: int = 200  # the `tables` part: tables x table_rows (issue 18, target 4)
    table_rows: int = 1000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Suite:
    def __init__(self, opts: Options, servers: BenchServers) -> None:
        self.opts = opts
        self.servers = servers
        self.report = Report(args={k: str(v) for k, v in vars(opts).items()})
        self.work_dir = opts.results_dir / "work"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.project = ProjectRunner(servers, opts.mysql_db, self.work_dir)
        self.pg_dbs: list[str] = []
        self.peer_dbs: list[str] = []  # the peers' databases (kept across our full syncs)
        self.peers: PeerRunner | None = None
        self.sling_db = ""
        self.table_bytes = 0
        self.current_corpus: Corpus | None = None

    # --- plumbing --------------------------------------------------------------------------

    def new_pg_db(self, label: str) -> str:
        name = self.servers.create_pg_database(label)
        self.pg_dbs.append(name)
        return name

    def drop_pg_dbs(self) -> None:
        for name in self.pg_dbs:
            self.servers.drop_pg_database(name)
        self.pg_dbs = []

    def repeat(
        self, row: Row, action: Callable[[int], Measurement], times: int | None = None
    ) -> None:
        times = times or self.opts.repeats
        for i in range(times):
            m = action(i)
            row.samples.append(m)
            log(f"{row.label}: {m.wall:.2f}s (run {i + 1}/{times})")

    def checked_sync(self, result: SyncResult, what: str) -> Measurement:
        if result.report.get("missing"):
            raise AssetMissingError(f"{what}: no asset {result.report['missing']} in the project")
        if not result.ok:
            raise RuntimeError(f"{what} failed:\n{result.failure_text()}")
        m = result.measurement
        m.extra = {
            "launch_to_definitions": result.since_launch("definitions_built"),
            "launch_to_run_start": result.since_launch("first_RUN_START"),
            "launch_to_step_start": result.since_launch("first_STEP_START"),
            "launch_to_first_row": m.first_row,
            "launch_to_step_end": result.since_launch("last_STEP_SUCCESS"),
            "launch_to_runner_done": result.since_launch("finished"),
            "step_seconds": _step_seconds(result),
            "stable_wait_seconds": _metadata_sum(result, "stable_wait_seconds"),
            "metadata": result.report.get("materialized", {}),
        }
        return m

    def profile(self, kind: str, pg_db: str, asset: str) -> None:
        """One extra, unmeasured sync under py-spy; its summary goes to the results dir."""
        if not self.opts.py_spy:
            return
        raw = self.opts.results_dir / f"profile_{kind}.collapsed"
        result = self.project.profiled_materialize(pg_db, asset, self.opts.py_spy, raw)
        if not result.ok or not raw.exists():
            log(f"profile {kind}: failed ({result.measurement.stderr.strip()[-300:]})")
            return
        summary = self.opts.results_dir / f"profile_{kind}.txt"
        summary.write_text(summarise(raw) + "\n", encoding="utf-8")
        log(f"profile {kind}: {summary}")

    # --- the MySQL side --------------------------------------------------------------------

    def generate(self) -> None:
        with self.servers.mysql_connect() as conn:
            dataset.create_database(conn, self.opts.mysql_db)
            started = time.monotonic()
            dataset.generate(conn, self.opts.mysql_db, self.opts.rows)
        log(f"generated {self.opts.rows:,} rows in {time.monotonic() - started:.1f}s")

    def floors(self) -> None:
        db = self.new_pg_db("floor")
        floors = FloorRunner(self.servers, db, self.opts.mysql_db, self.work_dir)
        self.table_bytes = floors.dump_tsv()
        rows, size = self.opts.rows, self.table_bytes
        read = self.report.add(Row("mysql_read", "floor: mysql --quick --batch > /dev/null", rows,
                                   size))  # fmt: skip
        self.repeat(read, lambda _: floors.mysql_read())
        copy = self.report.add(Row("pg_copy", "floor: psql \\copy from TSV file", rows, size))
        self.repeat(copy, lambda _: floors.pg_copy_file())
        pipe = self.report.add(Row("raw_pipe", "floor: mysql --batch | psql \\copy", rows, size))
        self.repeat(pipe, lambda _: floors.raw_pipe())
        self.compare_table("raw pipe floor", db, FLOOR_SCHEMA)
        floors.tsv_path.unlink(missing_ok=True)

    def source_fingerprint(self) -> verify.Fingerprint:
        with self.servers.mysql_connect() as conn:
            return verify.mysql_fingerprint(
                conn, self.opts.mysql_db, dataset.TABLE, dataset.PRIMARY_KEY
            )

    def target_fingerprint(self, pg_db: str, schema: str) -> verify.Fingerprint:
        with self.servers.pg_connect(pg_db) as conn:
            return verify.pg_fingerprint(conn, schema, dataset.TABLE.lower(), dataset.PRIMARY_KEY)

    def compare_table(self, name: str, pg_db: str, schema: str = MYSQL_TARGET_SCHEMA) -> None:
        """Source and target fingerprints, computed by both servers at once."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            source = pool.submit(self.source_fingerprint)
            target = pool.submit(self.target_fingerprint, pg_db, schema)
            comparison = verify.compare(source.result(), target.result())
        self.report.check(name, comparison.ok, comparison.describe())
        log(f"check {name}: {'ok' if comparison.ok else 'FAIL'} ({comparison.describe()})")

    def full_syncs(self) -> str:
        """Full syncs into fresh databases; returns the last one, for the incremental rounds."""
        bytes_ = self.table_bytes or self.opts.rows * 162
        row = self.report.add(
            Row("full_sync", "sync_assets: full sync", self.opts.rows, bytes_, floor="raw_pipe")
        )
        last_db = ""

        def one(i: int) -> Measurement:
            nonlocal last_db
            if last_db:
                self.drop_pg_dbs()
            last_db = self.new_pg_db("full")
            return self.checked_sync(self.project.materialize(last_db, MYSQL_ASSET), "full sync")

        self.repeat(row, one)
        self.compare_table("full sync", last_db)
        last_db = self.operator_full_syncs(bytes_, last_db)
        self.peer_full_syncs()
        if self.opts.py_spy:
            profile_db = self.new_pg_db("profile")
            self.profile("full_sync", profile_db, MYSQL_ASSET)
            self.servers.drop_pg_database(profile_db)
            self.pg_dbs.remove(profile_db)
        return last_db

    def operator_full_syncs(self, bytes_: int, previous_db: str) -> str:
        """The same full sync through `dagster asset materialize` with the project's
        dagster.yaml (Dagster's storage in PostgreSQL): the operator's command, which the
        runner's rows approximate (no CLI import, an in-memory instance)."""
        row = self.report.add(Row("operator_full_sync", "dagster asset materialize, full sync",
                                  self.opts.rows, bytes_, floor="raw_pipe"))  # fmt: skip
        last_db = previous_db

        def one(i: int) -> Measurement:
            nonlocal last_db
            self.drop_pg_dbs()
            last_db = self.new_pg_db("operator")
            result = self.project.operator_materialize(last_db, MYSQL_ASSET)
            return self.checked_sync(result, "operator full sync")

        self.repeat(row, one)
        self.compare_table("operator full sync", last_db)
        return last_db

    def incremental_syncs(self, pg_db: str) -> None:
        """Each round changes a different 1% of the rows, then measures, each after a
        checkpoint, the asset, the incremental floors and Sling (in alternating order: the
        later ones find MariaDB's pages warm). The two floors that write have their own copy
        of the table."""
        floor_db, floors = self.floor_copy("incrfloor")
        exact_db, exact_floors = self.floor_copy("increxact")
        per_row = (self.table_bytes or self.opts.rows * 162) / self.opts.rows
        row = self.report.add(Row("incremental", "sync_assets: incremental, 1% rows changed",
                                  0, 0, floor="full_sync"))  # fmt: skip
        floor = self.report.add(Row("incremental_floor",
                                    "floor: changed rows, mysql | psql upsert", 0, 0))  # fmt: skip
        mariadb = self.report.add(Row("incremental_mariadb", "floor: MariaDB's part, window"
                                      " read + COUNT(*) in one snapshot", 0, 0))  # fmt: skip
        exact = self.report.add(Row("incremental_exact", "floor: exact incremental by hand,"
                                    " window + upsert + both counts", 0, 0))  # fmt: skip
        sling_row = None
        if self.sling_db:
            sling_row = self.report.add(Row("sling_incremental", "peer: Sling incremental, 1%",
                                            0, 0, floor="incremental"))  # fmt: skip
        for i in range(self.opts.repeats):
            watermark = self.cursor_maximum()  # what the synced copies hold before the change
            since, changed_rows = self.change_one_percent(i + 1)
            measures: dict[str, tuple[Row, Callable[[], Measurement]]] = {
                "floor": (floor, lambda since=since: floors.incremental(since)),
                "mariadb": (mariadb, lambda w=watermark: floors.mariadb_incremental(w, OVERLAP)),
                "exact": (exact, lambda w=watermark: exact_floors.exact_incremental(w, OVERLAP)),
                "sync": (row, lambda: self.checked_sync(
                    self.project.materialize(pg_db, MYSQL_ASSET), "incremental sync")),
            }  # fmt: skip
            if sling_row is not None and self.peers is not None:
                measures["sling"] = (sling_row, lambda: self.peers.sling_run(self.sling_db, True))
            order = list(measures) if i % 2 == 0 else list(reversed(measures))
            for what in order:
                target, action = measures[what]
                self.checkpoint()
                target.samples.append(action())
                log(f"{target.label}: {target.samples[-1].wall:.2f}s (round {i + 1})")
            for r in (row, floor, mariadb, exact, sling_row):
                if r is not None:
                    r.rows, r.data_bytes = changed_rows, int(changed_rows * per_row)
        self.compare_table("incremental floor (1%)", floor_db, FLOOR_SCHEMA)
        self.compare_table("exact incremental floor (1%)", exact_db, FLOOR_SCHEMA)
        if self.sling_db:
            self.compare_table("peer: Sling incremental (1%)", self.sling_db, SLING_SCHEMA)
        self.compare_table("incremental sync (1%)", pg_db)
        idle = self.report.add(Row("no_change", "sync_assets: incremental, no change",
                                   0, 0, floor="full_sync"))  # fmt: skip
        self.repeat(idle, lambda _: self.checked_sync(
            self.project.materialize(pg_db, MYSQL_ASSET), "no-change sync"))  # fmt: skip
        idle_mariadb = self.report.add(Row("no_change_mariadb", "floor: MariaDB's part of a"
                                           " no-change run, one snapshot", 0, 0))  # fmt: skip
        watermark = self.cursor_maximum()
        self.repeat(idle_mariadb, lambda _: floors.mariadb_incremental(watermark, OVERLAP))
        idle_exact = self.report.add(Row("no_change_exact", "floor: exact no-change run by hand,"
                                         " window + upsert + both counts", 0, 0))  # fmt: skip
        self.repeat(idle_exact, lambda _: exact_floors.exact_incremental(watermark, OVERLAP))
        if self.sling_db and self.peers is not None:
            peers, sling_db = self.peers, self.sling_db
            idle_sling = self.report.add(Row("sling_no_change", "peer: Sling, no change", 0, 0,
                                             floor="no_change"))  # fmt: skip
            self.repeat(idle_sling, lambda _: peers.sling_run(sling_db, True))
        cli = self.report.add(Row("cli_no_change", "dagster asset materialize CLI, no change",
                                  0, 0, floor="no_change"))  # fmt: skip
        cli.samples.append(self.checked_sync(self.project.cli_materialize(pg_db, MYSQL_ASSET),
                                             "CLI no-change sync"))  # fmt: skip
        self.compare_table("no-change sync", pg_db)
        if self.opts.py_spy:  # last: its change would turn the no-change runs into incrementals
            with self.servers.mysql_connect() as conn:
                dataset.change_one_percent(conn, self.opts.mysql_db, self.opts.repeats + 1)
            self.profile("incremental", pg_db, MYSQL_ASSET)
            self.compare_table("profiled incremental sync", pg_db)

    def floor_copy(self, label: str) -> tuple[str, FloorRunner]:
        """A new database holding a floor's own copy of the unchanged table (loaded by the raw
        pipe, untimed), and the floors' runner on it."""
        pg_db = self.new_pg_db(label)
        runner = FloorRunner(self.servers, pg_db, self.opts.mysql_db, self.work_dir)
        runner.raw_pipe()
        return pg_db, runner

    def cursor_maximum(self) -> str:
        """The cursor column's maximum in MariaDB (the watermark of a copy synced now)."""
        with self.servers.mysql_connect(self.opts.mysql_db) as conn, conn.cursor() as cur:
            column, table = dataset.UPDATE_COLUMN, dataset.TABLE
            cur.execute(f"SELECT CAST(MAX(`{column}`) AS CHAR) FROM `{table}`")
            (value,) = cur.fetchone() or ("",)
        if not TIMESTAMP_TEXT.match(value or ""):
            raise RuntimeError(f"unexpected cursor maximum from MariaDB: {value!r}")
        return value

    def change_one_percent(self, round_number: int) -> tuple[str, int]:
        """Change a round's 1% of the rows, stamped across its schedule interval (the last
        round's ends now); returns, in MySQL's clock, a second before the interval's earliest
        stamp (the "changed rows" floor reads from there), and the count."""
        ends_ago = (self.opts.repeats - round_number) * SCHEDULE_INTERVAL
        with self.servers.mysql_connect() as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT CAST(NOW() - INTERVAL %s SECOND AS CHAR)",
                            (ends_ago + SCHEDULE_INTERVAL,))  # fmt: skip
                (since,) = cur.fetchone() or ("",)
            changed = dataset.change_one_percent(
                conn, self.opts.mysql_db, round_number, ends_ago, SCHEDULE_INTERVAL
            ).updated
        if not TIMESTAMP_TEXT.fullmatch(since):
            raise RuntimeError(f"unexpected time from MariaDB: {since!r}")
        return since, changed

    def checkpoint(self) -> None:
        """A checkpoint before each incremental measurement: PostgreSQL then writes a full
        image of every page an update touches first, as it does for a sync every 15 minutes
        (checkpoint_timeout is 5), instead of depending on when the last checkpoint was."""
        try:
            with self.servers.pg_connect() as conn:
                conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            if not self.report.args.get("checkpoint"):
                self.report.args["checkpoint"] = "refused (not superuser): pages may be clean"
                log("CHECKPOINT refused: incremental figures depend on the server's checkpoints")

    # --- the FTP side ----------------------------------------------------------------------

    def corpus(self) -> Corpus:
        spec = CorpusSpec(self.opts.files, self.opts.lines, self.opts.gzip_every)
        started = time.monotonic()
        corpus = build_corpus(spec, self.opts.results_dir / "corpus")
        log(f"corpus {spec.key()} ready in {time.monotonic() - started:.1f}s")
        return corpus

    def ftp(self) -> None:
        corpus = self.current_corpus = self.corpus()
        rows, size = corpus.spec.rows, corpus.raw_bytes
        floor_db = self.new_pg_db("ftpfloor")
        floors = FloorRunner(self.servers, floor_db, self.opts.mysql_db, self.work_dir)
        floor = self.report.add(Row("ftp_floor", "floor: psql \\copy of the corpus", rows, size))
        self.repeat(floor, lambda _: floors.ftp_copy(corpus), self.opts.ftp_repeats)
        with self.servers.pg_connect(floor_db) as conn:
            self.corpus_verdict("ftp floor", corpus, corpus_check(conn, FLOOR_SCHEMA,
                                                                   FTP_FLOOR_TABLE))  # fmt: skip
        row = self.report.add(Row("ftp_sync", "sync_assets: FTP ingestion of the corpus", rows,
                                  size, floor="ftp_floor"))  # fmt: skip
        row.notes["stored_bytes"] = corpus.stored_bytes
        self.project.start_ftp(corpus.root)
        try:
            self.repeat(row, self.one_ftp_sync, self.opts.ftp_repeats)
            self.ftp_like_floor(corpus, self.pg_dbs[-1])
            self.drop_pg_dbs()
            self.profile("ftp_sync", self.new_pg_db("profile"), FTP_ASSET)
        finally:
            self.project.stop_ftp()

    def ftp_like_floor(self, corpus: Corpus, sync_db: str) -> None:
        """`psql \\copy` of the corpus into the sync's own table, as the sync writes it
        (benchmarks/ftp_like_floor.py), after the syncs: it clones their table."""
        floor = LikeForLikeFloor(self.servers, self.new_pg_db("ftplike"), self.work_dir)
        floor.prepare(corpus, sync_db, FTP_TARGET_SCHEMA, FTP_SOURCE)
        self.servers.drop_pg_database(sync_db)  # the syncs' 1.7 GB out of the floor's way
        self.pg_dbs.remove(sync_db)
        like = self.report.add(
            Row(
                "ftp_floor_like",
                "floor: psql \\copy like for like (the sync's table, provenance, commit per file)",
                corpus.spec.rows,
                corpus.raw_bytes,
                floor="ftp_floor",
            )
        )
        self.repeat(like, lambda _: floor.copy(), self.opts.ftp_repeats)
        with self.servers.pg_connect(floor.pg_db) as conn:
            actual = corpus_check(conn, FTP_TARGET_SCHEMA, FTP_SOURCE)
        self.corpus_verdict("ftp floor, like for like", corpus, actual)

    def one_ftp_sync(self, i: int) -> Measurement:
        """One ingestion into a fresh database (its ledger empty); the last one is checked."""
        self.drop_pg_dbs()
        db = self.new_pg_db("ftp")
        m = self.checked_sync(self.project.materialize(db, FTP_ASSET), "FTP ingestion")
        if i == self.opts.ftp_repeats - 1 and self.current_corpus is not None:
            with self.servers.pg_connect(db) as conn:
                actual = corpus_check(conn, FTP_TARGET_SCHEMA, FTP_SOURCE)
            self.corpus_verdict("ftp ingestion", self.current_corpus, actual)
        return m

    def corpus_verdict(self, name: str, corpus: Corpus, actual: dict[str, int]) -> None:
        check = verify.CorpusCheck(corpus.expected, actual)
        self.report.check(name, check.ok, check.describe())
        log(f"check {name}: {'ok' if check.ok else 'FAIL'} ({check.describe()})")

    # --- peers (benchmarks/peers.py) --------------------------------------------------------

    def new_peer_db(self, label: str) -> str:
        name = self.servers.create_pg_database(label)
        self.peer_dbs.append(name)
        return name

    def peer_full_syncs(self) -> None:
        """Sling's and pgloader's full loads of the same table, each into a fresh database,
        checked like ours; Sling's last copy is where its incremental rounds run."""
        if "peers" not in self.opts.parts:
            return
        peers_dir = self.opts.results_dir / "peers"
        peers = self.peers = PeerRunner(self.servers, self.opts.mysql_db, self.work_dir,
                                        find_sling(peers_dir, log), find_pgloader(log))  # fmt: skip
        bytes_ = self.table_bytes or self.opts.rows * 162
        if peers.sling:
            row = self.report.add(Row("sling_full", "peer: Sling full sync", self.opts.rows,
                                      bytes_, floor="raw_pipe"))  # fmt: skip

            def sling(_: int) -> Measurement:
                self.sling_db = self.new_peer_db("sling")
                return peers.sling_run(self.sling_db, incremental=False)

            self.repeat(row, sling)
            self.compare_table("peer: Sling full sync", self.sling_db, SLING_SCHEMA)
        if peers.pgloader:
            db = self.new_peer_db("pgloader")
            row = self.report.add(Row("pgloader_full", "peer: pgloader full sync", self.opts.rows,
                                      bytes_, floor="raw_pipe"))  # fmt: skip
            self.repeat(row, lambda _: peers.pgloader_run(db))
            self.compare_table("peer: pgloader full sync", db, PGLOADER_SCHEMA)

    def drop_peer_dbs(self) -> None:
        for name in self.peer_dbs:
            self.servers.drop_pg_database(name)
        self.peer_dbs = []

    def mysql_syncs(self) -> None:
        last_db = self.full_syncs()
        if "incremental" in self.opts.parts:
            self.incremental_syncs(last_db)
        if "deletes" in self.opts.parts:
            self.deletes(last_db)

    def deletes(self, pg_db: str | None = None) -> None:
        """The full key stream against the key ranges on the same change (benchmarks/deletes.py),
        on the last full sync's table, or on one loaded here (in-process) without one."""
        if pg_db is None:
            pg_db = self.new_pg_db("deletes")
            took = timed_full_load(self.servers, self.opts.mysql_db, pg_db, MYSQL_TARGET_SCHEMA)
            log(f"deletes: table loaded in-process in {took:.1f}s")
        bench = DeleteBench(self.servers, self.opts.mysql_db, pg_db, MYSQL_TARGET_SCHEMA, log)
        results = bench.run(self.opts.rows, self.opts.repeats)
        rows = {
            "keys": self.report.add(Row("deletes_keys", METHODS["keys"], self.opts.rows, 0)),
            "auto": self.report.add(Row("deletes_ranges", METHODS["auto"], self.opts.rows, 0,
                                        floor="deletes_keys")),
        }  # fmt: skip
        for method, reports in results.items():
            rows[method].samples.extend(as_measurement(r) for r in reports)
        grouped = self.report.add(Row("deletes_grouped_count", GROUPED_COUNT_LABEL,
                                      self.opts.rows, 0, floor="deletes_keys"))  # fmt: skip
        grouped.samples.extend(floor_measurement(s) for s in bench.grouped_counts)
        self.compare_table("after the deletes runs", pg_db)

    def many_tables(self) -> None:
        """`mysql_sync_job` over many small tables as a run worker executes it (the runs of
        benchmarks/many_tables.py): one table alone, then all of them; every table checked."""
        n, rows = self.opts.tables, self.opts.table_rows
        found, measured = many_tables.measure(
            self.servers, f"{self.opts.mysql_db}_many", n, rows, {}
        )
        one = self.report.add(Row("many_tables_one", f"{many_tables.JOB}, 1 table of {n}", rows, 0))
        one.samples.append(measured["one table"])
        for key, run in (("many_tables", "first load"), ("many_tables_no_change", "no change")):
            label = f"{many_tables.JOB}, {n} tables x {rows:,} rows, {run}"
            row = self.report.add(Row(key, label, n * rows, 0, floor="many_tables_one"))
            row.samples.append(measured[run])
        self.report.rows["many_tables"].notes.update(
            per_table_overhead_s=round(found.per_table_overhead_s, 3),
            per_table_client_cpu_s=round(found.per_table_cpu_s, 3),
            steps=found.run("first load").steps,
            tables=n,
            table_rows=rows,
        )
        detail = f"{found.exact_tables} of {n} tables value-exact"
        self.report.check(
            "many tables", found.exact_tables == n, "; ".join([detail, *found.mismatches])
        )

    def guarded(self, name: str, part: Callable[[], None]) -> None:
        """Run one part; a missing asset fails the run's verdict but not the other parts."""
        try:
            part()
        except AssetMissingError as exc:
            self.report.check(f"{name} measured", False, str(exc))
            log(f"not measured: {exc}")

    # --- the whole run ---------------------------------------------------------------------

    def run(self) -> Report:
        parts = self.opts.parts
        try:
            if parts & {"floors", "full", "incremental", "deletes"}:
                self.generate()
            if "floors" in parts:
                self.floors()
            if parts & {"full", "incremental"}:
                self.guarded("mysql sync", self.mysql_syncs)
            elif "deletes" in parts:
                self.deletes()
            if "ftp" in parts:
                self.guarded("ftp ingestion", self.ftp)
            if "tables" in parts:
                self.guarded("many tables", self.many_tables)
        finally:
            self.project.stop_ftp()
            if not self.opts.keep:
                self.drop_pg_dbs()
                self.drop_peer_dbs()
                shutil.rmtree(self.work_dir, ignore_errors=True)
                with self.servers.mysql_connect() as conn:
                    dataset.drop_table(conn, self.opts.mysql_db)
        return self.report


def _metadata_sum(result: SyncResult, name: str) -> float | None:
    """`name` summed over the run's materialisations that report it (None if none does)."""
    values = [
        float(meta[name])
        for meta in result.report.get("materialized", {}).values()
        if isinstance(meta.get(name), int | float)
    ]
    return sum(values) if values else None


def _step_seconds(result: SyncResult) -> float | None:
    phases = result.report.get("phases", {})
    start = phases.get("first_STEP_START")
    end = phases.get("last_STEP_SUCCESS") or phases.get("last_STEP_FAILURE")
    return None if start is None or end is None else float(end) - float(start)
