"""The floors: what the stock client tools do with the same data, measured in the same run.

- `mysql --quick --batch` reading the table to /dev/null (the source's own speed);
- `psql \\copy` of the same rows from a TSV file on local disk (the target's own speed);
- the raw pipe `mysql --batch | psql \\copy` (the hand-made sync nobody can beat by much);
- `psql \\copy` of the FTP corpus from local disk (gzipped files through `gzip -dc`);
- the hand-made incremental: `mysql --batch` reading exactly the rows one change touched
  (the benchmark knows their timestamp) piped to `psql`, which copies them into a temporary
  table and upserts them in one transaction: what the servers must do at least for a change,
  with no overlap window, no counts and no delete detection;
- MariaDB's part of an exact incremental (and of a run with no change): the engine's
  statements in one snapshot (window read and `COUNT(*)`), by `mysql` to /dev/null;
- the exact incremental by hand: the same statements in one snapshot piped to `psql`, which
  upserts the window's rows (no new version for unchanged ones) and counts the target in one
  transaction, both counts compared: everything an exact run must do, by the stock tools.

Floor tables live in schema `bench_floor` of the run's PostgreSQL database, with the same
primary key the sync must create, so both end in the same state.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from benchmarks import dataset
from benchmarks.corpus import Corpus
from benchmarks.measure import Measurement, PgProbe, run_measured
from benchmarks.servers import BenchServers

FLOOR_SCHEMA = "bench_floor"
FTP_FLOOR_TABLE = "ftp_lines"
FLOOR_TABLE = f"{FLOOR_SCHEMA}.{dataset.TABLE}"

# The legacy table as a careful hand-written sync would type it in PostgreSQL.
FLOOR_TABLE_DDL = f"""
CREATE TABLE {FLOOR_TABLE} (
  id integer PRIMARY KEY,
  customer varchar(64) NOT NULL,
  city varchar(48) NOT NULL,
  amount numeric(12,2) NOT NULL,
  ordered_at timestamp NOT NULL,
  shipped_at timestamptz,
  is_paid boolean NOT NULL,
  status text NOT NULL,
  note text,
  weight double precision NOT NULL,
  quantity integer NOT NULL,
  last_update timestamptz NOT NULL
)
"""
FTP_FLOOR_DDL = f"""
CREATE TABLE {FLOOR_SCHEMA}.{FTP_FLOOR_TABLE} (
  ts timestamp, machine text, sensor text, value text, counter bigint, status text
)
"""
# `mysql --batch` prints NULL as the word NULL and escapes \t \n \\ as COPY text format does.
COPY_OPTIONS = "WITH (FORMAT text, NULL 'NULL')"


# Multi-range read for the changed rows, as the engine asks for: the floor gets the same help.
MRR_ON = "SET SESSION optimizer_switch = 'mrr=on,mrr_cost_based=off'"


def psql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def copy_source(path: Path) -> str:
    """What `\\copy ... FROM` reads a corpus file from: the file, or `gzip -dc` of it."""
    if path.name.endswith(".gz"):
        return "PROGRAM " + psql_literal("gzip -dc " + shlex.quote(str(path)))
    return psql_literal(str(path))


def upsert_script(only_changed: bool = False) -> str:
    """psql: copy stdin into a temporary table, then upsert it into the floor's table; with
    `only_changed`, rows equal to the stored ones are left alone (no new row version)."""
    others = [c for c in dataset.COLUMNS if c != dataset.PRIMARY_KEY]
    skip_equal = " WHERE (t.*) IS DISTINCT FROM (EXCLUDED.*)" if only_changed else ""
    return (
        f"CREATE TEMP TABLE changed (LIKE {FLOOR_TABLE}) ON COMMIT DROP;\n"
        f"\\copy changed FROM pstdin {COPY_OPTIONS}\n"
        f"INSERT INTO {FLOOR_TABLE} AS t SELECT * FROM changed"
        f" ON CONFLICT ({dataset.PRIMARY_KEY}) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
        + f"{skip_equal};\n"
    )


def checked(what: str, m: Measurement) -> Measurement:
    """`m`, or an error naming the floor when its command failed."""
    if m.returncode != 0:
        raise RuntimeError(f"floor {what!r} failed ({m.returncode}): {m.stderr.strip()[-500:]}")
    return m


class FloorRunner:
    """Runs the floor commands against one PostgreSQL database and one MariaDB database."""

    def __init__(self, servers: BenchServers, pg_db: str, mysql_db: str, work_dir: Path) -> None:
        self.servers = servers
        self.pg_db = pg_db
        self.mysql_db = mysql_db
        self.work_dir = work_dir
        self.tsv_path = work_dir / f"{dataset.TABLE}.tsv"
        self.env = servers.client_env()
        self.probe = PgProbe(servers.pg_conninfo(), pg_db)

    def _select_argv(self) -> list[str]:
        return self.servers.mysql_argv(
            self.mysql_db,
            "--quick",
            "--batch",
            "--skip-column-names",
            "-e",
            f"SELECT * FROM `{dataset.TABLE}` ORDER BY `{dataset.PRIMARY_KEY}`",
        )

    def _bash(self, script: str) -> list[str]:
        return ["bash", "-o", "pipefail", "-c", script]

    def reset_table(self, ddl: str, table: str) -> None:
        with self.servers.pg_connect(self.pg_db) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {FLOOR_SCHEMA}")
            conn.execute(f"DROP TABLE IF EXISTS {FLOOR_SCHEMA}.{table}")
            conn.execute(ddl)

    def dump_tsv(self) -> int:
        """Write the table as `mysql --batch` prints it (untimed); return its size in bytes."""
        with self.tsv_path.open("wb") as out:
            subprocess.run(self._select_argv(), stdout=out, env=self.env, check=True)
        return self.tsv_path.stat().st_size

    def mysql_read(self) -> Measurement:
        script = shlex.join(self._select_argv()) + " > /dev/null"
        return checked("mysql read", run_measured(self._bash(script), env=self.env))

    def _psql_copy(self, source: str) -> list[str]:
        command = f"\\copy {FLOOR_TABLE} FROM {source} {COPY_OPTIONS}"
        return self.servers.psql_argv(self.pg_db, "-c", command)

    def pg_copy_file(self) -> Measurement:
        self.reset_table(FLOOR_TABLE_DDL, dataset.TABLE)
        argv = self._psql_copy(psql_literal(str(self.tsv_path)))
        return checked("pg copy", run_measured(argv, env=self.env, probe=self.probe))

    def raw_pipe(self) -> Measurement:
        self.reset_table(FLOOR_TABLE_DDL, dataset.TABLE)
        script = f"{shlex.join(self._select_argv())} | {shlex.join(self._psql_copy('pstdin'))}"
        return checked("raw pipe", run_measured(self._bash(script), env=self.env,
                                                      probe=self.probe))  # fmt: skip

    def incremental(self, since: str) -> Measurement:
        """Upsert the rows whose `last_update` is at or after `since` (MySQL's own clock)."""
        script = self.work_dir / "incremental_floor.psql"
        script.write_text(upsert_script(), encoding="utf-8")
        select = self.servers.mysql_argv(
            self.mysql_db, "--quick", "--batch", "--skip-column-names", "-e",
            f"{MRR_ON}; SELECT * FROM `{dataset.TABLE}`"
            f" WHERE `{dataset.UPDATE_COLUMN}` >= '{since}'",
        )  # fmt: skip
        upsert = self.servers.psql_argv(self.pg_db, "-1", "-f", str(script))
        bash = self._bash(f"{shlex.join(select)} | {shlex.join(upsert)}")
        return checked("incremental", run_measured(bash, env=self.env, probe=self.probe))

    def _exact_window_argv(self, watermark: str, overlap_seconds: int) -> list[str]:
        """`mysql` sending, in one consistent snapshot, the cursor's maximum, the rows from
        `watermark - overlap` up to it, then `COUNT(*)` (the delete check needs the count of
        the same snapshot, so it follows the read on the same connection)."""
        table, cursor = f"`{dataset.TABLE}`", f"`{dataset.UPDATE_COLUMN}`"
        statements = [
            MRR_ON,
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            f"SELECT MAX({cursor}) INTO @upper FROM {table}",
            f"SELECT * FROM {table} WHERE {cursor} >= CAST('{watermark}' AS DATETIME(6))"
            f" - INTERVAL {int(overlap_seconds)} SECOND AND {cursor} <= @upper",
            f"SELECT COUNT(*) FROM {table}",
            "COMMIT",
        ]
        return self.servers.mysql_argv(
            self.mysql_db, "--quick", "--batch", "--skip-column-names", "-e", "; ".join(statements)
        )

    def mariadb_incremental(self, watermark: str, overlap_seconds: int) -> Measurement:
        """MariaDB's part of an exact incremental, the statements the engine sends, by the
        stock client to /dev/null (`_exact_window_argv`)."""
        argv = self._exact_window_argv(watermark, overlap_seconds)
        measured = run_measured(self._bash(shlex.join(argv) + " > /dev/null"), env=self.env)
        return checked("mariadb incremental", measured)

    def exact_incremental(self, watermark: str, overlap_seconds: int) -> Measurement:
        """An exact incremental by the stock tools: `mysql` sends, in one consistent snapshot,
        the overlap window's rows then `COUNT(*)`; awk splits the count off (the last line);
        `psql` copies the rows into a temporary table, upserts them (rows read again unchanged
        get no new version; ON CONFLICT still locks them) and counts the target, in one
        transaction; then the two counts are compared here. They must agree
        (the benchmark's change deletes nothing): the delete check every exact run makes."""
        script = self.work_dir / "exact_incremental_floor.psql"
        upsert_sql = upsert_script(only_changed=True)
        script.write_text(f"{upsert_sql}SELECT count(*) FROM {FLOOR_TABLE};\n", encoding="utf-8")
        count_file = self.work_dir / "exact_incremental_mariadb_count"
        select = self._exact_window_argv(watermark, overlap_seconds)
        split = ["awk", "-v", f"count_file={count_file}",
                 "NR > 1 { print held } { held = $0 } END { print held > count_file }"]  # fmt: skip
        upsert = self.servers.psql_argv(self.pg_db, "-1", "-A", "-t", "-f", str(script))
        pipe = " | ".join(shlex.join(argv) for argv in (select, split, upsert))
        bash = self._bash(f"{pipe} && cat {shlex.quote(str(count_file))}")
        measured = checked("exact incremental", run_measured(bash, env=self.env,
                                                             probe=self.probe))  # fmt: skip
        counts = measured.stdout.split()
        if len(counts) != 2 or counts[0] != counts[1]:
            raise RuntimeError(f"floor 'exact incremental': counts differ: {counts}")
        return measured

    def ftp_copy(self, corpus: Corpus) -> Measurement:
        self.reset_table(FTP_FLOOR_DDL, FTP_FLOOR_TABLE)
        script = self.work_dir / "ftp_floor.psql"
        options = "WITH (FORMAT csv, DELIMITER ';', HEADER true)"
        lines = []
        for path in corpus.paths():
            source = copy_source(path)
            lines.append(f"\\copy {FLOOR_SCHEMA}.{FTP_FLOOR_TABLE} FROM {source} {options}")
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        argv = self.servers.psql_argv(self.pg_db, "-1", "-f", str(script))
        measured = run_measured(argv, env=self.env, probe=self.probe, mysql_server=False)
        return checked("ftp copy", measured)
