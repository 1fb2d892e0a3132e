"""UTF-16 vs UTF-8 FTP loads: `python -m benchmarks.encodings [FILES=4] [LINES=50000]`.

The same CSV (`;`, decimal comma) as UTF-8 and as UTF-16 LE with BOM, loaded by `ingest_source`
through a local pyftpdlib server into a throwaway PostgreSQL database (127.0.0.1:5432, user
postgres), three rounds alternating: UTF-8; UTF-16 transcoded to UTF-8 as read (what the
project does); UTF-16 with the COPY fast path declined (the alternative it did not choose).
Prints each run and the medians (docs/ftp.md, "Encodings and quoted fields").
"""

from __future__ import annotations

import codecs
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.ftp import fastpath
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.ingest import ingest_source
from sync_assets.resources import FTPResource, PostgresResource

ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
KINDS = (("utf-8", "utf8", False), ("utf-16 transcoded", "utf16", False))
KINDS += (("utf-16 line path only", "utf16", True),)


def write_corpus(root: Path, files: int, lines: int) -> None:
    body = "ts;machine;temp;count\n" + "".join(
        f"2026-11-28 10:{i // 60 % 60:02d}:{i % 60:02d};Presse {i % 7};{i % 1000},{i % 10};{i}\n"
        for i in range(lines)
    )
    for folder, data in (
        ("utf8", body.encode()),
        ("utf16", codecs.BOM_UTF16_LE + body.encode("utf-16-le")),
    ):
        for index in range(files):
            path = root / folder / f"f{index}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (time.time() - 3600,) * 2)


def main(files: int = 4, lines: int = 50_000) -> None:
    database = "sa_bench_enc_" + secrets.token_hex(3)
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    root = Path(tempfile.mkdtemp(prefix="sa_bench_enc_"))
    write_corpus(root, files, lines)
    server = start_ftp_server(root)
    ftp = FTPResource(
        host=server.host, port=str(server.port), user=server.user,
        password=server.password, directory="/",
    )  # fmt: skip
    pg = PostgresResource(host="127.0.0.1", port="5432", database=database, user="postgres")
    build = fastpath.ChunkRewriter.build
    times: dict[str, list[float]] = {}
    try:
        for round_ in range(3):
            for label, folder, declined in KINDS:
                fastpath.ChunkRewriter.build = (lambda *_a, **_k: None) if declined else build  # type: ignore[method-assign]
                name = f"b{round_}_{folder}_{int(declined)}"
                source = SourceConfig(
                    name=name, directory=f"/{folder}", min_age_seconds=0, stable_seconds=0
                )
                start = time.perf_counter()
                report = ingest_source(ftp, pg, source)
                elapsed = time.perf_counter() - start
                assert (report.rows_loaded, report.rows_rejected) == (files * lines, 0), report
                times.setdefault(label, []).append(elapsed)
                fast = sum(f.fast_chunks for f in report.files)
                print(f"{label}: {elapsed:.2f} s ({fast} fast chunks)", flush=True)
    finally:
        fastpath.ChunkRewriter.build = build  # type: ignore[method-assign]
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
    for label, runs in times.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{t:.2f}" for t in runs)
        print(f"{label}: {shown} s; median {median:.2f} s, {files * lines / median:,.0f} rows/s")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
