"""The FTP corpus: machine log CSV files (`;`-separated, decimal comma), some gzipped.

Every field is a pure function of (file number, line number), so a corpus of a given size is
always the same bytes; it is written once under benchmarks/results/ and reused while its
manifest matches. While writing, the exact aggregates a correct load must reproduce are
computed (row count, integer sums, sums of thousandths, per-value counts of the text columns)
and stored in the manifest; `corpus_check_sql` computes the same figures in PostgreSQL.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

CORPUS_VERSION = 1
HEADER = "ts;machine;sensor;value;counter;status"
SENSORS = ("Temperatur Öl", "Druck Hydraulik", "Drehzahl", "Spannung L1", "Durchfluß m³/h")
STATUSES = ("OK", "WARN", "STÖRUNG")
MACHINES = 40
BASE_EPOCH = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
# Old enough that any "still being uploaded?" age threshold considers the files complete.
FILE_MTIME = BASE_EPOCH
TEXT_COLUMNS = ("machine", "sensor", "status")


@dataclass(frozen=True)
class CorpusSpec:
    files: int
    lines: int
    gzip_every: int = 5  # every 5th file is gzipped

    def file_name(self, index: int) -> str:
        suffix = ".csv.gz" if self.gzip_every and index % self.gzip_every == 0 else ".csv"
        return f"machine_{index % MACHINES:02d}/log_{index:04d}{suffix}"

    @property
    def rows(self) -> int:
        return self.files * self.lines

    def key(self) -> str:
        return f"v{CORPUS_VERSION}_{self.files}x{self.lines}_gz{self.gzip_every}"


@dataclass
class Corpus:
    spec: CorpusSpec
    root: Path
    expected: dict[str, int]
    raw_bytes: int
    stored_bytes: int

    def paths(self) -> list[Path]:
        return [self.root / self.spec.file_name(i) for i in range(self.spec.files)]


def _value_thousandths(n: int) -> int:
    return (n * 7919) % 2_000_000 - 1_000_000


def _decimal_comma(thousandths: int) -> str:
    sign = "-" if thousandths < 0 else ""
    whole, frac = divmod(abs(thousandths), 1000)
    return f"{sign}{whole},{frac:03d}"


def _line(file_index: int, line_index: int, lines: int) -> tuple[str, dict[str, object]]:
    n = file_index * lines + line_index
    ts = datetime.fromtimestamp(BASE_EPOCH + n, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    fields = {
        "machine": f"M{file_index % MACHINES:03d}",
        "sensor": SENSORS[n % len(SENSORS)],
        "value": _value_thousandths(n),
        "counter": n,
        "status": STATUSES[(n // 7) % len(STATUSES)],
    }
    text = (
        f"{ts};{fields['machine']};{fields['sensor']};{_decimal_comma(fields['value'])};"  # type: ignore[arg-type]
        f"{n};{fields['status']}\n"
    )
    return text, fields


def _write_file(args: tuple[CorpusSpec, Path, int]) -> dict[str, object]:
    """Write one file; return its partial aggregates (merged by the caller)."""
    spec, root, index = args
    path = root / spec.file_name(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    value_sum = counter_sum = ts_sum = 0
    parts = [HEADER + "\n"]
    for i in range(spec.lines):
        text, fields = _line(index, i, spec.lines)
        parts.append(text)
        value_sum += fields["value"]  # type: ignore[operator]
        counter_sum += fields["counter"]  # type: ignore[operator]
        ts_sum += BASE_EPOCH + fields["counter"]  # type: ignore[operator]
        for column in TEXT_COLUMNS:
            counts[f"{column}={fields[column]}"] += 1
    data = "".join(parts).encode("utf-8")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:  # type: ignore[operator]
        fh.write(data)
    os.utime(path, (FILE_MTIME, FILE_MTIME))
    return {
        "counts": counts,
        "value_thousandths": value_sum,
        "counter": counter_sum,
        "ts_epoch": ts_sum,
        "raw_bytes": len(data),
        "stored_bytes": path.stat().st_size,
    }


def md5_60(text: str) -> int:
    """The first 60 bits of MD5(text) as an integer, as `corpus_check_sql` computes them."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:15], 16)


