"""UTF-16 in the line reader and the detection (ftp/lines.py, ftp/transcode.py,
formats.detect_encoding): LE/BE with and without BOM, records and code units cut by block
boundaries, CRLF, astral characters, byte offsets that a growing file resumes from, and the
odd bytes a broken file may end with. Pure: byte streams in memory, no server."""

from __future__ import annotations

import codecs
import gzip
import io

import pytest

from sync_assets.ftp import lines as lines_module
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.formats import FileFormat, UnparsableFileError, detect_format
from sync_assets.ftp.lines import LineReader, decode_chunk, reader_format
from sync_assets.ftp.transcode import utf16_size

TEXT = 'id;name;v\r\n1;Grüße 😀;1,5\r\n2;"a;b\r\nc";2\r\n3;€;3\r\n'
BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}


def _read(data: bytes, encoding: str, take_tail: bool = True, first: int = 0, header=True):
    fmt = FileFormat("csv", encoding, ";")
    reader = LineReader(io.BytesIO(data), take_tail, first, 0, header and first == 0, fmt=fmt)
    text_encoding = reader_format(fmt).encoding
    out = [
        (line.line_no, line.text)
        for chunk in reader.chunks(text_encoding, 2)
        for line in decode_chunk(chunk.raws, chunk.first_line, text_encoding, chunk.numbers)
    ]
    return out, reader


EXPECTED = [(2, "1;Grüße 😀;1,5"), (3, '2;"a;b\r\nc";2'), (5, "3;€;3")]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("block", [1, 3, 7, 1024 * 1024])
def test_utf16_records_across_block_boundaries(encoding, block, monkeypatch) -> None:
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", block)
    data = BOMS[encoding] + TEXT.encode(encoding)
    got, reader = _read(data, encoding)
    assert got == EXPECTED
    assert reader.header == "id;name;v"
    assert (reader.line_no, reader.bytes_consumed) == (5, len(data))


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_every_cut_of_a_growing_file_resumes_at_a_line_boundary(encoding) -> None:
    """Read the first k bytes (a file still being written), then the rest from the offset
    consumed: every record exactly once, and the offset always right after a newline."""
    data = BOMS[encoding] + TEXT.encode(encoding)
    for cut in range(len(data) + 1):
        first, reader = _read(data[:cut], encoding, take_tail=False)
        offset, consumed = reader.bytes_consumed, reader.line_no
        assert offset % 2 == 0 and offset <= cut
        assert offset in (0, *(len(BOMS[encoding]) + i for i in _line_ends(encoding)))
        rest, _ = _read(data[offset:], encoding, first=consumed)
        if consumed == 0:  # nothing consumed: the next run starts over, header included
            assert rest == EXPECTED
        else:
            assert first + rest == EXPECTED


def _line_ends(encoding: str) -> list[int]:
    ends, pos = [], 0
    for line in TEXT.splitlines(keepends=True):
        pos += len(line.encode(encoding))
        if line.endswith("\n"):
            ends.append(pos)
    return ends


def test_utf16_size_measures_the_files_bytes() -> None:
    for text in ["", "a", "ü€", "😀x😀", "\r\n", "\ud800"]:
        utf8 = text.encode("utf-8", "surrogatepass")
        assert utf16_size(utf8) == len(text.encode("utf-16-le", "surrogatepass")), text


def test_odd_bytes_and_lone_surrogates_are_rejected_lines_not_a_failed_file() -> None:
    data = BOMS["utf-16-le"] + "a;b\n1;2\n".encode("utf-16-le")
    data += b"\x00\xd8;\x00x\x00\n\x00"  # a lone high surrogate, then ";x\n"
    data += "3;4".encode("utf-16-le") + b"\x35"  # last line with a dangling odd byte
    got, reader = _read(data, "utf-16-le")
    assert got == [(2, "1;2"), (3, None), (4, None)]
    assert reader.bytes_consumed == len(data)


def test_detection_of_utf16() -> None:
    source = SourceConfig(name="s")
    for encoding, bom in BOMS.items():
        fmt = detect_format("x.csv", bom + TEXT.encode(encoding), source)
        assert (fmt.encoding, fmt.delimiter, fmt.kind) == (encoding, ";", "csv")
        bare = TEXT.encode(encoding)  # no BOM: only as configured
        with pytest.raises(UnparsableFileError, match="binary"):
            detect_format("x.csv", bare, source)
        for configured in ("utf-16", encoding.replace("-16-", "-16"), encoding.upper()):
            fmt = detect_format("x.csv", bare, SourceConfig(name="s", encoding=configured))
            assert fmt.encoding == encoding
        with_bom = SourceConfig(name="s", encoding="utf-16")
        assert detect_format("x.csv", bom + bare, with_bom).encoding == encoding
    # UTF-32 and NUL characters in UTF-16 stay binary.
    with pytest.raises(UnparsableFileError, match="binary"):
        detect_format("x.csv", "a;b\n".encode("utf-32"), source)
    with pytest.raises(UnparsableFileError, match="binary"):
        detect_format("x.csv", BOMS["utf-16-le"] + "a;\x00b\n".encode("utf-16-le"), source)


def test_gzip_compressed_utf16() -> None:
    data = gzip.compress(BOMS["utf-16-be"] + TEXT.encode("utf-16-be"))
    fmt = FileFormat("csv", "utf-16-be", ";", compressed=True)
    stream = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    reader = LineReader(stream, True, 0, 0, True, fmt=fmt)
    records = [r for c in reader.chunks("utf-8", 10) for r in c.raws]
    assert [r.decode() for r in records] == ["1;Grüße 😀;1,5\r", '2;"a;b\r\nc";2\r', "3;€;3\r"]
