"""Property-based fuzzing (hypothesis) of the FTP parsing and the COPY fast path.

Bounded for CI: derandomized (the same examples every run), no example database, a fixed
number of examples, no per-example deadline. Three properties:

1. The parsing functions raise nothing but the verdicts the loader handles: a per-file
   UnparsableFileError, a per-line RejectedLine, a per-value BadValue.
2. Through the real per-file path (real FTP server, real PostgreSQL), no input raises past the
   file: every file ends loaded, rejected or failed, with its lines accounted for.
3. Where the fast path (PostgreSQL parses the CSV) and the line path (Python parses, then COPY
   text) both accept a chunk, they load exactly the same rows; and whole files with quoted
   line breaks (UTF-8, cp1252, UTF-16) load the same rows chunk by chunk as the loader does
   it (fast path where it applies) and line by line only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import itertools
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from sync_assets.ftp import store
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.formats import (
    SAMPLE_BYTES,
    FileFormat,
    LineParser,
    RejectedLine,
    UnparsableFileError,
    detect_format,
    header_columns,
)
from sync_assets.ftp.ingest import ingest_source
from sync_assets.ftp.lines import (
    MAX_LINE_BYTES,
    LineReader,
    RawChunk,
    decode_chunk,
    reader_format,
)
from sync_assets.ftp.loader import FileLoader
from sync_assets.ftp.parallel import NeedsSchemaChangeError
from sync_assets.ftp.store import FileIdentity
from sync_assets.ftp.types import BadValue, converter_for, infer_type
from sync_assets_tests.conftest import make_ftp_resource, pg_admin_connect
from sync_assets_tests.ftp.conftest import ledger, write_file

pytestmark = pytest.mark.slow


def fuzz(examples: int) -> settings:
    """The fixed budget of one property: `examples` examples, the same ones every run."""
    return settings(FUZZ, max_examples=examples)


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
TYPES = ("bigint", "double precision", "boolean", "timestamp with time zone", "text")

# --- inputs -------------------------------------------------------------------------------------

TOKENS = ['"', '""', ";", ",", "\t", "|", "\\", "\\N", "\\.", " ", "\r", "\u2028", "\x00",
          "é", "ß", "€", "☃", "1", "-7", "+3", "1,5", "2.5", "1e3", "1e999", "-1e-999",
          "9223372036854775808", "١٢", "inf", "NaN", "-", "NULL", "true", "of", "yes",
          "2026-11-28 10:00:00", "28.11.2026 10:00", "2026/11/28", "0000-01-01",
          "9999-12-31 23:59:59-05:00", "2026-02-30", "Z", "+14:00", "{", "}", '{"a": 1}',
          "[1]", "x" * 70]  # fmt: skip


@st.composite
def text_lines(draw: st.DrawFn) -> str:
    """CSV-ish, JSON-ish or plain lines built from tokens that make parsers stumble."""
    count = draw(st.integers(0, 25))
    lines = ["".join(draw(st.lists(st.sampled_from(TOKENS), max_size=10))) for _ in range(count)]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    tail = draw(st.sampled_from(["", newline]))
    return newline.join(lines) + tail


@st.composite
def file_bytes(draw: st.DrawFn) -> bytes:
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    kind = draw(st.sampled_from(["text", "text", "binary", "mixed"]))
    if kind == "binary":
        return draw(st.binary(max_size=3000))
    data = draw(text_lines()).encode(encoding, errors="replace")
    if kind == "mixed":
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=50)) + data[cut:]
    return data


NAMES = st.sampled_from(["f.csv", "f.tsv", "f.jsonl", "f.log", "f.txt", "f.dat", "f.csv.gz"])
SOURCES = st.builds(
    SourceConfig,
    name=st.just("fuzz"),
    format=st.sampled_from(["auto", "csv", "tsv", "jsonl", "text"]),
    header=st.booleans(),
    skip_lines=st.integers(0, 2),
    delimiter=st.sampled_from([None, ";", ","]),
    decimal=st.sampled_from([None, ","]),
    regex=st.sampled_from([None, r"^(?P<a>\S+) (?P<b>.*)$"]),
)


# --- 1. the parsing functions raise only the verdicts the loader handles ------------------------


def _parse_everything(name: str, data: bytes, source: SourceConfig) -> None:
    file_fmt = detect_format(name, data[:SAMPLE_BYTES], source)
    fmt = reader_format(file_fmt)  # as the loader sees it (UTF-16 read as UTF-8)
    reader = LineReader(io.BytesIO(data), True, 0, source.skip_lines, source.header, file_fmt)
    parser = LineParser(fmt)
    for chunk in reader.chunks(fmt.encoding, 7):
        if reader.header is not None and fmt.kind == "csv" and not fmt.columns:
            fmt = FileFormat(**{**fmt.__dict__, "columns": header_columns(reader.header, ",")})
            parser = LineParser(fmt)
        values: list[str] = []
        for line in decode_chunk(chunk.raws, chunk.first_line, fmt.encoding, chunk.numbers):
            if line.text is None:
                continue
            try:
                parsed = parser.parse(line.text) if fmt.columns or fmt.kind != "csv" else {}
            except RejectedLine:
                continue
            values += [v for v in parsed.values() if v is not None]
        for pg_type, value in itertools.product(TYPES, values):
            with contextlib.suppress(BadValue):
                converter_for(pg_type, fmt.decimal)(value)
        infer_type(values, fmt.decimal)


@fuzz(400)
@given(name=NAMES, data=file_bytes(), source=SOURCES)
def test_parsing_raises_only_the_verdicts_the_loader_handles(name, data, source) -> None:
    with contextlib.suppress(UnparsableFileError):  # the whole file: recorded as failed
        _parse_everything(name, data, source)


def test_a_line_beyond_the_limit_is_a_file_verdict() -> None:
    data = b"a;b\n" + b"x" * (MAX_LINE_BYTES + 1)
    with pytest.raises(UnparsableFileError, match="longer than"):
        _parse_everything("f.csv", data, SourceConfig(name="fuzz"))


# --- 2. nothing raises past the per-file boundary (real FTP server, real PostgreSQL) ------------


@pytest.fixture
def fuzz_schema(pg_server, pg_dbname) -> Iterator[str]:
    schema = f"ftp_fuzz_{secrets.token_hex(3)}"
    yield schema
    with pg_admin_connect(pg_server, pg_dbname) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_no_input_raises_past_the_file(
    ftp_server_factory, pg_resource, pg_conn: psycopg.Connection, fuzz_schema
) -> None:
    server = ftp_server_factory(mlsd=True)
    ftp = make_ftp_resource(server)
    examples = itertools.count()

    @fuzz(60)
    @given(name=NAMES, data=file_bytes(), source=SOURCES)
    def one_file(name: str, data: bytes, source: SourceConfig) -> None:
        n = next(examples)
        if name.endswith(".gz") and n % 2:
            data = gzip.compress(data, mtime=0)  # half of the .gz files are really gzip
        write_file(server.root, f"e{n}/{name}", data)
        config = dataclasses.replace(
            source, name=f"fuzz_{n}", schema=fuzz_schema, directory=f"/e{n}",
            min_age_seconds=0, stable_seconds=0, final_line_seconds=0, retries=1,
        )  # fmt: skip
        report = ingest_source(ftp, pg_resource, config)  # must not raise
        [outcome] = report.files
        assert outcome.status in ("loaded", "rejected", "failed"), outcome
        assert outcome.lines_read == outcome.rows_loaded + outcome.rows_rejected
        entry = ledger(pg_conn, config)[f"/e{n}/{name}"]
        assert entry["status"] == outcome.status
        if outcome.status == "failed":
            assert entry["error"] and outcome.rows_loaded == 0

    one_file()


# --- 3. fast path and line path agree wherever both accept --------------------------------------


def _cell(pg_type: str, decimal: str, encoding: str, clean: bool) -> st.SearchStrategy[str]:
    """Values for a column of `pg_type`: well-formed ones, edge cases and near misses."""
    odd = st.sampled_from([" ", "x", "1.2.3", "١٢", "now", "inf", "nan", "Null", "- "])
    if pg_type == "bigint":
        good = st.integers(-(2**63), 2**63 - 1).map(str)
        near = st.sampled_from(["+5", " 12 ", "007", "9223372036854775808", "1e3", "1,5"])
    elif pg_type == "double precision":
        good = st.floats(allow_nan=False, allow_infinity=False).map(
            lambda f: repr(f).replace(".", decimal)
        )
        near = st.sampled_from([" 2,5 ", ".5", "5.", "1e999", "-1e-999", "-0", "1E5", "+.5e-3"])
    elif pg_type == "boolean":
        good = st.sampled_from(["true", "false", "t", "f", "1", "0", "yes", "no", "on", "off"])
        near = st.sampled_from([" TRUE ", "Y", "of", "o", "tr", "2", "maybe"])
    elif pg_type.startswith("timestamp"):
        good = st.datetimes().map(lambda d: d.isoformat(sep=" "))
        near = st.sampled_from(
            ["28.11.2026 10:00:00", "2026/11/28", "2026-11-28T10:00:00Z", "0000-01-01",
             "9999-12-31 23:59:59-05:00", "0001-01-01 00:00:00+14:00", "2026-02-30 00:00:00",
             "2026-11-28 25:00"]
        )  # fmt: skip
    else:
        good = st.text(
            st.characters(
                blacklist_characters='\x00\n\r;,\t|"', codec=encoding.removesuffix("-sig")
            )
        )
        near = st.sampled_from(["\\N", "\\.", "\\", "a\\tb", "€uro", "\u2028"])
    # NULL sentinels are well-formed in every column.
    good = st.one_of(good, good, good, st.sampled_from(["", "-", "NaN", "NULL", "n/a"]))
    # Half of the chunks have only well-formed values: many are accepted by both paths.
    return good if clean else st.one_of(good, good, good, near, odd)


@st.composite
def chunks(draw: st.DrawFn) -> tuple[str, str, str, list[str]]:
    delimiter, decimal = draw(st.sampled_from([(";", ","), (",", "."), ("\t", ","), ("|", ".")]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]))
    clean = draw(st.booleans())
    cells = [_cell(t, decimal, encoding, clean) for t in TYPES]
    rows = draw(st.lists(st.tuples(*cells), min_size=1, max_size=12))
    lines = [delimiter.join(row) for row in rows]
    return delimiter, decimal, encoding, lines


@pytest.fixture
def typed_table(pg_conn: psycopg.Connection, fuzz_schema: str) -> tuple[str, str]:
    table = "agree"
    store.ensure_meta_tables(pg_conn)
    store.ensure_target_table(pg_conn, fuzz_schema, table)
    with pg_conn.transaction(), pg_conn.cursor() as cur:
        for index, pg_type in enumerate(TYPES):
            store.add_column(cur, fuzz_schema, table, f"c{index}", pg_type)
    pg_conn.execute("SET TimeZone = 'Europe/Berlin'")  # as a source's session would
    pg_conn.execute("SET DateStyle = 'ISO, DMY'")
    return fuzz_schema, table


def _loaded(cur: psycopg.Cursor, schema: str, table: str, path: str) -> list[tuple]:
    columns = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(f"c{i}")) for i in range(len(TYPES))
    )
    cur.execute(
        sql.SQL("SELECT _line_number, {} FROM {} WHERE _source_file = %s ORDER BY 1").format(
            columns, sql.Identifier(schema, table)
        ),
        (path,),
    )
    return cur.fetchall()


def test_fast_and_line_paths_agree_wherever_both_accept(
    pg_conn: psycopg.Connection, typed_table: tuple[str, str]
) -> None:
    schema, table = typed_table
    nulls = SourceConfig(name="fuzz").null_values
    agreed = []

    @fuzz(250)
    @given(example=chunks())
    # Found by the hostile corpus: sentinels never matched on the fast path of BOM files.
    @example(example=(";", ",", "utf-8-sig", ["1;NaN;t;2026-01-01 00:00:00;NULL"]))
    def agree(example: tuple[str, str, str, list[str]]) -> None:
        delimiter, decimal, encoding, lines = example
        try:
            # Lines from the middle of a file: a "utf-8-sig" file has its BOM at the start only.
            raws = [line.encode(encoding.removesuffix("-sig")) for line in lines]
        except UnicodeEncodeError:
            return  # not representable in this encoding: not a file anyone wrote
        columns = tuple(f"c{i}" for i in range(len(TYPES)))
        fmt = FileFormat("csv", encoding, delimiter, decimal, columns)
        with pg_conn.transaction(force_rollback=True), pg_conn.cursor() as cur:
            fast = FileLoader(
                cur, schema, table, fmt, _identity("fast"), nulls, **_cols(cur, typed_table)
            )
            assert fast.fast is not None
            fast_ok = fast.fast.load(RawChunk(1, raws))
            slow = FileLoader(
                cur, schema, table, fmt, _identity("slow"), nulls, **_cols(cur, typed_table)
            )
            try:
                slow.load_lines(decode_chunk(raws, 1, encoding))
                slow_ok = slow.counts.rows_rejected == 0
            except NeedsSchemaChangeError:  # a widening the line path would do: not accepted
                slow_ok = False
            if fast_ok and slow_ok:
                assert _loaded(cur, schema, table, "fast") == _loaded(cur, schema, table, "slow")
                agreed.append(len(lines))

    agree()
    # The property was really exercised, on chunks of several lines too.
    assert len(agreed) >= 40 and max(agreed) > 1, agreed


def _cols(cur: psycopg.Cursor, typed_table: tuple[str, str]) -> dict[str, object]:
    """The loader's keyword arguments: the table's columns, no DDL (the table is shared)."""
    return {"columns": store.table_columns(cur, *typed_table), "ddl_allowed": False}


def _identity(path: str) -> FileIdentity:
    return FileIdentity("fuzz", path, 1, None, "fuzz-run")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (3, "now"),
        (3, "epoch"),
        (3, "-infinity"),
        (3, "Nov 28 2026"),
        (3, "2026-11-28 10:00 Europe/Berlin"),
        (1, "Infinity"),
        (1, "-inf"),
    ],
)
def test_postgres_only_forms_go_line_by_line_and_are_rejects(
    pg_conn: psycopg.Connection, typed_table: tuple[str, str], column: int, value: str
) -> None:
    """PostgreSQL would read these (the load time for `now`!); the line path refuses them,
    so the fast path leaves such a chunk to it, whether or not a sentinel is in the chunk."""
    schema, table = typed_table
    fields = ["1", "2,5", "t", "2026-11-28 10:00:00", "x"]
    fields[column] = value
    fmt = FileFormat("csv", "utf-8", ";", ",", tuple(f"c{i}" for i in range(len(TYPES))))
    nulls = SourceConfig(name="fuzz").null_values
    for other in ("x", "-"):  # without and with a NULL sentinel in the chunk
        raws = [";".join(fields).encode(), f"2;3;f;2026-11-28 10:00:00;{other}".encode()]
        with pg_conn.transaction(force_rollback=True), pg_conn.cursor() as cur:
            loader = FileLoader(
                cur, schema, table, fmt, _identity("f"), nulls, **_cols(cur, typed_table)
            )
            assert loader.fast is not None and not loader.fast.load(RawChunk(1, raws))
            loader.load_chunk(RawChunk(1, raws))
            assert (loader.counts.rows_loaded, loader.counts.rows_rejected) == (1, 1)


# --- 3b. whole files with multi-line records: the loader's choice vs the line path only --------

QUOTED_TEXTS = ['"a\nb"', '"x\r\ny"', '"say ""hi"""', '"\n"', '""', '"two\n\nblank"']


