"""Bytes → lines (ftp/lines.py): chunking, numbering, preamble, header, partial last line and
decoding. Pure: byte streams in memory, no server."""

import io

import pytest

from sync_assets.ftp.formats import UnparsableFileError
from sync_assets.ftp.lines import MAX_LINE_BYTES, LineReader, decode_chunk


def _reader(data: bytes, take_tail: bool = False, preamble: int = 0, header: bool = False):
    return LineReader(io.BytesIO(data), take_tail, 0, preamble, header)


def test_chunks_are_numbered_from_the_first_data_line() -> None:
    reader = _reader(b"# export\nt;v\n1;a\n2;b\n3;c\n", preamble=1, header=True)
    chunks = [(c.first_line, c.raws) for c in reader.chunks("utf-8", 2)]
    assert chunks == [(3, [b"1;a", b"2;b"]), (5, [b"3;c"])]
    assert reader.header == "t;v"
    assert (reader.line_no, reader.bytes_consumed) == (5, 25)


def test_a_partial_last_line_waits_unless_taken() -> None:
    waiting = _reader(b"a\nb\npartial")
    assert [c.raws for c in waiting.chunks("utf-8", 10)] == [[b"a", b"b"]]
    assert (waiting.line_no, waiting.bytes_consumed) == (2, 4)
    taken = _reader(b"a\nb\npartial", take_tail=True)
    assert [c.raws for c in taken.chunks("utf-8", 10)] == [[b"a", b"b", b"partial"]]
    assert (taken.line_no, taken.bytes_consumed) == (3, 11)


def test_a_resumed_file_numbers_lines_after_those_consumed() -> None:
    reader = LineReader(io.BytesIO(b"x\ny\n"), False, 40, 0, False)
    assert [(c.first_line, c.raws) for c in reader.chunks("utf-8", 10)] == [(41, [b"x", b"y"])]


def test_blank_lines_before_the_header_are_skipped_and_crlf_kept_for_the_loader() -> None:
    reader = _reader(b"\r\n\nt,v\r\n1,2\r\n", header=True)
    assert [(c.first_line, c.raws) for c in reader.chunks("utf-8", 10)] == [(4, [b"1,2\r"])]
    assert reader.header == "t,v"


def test_odd_heads_and_lines_are_file_verdicts() -> None:
    with pytest.raises(UnparsableFileError, match="header line is not valid utf-8"):
        list(_reader(b"\xff\xfe;b\n1;2\n", header=True).chunks("utf-8", 10))
    with pytest.raises(UnparsableFileError, match="longer than"):
        list(_reader(b"x" * (MAX_LINE_BYTES + 2)).chunks("utf-8", 10))


def test_decoding_marks_only_the_bad_lines() -> None:
    lines = decode_chunk([b"caf\xc3\xa9", b"bad \xff", b"ok\r"], 7, "utf-8")
    assert [(line.line_no, line.text) for line in lines] == [(7, "café"), (8, None), (9, "ok")]
    assert lines[1].raw == b"bad \xff"
    assert [line.text for line in decode_chunk([b"\xff"], 1, "latin-1")] == ["ÿ"]
