"""UTF-16 files read as UTF-8: the rest of the byte pipeline (line splitting, quote scanning,
the COPY fast path) then works on UTF-8 as for any other file.

Byte offsets stay those of the file: every UTF-8 piece handed on can be measured back in the
file's bytes (`utf16_size`), so a growing UTF-16 file resumes at a code unit boundary right
after a newline, never in the middle of a code unit. Pure: no server, no database.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import IO

UTF16_BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
# Stands for one dangling byte at the end of a file with an odd length: never valid UTF-8, so
# the line holding it is a reject (undecodable), and it measures one byte of the file.
ODD_BYTE = b"\xff"


def is_utf16(encoding: str) -> bool:
    return encoding in UTF16_BOMS


def utf8_blocks(stream: IO[bytes], encoding: str, block_bytes: int, head: bytes) -> Iterator[bytes]:
    """The text of `head` + the stream as UTF-8 blocks. Lone surrogates pass through as their
    UTF-8 form (undecodable later: that line is a reject, the others load)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogatepass")
    if text := decoder.decode(head):
        yield text.encode("utf-8", "surrogatepass")
    while raw := stream.read(block_bytes):
        if text := decoder.decode(raw):
            yield text.encode("utf-8", "surrogatepass")
    if tail := _final(decoder, encoding):
        yield tail


def _final(decoder: codecs.IncrementalDecoder, encoding: str) -> bytes:
    """What the decoder still holds at the end: a lone high surrogate and/or an odd byte."""
    pending, _ = decoder.getstate()
    even = len(pending) // 2 * 2
    text = pending[:even].decode(encoding, "surrogatepass")
    return text.encode("utf-8", "surrogatepass") + ODD_BYTE * (len(pending) % 2)


def utf16_size(data: bytes) -> int:
    """How many bytes of the UTF-16 file `data` (UTF-8 from `utf8_blocks`) was read from.

    Each code point is one lead byte in UTF-8 and 2 bytes in UTF-16, 4 if astral (lead F0-F4);
    ODD_BYTE is 1. ASCII (the common case) is one C check; otherwise a few whole-buffer numpy
    comparisons (no loop per character).
    """
    if data.isascii():
        return 2 * len(data)
    import numpy  # a pandas dependency, only needed for non-ASCII UTF-16

    codes = numpy.frombuffer(data, dtype=numpy.uint8)
    continuation = int(numpy.count_nonzero(codes >= 0x80) - numpy.count_nonzero(codes >= 0xC0))
    odd = data.count(ODD_BYTE)
    astral = int(numpy.count_nonzero(codes >= 0xF0)) - odd  # F5-FE never occur
    leads = len(data) - continuation - odd
    return 2 * (leads + astral) + odd