def _expected(spec: CorpusSpec, parts: list[dict[str, object]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part["counts"])  # type: ignore[arg-type]
    expected = {
        "rows": spec.rows,
        "value_thousandths": sum(p["value_thousandths"] for p in parts),  # type: ignore[misc]
        "counter": sum(p["counter"] for p in parts),  # type: ignore[misc]
        "ts_epoch": sum(p["ts_epoch"] for p in parts),  # type: ignore[misc]
    }
    for column in TEXT_COLUMNS:
        expected[f"{column}_md5"] = sum(
            count * md5_60(key.split("=", 1)[1])
            for key, count in counts.items()
            if key.startswith(f"{column}=")
        )
    return expected


def build_corpus(spec: CorpusSpec, base_dir: Path, workers: int = 2) -> Corpus:
    """The corpus under `base_dir/<key>/files`, written unless a matching manifest exists."""
    home = base_dir / spec.key()
    manifest = home / "manifest.json"
    root = home / "files"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return Corpus(spec, root, data["expected"], data["raw_bytes"], data["stored_bytes"])
    shutil.rmtree(home, ignore_errors=True)
    root.mkdir(parents=True)
    jobs = [(spec, root, i) for i in range(spec.files)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_write_file, jobs, chunksize=max(1, spec.files // (4 * workers))))
    raw = sum(p["raw_bytes"] for p in parts)  # type: ignore[misc]
    stored = sum(p["stored_bytes"] for p in parts)  # type: ignore[misc]
    expected = _expected(spec, parts)
    manifest.write_text(
        json.dumps({"expected": expected, "raw_bytes": raw, "stored_bytes": stored}, indent=1),
        encoding="utf-8",
    )
    return Corpus(spec, root, expected, raw, stored)


# --- the same aggregates, computed by PostgreSQL over whatever types the load chose ------------


def _typed(column: str, data_type: str, as_number: str) -> sql.Composable:
    """`as_number` applied to the column, parsing the text form first when it stayed text."""
    c = sql.Identifier(column)
    if data_type in {"text", "character varying", "character"}:
        parsed = {
            "value": sql.SQL("replace({}, ',', '.')::numeric").format(c),
            "counter": sql.SQL("{}::bigint").format(c),
            "ts": sql.SQL("{}::timestamp").format(c),
        }[column]
        return sql.SQL(as_number).format(parsed)
    return sql.SQL(as_number).format(c)


def corpus_check(conn: psycopg.Connection, schema: str, table: str) -> dict[str, int]:
    """The manifest's aggregates, computed over `schema.table` (columns found by name)."""
    conn.execute("SET TimeZone = 'UTC'")
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        ).fetchall()
    )
    if not types:
        return {"rows": -1}
    exprs: dict[str, sql.Composable] = {"rows": sql.SQL("count(*)")}
    if "value" in types:
        exprs["value_thousandths"] = _typed(
            "value", types["value"], "sum(round({} * 1000)::bigint)"
        )
    if "counter" in types:
        exprs["counter"] = _typed("counter", types["counter"], "sum({})")
    if "ts" in types:
        exprs["ts_epoch"] = _typed("ts", types["ts"], "sum(extract(epoch FROM {})::bigint)")
    for column in TEXT_COLUMNS:
        if column in types:
            exprs[f"{column}_md5"] = sql.SQL(
                "sum(('x' || left(md5({}::text), 15))::bit(60)::bigint)"
            ).format(sql.Identifier(column))
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(exprs.values()), sql.Identifier(schema, table)
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return {name: int(v or 0) for name, v in zip(exprs, row, strict=True)}