@st.composite
def multiline_files(draw: st.DrawFn) -> tuple[str, str, str, str, list[int]]:
    """CSV text whose text column is sometimes quoted with line breaks, doubled quotes or the
    delimiter; and each record's first line number."""
    delimiter, decimal = draw(st.sampled_from([(";", ","), (",", "."), ("\t", ",")]))
    encoding = draw(st.sampled_from(["utf-8", "cp1252", "utf-16-le", "utf-16-be"]))
    chars = "utf-8" if encoding.startswith("utf-16") else encoding
    cells = [_cell(t, decimal, chars, clean=True) for t in TYPES]
    quoted = st.sampled_from([*QUOTED_TEXTS, f'"a{delimiter}b"'])
    rows = draw(
        st.lists(st.tuples(*cells[:4], st.one_of(cells[4], quoted)), min_size=1, max_size=14)
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    records = [delimiter.join(row).replace("\n", newline) for row in rows]
    numbers, line = [], 1
    for record in records:
        numbers.append(line)
        line += record.count(newline) + 1
    return delimiter, decimal, encoding, newline.join(records) + newline, numbers


def test_whole_files_with_multiline_records_load_the_same_rows_on_both_paths(
    pg_conn: psycopg.Connection, typed_table: tuple[str, str]
) -> None:
    fast_chunks = []

    @fuzz(60)
    @given(example=multiline_files())
    def same_rows(example: tuple[str, str, str, str, list[int]]) -> None:
        schema, table = typed_table
        nulls = SourceConfig(name="fuzz").null_values
        delimiter, decimal, encoding, text, numbers = example
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError:
            return
        columns = tuple(f"c{i}" for i in range(len(TYPES)))
        fmt = FileFormat("csv", encoding, delimiter, decimal, columns)
        read = reader_format(fmt)

        def chunks() -> Iterator[RawChunk]:
            return LineReader(io.BytesIO(data), True, 0, 0, False, fmt).chunks(read.encoding, 3)

        with pg_conn.transaction(force_rollback=True), pg_conn.cursor() as cur:
            both = FileLoader(
                cur, schema, table, read, _identity("both"), nulls, **_cols(cur, typed_table)
            )
            slow = FileLoader(
                cur, schema, table, read, _identity("slow"), nulls, **_cols(cur, typed_table)
            )
            try:
                for chunk in chunks():
                    both.load_chunk(chunk)
                for chunk in chunks():
                    lines = decode_chunk(chunk.raws, chunk.first_line, read.encoding, chunk.numbers)
                    slow.load_lines(lines)
            except NeedsSchemaChangeError:  # a widening: not what this property is about
                return
            loaded = _loaded(cur, schema, table, "both")
            assert loaded == _loaded(cur, schema, table, "slow")
            counts = (both.counts.rows_loaded, both.counts.rows_rejected, both.counts.lines_read)
            assert counts == (slow.counts.rows_loaded, slow.counts.rows_rejected, len(numbers))
            if not both.counts.rows_rejected:
                assert [row[0] for row in loaded] == numbers
            fast_chunks.append(both.counts.fast_chunks)

    same_rows()
    # Both the fast path (chunks without quotes) and the line path were really exercised.
    assert sum(1 for n in fast_chunks if n) >= 10, fast_chunks
