"""RFC 4180 records in the line reader (ftp/lines.py, ftp/quoting.py): quoted delimiters,
doubled quotes and line breaks (LF and CRLF) make one record numbered by its first line; a
quote never closed is its first line alone; an open record at the end of a growing file is
not consumed. Pure: byte streams in memory, with Python's csv module as the oracle."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_assets.ftp import lines as lines_module
from sync_assets.ftp.formats import FileFormat, split_fields
from sync_assets.ftp.lines import LineReader, decode_chunk, reader_format
from sync_assets.ftp.quoting import MAX_RECORD_LINES, QuoteScanner

CSV = FileFormat("csv", "utf-8", ";")


def _records(data: bytes, fmt: FileFormat = CSV, take_tail: bool = True, size: int = 3, **kw):
    """(line number, text) of every record read, and the reader."""
    reader = LineReader(io.BytesIO(data), take_tail, kw.get("first", 0), 0, False, fmt=fmt)
    encoding = reader_format(fmt).encoding
    out = []
    for chunk in reader.chunks(encoding, size):
        out += [
            (line.line_no, line.text)
            for line in decode_chunk(chunk.raws, chunk.first_line, encoding, chunk.numbers)
        ]
    return out, reader


def test_quoted_delimiters_doubled_quotes_and_line_breaks_are_one_record() -> None:
    data = (
        b"1;plain;x\r\n"
        b'2;"semi;colon";"say ""hi"""\r\n'
        b'3;"two\r\nlines";"three\nlines\n"\r\n'
        b"4;after;x\r\n"
    )
    got, reader = _records(data)
    assert got == [
        (1, "1;plain;x"),
        (2, '2;"semi;colon";"say ""hi"""'),
        (3, '3;"two\r\nlines";"three\nlines\n"'),
        (7, "4;after;x"),
    ]
    assert split_fields(got[2][1], ";") == ["3", "two\r\nlines", "three\nlines\n"]
    assert (reader.line_no, reader.bytes_consumed) == (7, len(data))


def test_a_quote_never_closed_is_its_first_line_alone_and_reading_resumes() -> None:
    data = b'1;"open;x\n2;b;c\n3;"closed";d\n'
    got, _ = _records(data)
    assert got == [(1, '1;"open;x'), (2, "2;b;c"), (3, '3;"closed";d')]


def test_an_open_record_is_given_up_after_the_line_limit() -> None:
    body = b"".join(b"%d;filler;x\n" % i for i in range(2, MAX_RECORD_LINES + 5))
    data = b'1;"open;x\n' + body + b'"end";y;z\n'
    got, _ = _records(data, size=1000)
    # Line 1 alone; then each line is its own record, the last one included.
    assert [n for n, _ in got] == list(range(1, MAX_RECORD_LINES + 6))
    assert got[0] == (1, '1;"open;x')


def test_an_open_record_at_the_end_of_a_growing_file_is_not_consumed() -> None:
    head = b"1;a;b\r\n2;b;c\r\n"
    data = head + b'3;"still\r\nwriting;'
    got, reader = _records(data, take_tail=False)
    assert got == [(1, "1;a;b"), (2, "2;b;c")]
    assert (reader.line_no, reader.bytes_consumed) == (2, len(head))
    # The next run reads from there, once the record is complete.
    rest = data[len(head) :] + b'";x\r\n4;d;e\r\n'
    got, _ = _records(rest, take_tail=False, first=2)
    assert got == [(3, '3;"still\r\nwriting;";x'), (5, "4;d;e")]


def test_a_multiline_header_and_text_formats_keep_physical_lines() -> None:
    data = b'id;"long\nname"\n1;2\n'
    reader = LineReader(io.BytesIO(data), True, 0, 0, True, fmt=CSV)
    assert [(c.first_line, c.raws) for c in reader.chunks("utf-8", 5)] == [(3, [b"1;2"])]
    assert reader.header == 'id;"long\nname"'
    text = FileFormat("text", "utf-8")
    got, _ = _records(b'a "b\nc" d\n', fmt=text)
    assert got == [(1, 'a "b'), (2, 'c" d')]


