"""The fast path's byte rewriting (ftp/fastpath.py ChunkRewriter): a chunk's lines → COPY csv
data, or None when the chunk must go line by line. Pure: no server, no database."""

import pytest

from sync_assets.ftp.config import DEFAULT_NULLS
from sync_assets.ftp.fastpath import CACHED_LINE_NUMBERS, ChunkRewriter
from sync_assets.ftp.formats import FileFormat
from sync_assets.ftp.lines import RawChunk
from sync_assets.ftp.types import BIGINT, DOUBLE, TEXT, TIMESTAMP

TYPES = {"t": TIMESTAMP, "v": DOUBLE, "n": BIGINT, "m": TEXT}


def _rewriter(delimiter: str = ";", decimal: str = ",", encoding: str = "utf-8"):
    fmt = FileFormat("csv", encoding, delimiter, decimal, tuple(TYPES))
    rewriter = ChunkRewriter.build(fmt, DEFAULT_NULLS, TYPES)
    assert rewriter is not None
    return rewriter


def _data(raws: list[bytes], first: int = 1, **fmt: str) -> bytes | None:
    return _rewriter(**fmt).copy_data(RawChunk(first, raws))


def test_each_line_gets_its_number_and_decimal_commas_become_points_in_doubles_only() -> None:
    raws = [b"2026-01-01 10:00:00;1,5;7;a,b", b"2026-01-01 10:01:00;-2,25;8;c"]
    assert _data(raws, first=3) == (
        b"3;2026-01-01 10:00:00;1.5;7;a,b\n4;2026-01-01 10:01:00;-2.25;8;c\n"
    )


def test_no_rewrite_when_the_delimiter_is_a_comma() -> None:
    raws = [b"2026-01-01 10:00:00,1.5,7,x"]
    assert _data(raws, delimiter=",", decimal=".") == b"1,2026-01-01 10:00:00,1.5,7,x\n"


def test_null_sentinels_become_empty_fields_and_crlf_becomes_lf() -> None:
    raws = [b"2026-01-01 10:00:00;NaN;-;NULL\r", b";2,5;;N/A\r"]
    assert _data(raws) == b"1;2026-01-01 10:00:00;;;\n2;;2.5;;\n"


def test_the_sentinels_match_in_a_bom_file_too() -> None:
    assert _data([b"2026-01-01 10:00:00;NaN;1;x"], encoding="utf-8-sig") == (
        b"1;2026-01-01 10:00:00;;1;x\n"
    )


def test_numbers_beyond_the_cached_ones_are_formatted_per_chunk() -> None:
    first = CACHED_LINE_NUMBERS - 1
    raws = [b"2026-01-01 10:00:00;1,5;1;a", b"2026-01-01 10:00:01;2;2;b"]
    assert _data(raws, first=first) == (
        b"%d;2026-01-01 10:00:00;1.5;1;a\n%d;2026-01-01 10:00:01;2;2;b\n" % (first, first + 1)
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'2026-01-01 10:00:00;1;1;"quoted"', "quotes"),
        (b"2026-01-01 10:00:00;1;1;nul\x00", "a NUL"),
        (b"2026-01-01 10:00:00;1;1;stray\rcr", "a stray CR"),
        (b"2026-01-01 10:00:00;1;1", "a missing field"),
        (b"2026-01-01 10:00:00;1;1;x;y", "an extra field"),
        (b"", "a blank line"),
        (b"now;1;1;x", "a timestamp only PostgreSQL reads"),
        (b"2026-11-28 10:00 Europe/Berlin;1;1;x", "a zone name"),
        (b"2026-01-01 10:00:00;Infinity;1;x", "a double only PostgreSQL reads"),
    ],
)
def test_chunks_for_the_line_path(raw: bytes, why: str) -> None:
    good = b"2026-01-01 10:00:00;1,5;1;x"
    assert _data([good, raw]) is None, why
    assert _data([good, raw.replace(b"x", b"-")]) is None, f"{why}, with a NULL sentinel"


@pytest.mark.parametrize(
    ("delimiter", "encoding", "columns", "nulls"),
    [
        (";", "utf-16", ("a", "b"), DEFAULT_NULLS),  # no PostgreSQL client encoding
        ('"', "utf-8", ("a", "b"), DEFAULT_NULLS),
        ("ab", "utf-8", ("a", "b"), DEFAULT_NULLS),
        ("§", "utf-8", ("a", "b"), DEFAULT_NULLS),  # not ASCII
        (";", "utf-8", ("a",), DEFAULT_NULLS),  # one column
        (";", "utf-8", ("a", "b"), ("NaN",)),  # empty fields must not become NULL
    ],
)
def test_formats_the_fast_path_never_takes(delimiter, encoding, columns, nulls) -> None:
    fmt = FileFormat("csv", encoding, delimiter, ".", columns)
    assert ChunkRewriter.build(fmt, nulls, {}) is None
