"""The FTP floor like for like: `psql \\copy` of the corpus as the sync must write it.

The plain floor (`floors.FloorRunner.ftp_copy`) copies the six raw fields into a bare table:
no line numbers, the value left as text (COPY cannot read a decimal comma), no provenance.
The sync's table holds the same six columns typed plus the provenance the project guarantees
(`_line_number`, `_source_file`, `_file_version`, `_file_mtime`, `_run_id`, `_ingested_at`),
and every file is committed on its own (a file is deleted on the server only once its rows
are committed). This floor does exactly that much with the stock client:

- the corpus is converted once, untimed (as the MySQL side's TSV floor is dumped untimed):
  each line gets its line number first and its decimal comma turned into a point, the bytes
  the sync's COPY sends; gzipped files stay gzipped and go through `gzip -dc`;
- the table is the sync's own, cloned with `pg_dump --schema-only` from a database the sync
  loaded (its columns, types, defaults, indexes and the provenance functions);
- one `psql` runs, per file, a transaction that sets the four provenance settings and
  `\\copy`s the file in COPY text format.
"""

from __future__ import annotations

import gzip
import subprocess
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.corpus import FILE_MTIME, HEADER, Corpus
from benchmarks.floors import checked, copy_source, psql_literal
from benchmarks.measure import Measurement, PgProbe, run_measured
from benchmarks.servers import BenchServers
from sync_assets.core.pg import META_SCHEMA
from sync_assets.ftp.store import SETTINGS

VALUE_FIELD = HEADER.split(";").index("value")
DONE_MARKER = "converted.ok"


def convert_line(line: bytes, number: int) -> bytes:
    """One corpus line as the sync's COPY text data: its number, then the fields with the
    value's decimal comma as a point (the corpus has no quotes, tabs or backslashes)."""
    fields = line.rstrip(b"\n").split(b";")
    fields[VALUE_FIELD] = fields[VALUE_FIELD].replace(b",", b".")
    return b"%d;%s\n" % (number, b";".join(fields))


def _convert_file(args: tuple[Path, Path]) -> None:
    source, target = args
    target.parent.mkdir(parents=True, exist_ok=True)
    gz = source.name.endswith(".gz")
    with (gzip.open if gz else open)(source, "rb") as lines:  # type: ignore[operator]
        next(lines)  # the header (line 1)
        data = b"".join(convert_line(line, n) for n, line in enumerate(lines, start=2))
    with (gzip.open if gz else open)(target, "wb") as out:  # type: ignore[operator]
        out.write(data)


def converted_corpus(corpus: Corpus, workers: int = 2) -> list[tuple[str, Path]]:
    """(remote path, converted local file) per corpus file, converted once per corpus."""
    home = corpus.root.parent / "like_for_like"
    pairs = [(p, home / p.relative_to(corpus.root)) for p in corpus.paths()]
    if not (home / DONE_MARKER).exists():
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_convert_file, pairs, chunksize=max(1, len(pairs) // (4 * workers))))
        (home / DONE_MARKER).write_text("ok\n", encoding="utf-8")
    return [("/" + str(src.relative_to(corpus.root)), dst) for src, dst in pairs]


def clone_schema(servers: BenchServers, from_db: str, to_db: str, schemas: list[str]) -> None:
    """The sync's table and provenance functions, empty, in `to_db` (untimed)."""
    dump = ["pg_dump", "--schema-only", "--no-owner", "-h", servers.pg.host,
            "-p", str(servers.pg.port), "-U", servers.pg.user, "-d", from_db]  # fmt: skip
    for schema in schemas:
        dump += ["-n", schema]
    ddl = subprocess.run(dump, env=servers.client_env(), check=True, capture_output=True).stdout
    subprocess.run(servers.psql_argv(to_db), input=ddl, env=servers.client_env(), check=True,
                   capture_output=True)  # fmt: skip


def copy_script(files: list[tuple[str, Path]], schema: str, table: str) -> str:
    """The psql script: per file one transaction, its provenance settings, its `\\copy`."""
    columns = ", ".join(f'"{c}"' for c in ["_line_number", *HEADER.split(";")])
    mtime = datetime.fromtimestamp(FILE_MTIME, UTC).isoformat()
    run_id = str(uuid.uuid4())
    lines = ["SET TimeZone = 'UTC';"]
    for remote, local in files:
        values = {"_source_file": remote, "_file_version": "1", "_file_mtime": mtime,
                  "_run_id": run_id}  # fmt: skip
        settings = ", ".join(
            f"set_config({psql_literal(SETTINGS[column][0])}, {psql_literal(value)}, true)"
            for column, value in values.items()
        )
        lines += [
            "BEGIN;",
            f"SELECT {settings} \\g /dev/null",
            f'\\copy "{schema}"."{table}" ({columns}) FROM {copy_source(local)}'
            " WITH (FORMAT text, DELIMITER ';', NULL '', ENCODING 'UTF8')",
            "COMMIT;",
        ]
    return "\n".join(lines) + "\n"


class LikeForLikeFloor:
    """The like-for-like FTP floor in its own database, cloned from a database the sync loaded."""

    def __init__(self, servers: BenchServers, pg_db: str, work_dir: Path) -> None:
        self.servers = servers
        self.pg_db = pg_db
        self.script = work_dir / "ftp_like_floor.psql"
        self.probe = PgProbe(servers.pg_conninfo(), pg_db)

    def prepare(self, corpus: Corpus, sync_db: str, schema: str, table: str) -> None:
        clone_schema(self.servers, sync_db, self.pg_db, [schema, META_SCHEMA])
        files = converted_corpus(corpus)
        self.script.write_text(copy_script(files, schema, table), encoding="utf-8")
        self.target = f'"{schema}"."{table}"'

    def copy(self) -> Measurement:
        with self.servers.pg_connect(self.pg_db) as conn:
            conn.execute(f"TRUNCATE {self.target}")  # untimed: each repeat is a first load
        argv = self.servers.psql_argv(self.pg_db, "-f", str(self.script))
        m = run_measured(argv, env=self.servers.client_env(), probe=self.probe,
                         mysql_server=False)  # fmt: skip
        return checked("ftp copy like for like", m)