def test_chunks_after_a_multiline_record_are_numbered_consecutively_again() -> None:
    data = b'1;"a\nb";c\n' + b"".join(b"%d;x;y\n" % i for i in range(3, 10))
    reader = LineReader(io.BytesIO(data), True, 0, 0, False, fmt=CSV)
    chunks = list(reader.chunks("utf-8", 2))
    assert chunks[0].numbers == [1, 3] and chunks[0].first_line == 1
    assert all(c.numbers is None for c in chunks[1:])
    assert [c.first_line for c in chunks[1:]] == [4, 6, 8]


# --- the quote scanner reads quotes as Python's csv module does ------------------------------

PIECES = ['"', '""', ";", "a", " ", "\r", '"a"', ';"', '";']


def _reference_open(line: str, inside: bool) -> bool:
    """A character-level state machine of csv's quote rules (the scanner's specification)."""
    state = "quoted" if inside else "start"
    for ch in line:
        if state == "start":
            state = "quoted" if ch == '"' else ("start" if ch == ";" else "plain")
        elif state == "plain":
            state = "start" if ch == ";" else "plain"
        elif state == "quoted":
            state = "quote?" if ch == '"' else "quoted"
        else:  # after a quote inside a quoted field
            state = "quoted" if ch == '"' else ("start" if ch == ";" else "plain")
    return state == "quoted"


@settings(derandomize=True, database=None, max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_the_scanner_matches_the_reference_and_the_csv_module(pieces: list[str]) -> None:
    line = "".join(pieces)
    scanner = QuoteScanner(b";")
    assert scanner.opens(line.encode()) == _reference_open(line, inside=False)
    assert scanner.stays_open(line.encode()) == _reference_open(line, inside=True)
    # The block-wide match stops exactly at a line that opens (here the second of three).
    block = f"a;b\n{line}\nc;d\n".encode()
    stop = 4 if scanner.opens(line.encode()) else len(block)
    assert scanner.closed_until(block, 0) == stop
    if scanner.opens(line.encode()):  # csv (strict) refuses a line whose quote is open
        with pytest.raises(csv.Error):
            split_fields(line, ";")


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[list[list[str]], str]:
    """Well-formed CSV (as csv.writer writes it) with quoted line breaks, quotes, delimiters."""
    piece = st.sampled_from([*'ab;"\n é€\U0001f600', "\r\n"])
    cell = st.lists(piece, max_size=6).map("".join)
    rows = draw(st.lists(st.lists(cell, min_size=2, max_size=2), min_size=1, max_size=15))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator=newline).writerows(rows)
    return rows, out.getvalue()


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(
    example=csv_files(),
    encoding=st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "cp1252"]),
    block=st.integers(1, 40),
    size=st.integers(1, 5),
)
def test_records_and_line_numbers_are_those_of_the_csv_module(
    example, encoding, block, size
) -> None:
    _, text = example
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    fmt = FileFormat("csv", encoding, ";")
    with pytest.MonkeyPatch.context() as patch:  # tiny blocks: records and code units cut
        patch.setattr(lines_module, "BLOCK_BYTES", block)
        got, reader = _records(data, fmt=fmt, size=size)
    expected, numbers = [], []
    parsed = csv.reader(io.StringIO(text, newline=""), delimiter=";", strict=True)
    last = 0
    for row in parsed:
        numbers.append(last + 1)
        expected.append(row)
        last = parsed.line_num
    assert [n for n, _ in got] == numbers
    assert [split_fields(t, ";") if t else [] for _, t in got] == [
        r if r != [""] else [] for r in expected
    ]
    assert (reader.line_no, reader.bytes_consumed) == (last, len(data))
