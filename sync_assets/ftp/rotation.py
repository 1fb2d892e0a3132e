"""Content seen under another name: log rotation and files moved within the source.

A growing `press.log` renamed to `press.log.1` (or a dated name, or moved into `archive/`)
while a new `press.log` starts: the renamed file's lines up to the recorded offset are
already in the table. A file new to the ledger is compared with the consumed content the
ledger remembers of other paths — rows whose path is gone or now holds other bytes, and the
versions kept when a path was replaced (`store.retire`) — and resumes from that offset.

Recognised means all of: at least `offset_bytes` bytes long, the same first `head_len`
bytes (sha256, up to 1 KiB) and the same last `tail_len` bytes before the offset (sha256, up
to 1 KiB). A file that only shares a header line differs in the bytes before the offset
unless the old one had consumed nothing but that header (then resuming after it loads every
data line, which is right too). A shorter file is never the same content. When the old path
still starts with the same bytes, the new file is a copy, not a move: it loads as its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from sync_assets.ftp import store
from sync_assets.ftp.formats import FileFormat
from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.store import LedgerEntry

TAIL_BYTES = 1024

# read(path, offset, length) -> the bytes (fewer if the file is shorter)
Reader = Callable[[str, int, int], bytes]


@dataclass(frozen=True)
class Seen:
    """Consumed content the ledger remembers; `listed_size`: its own path's size in this
    run's listing (None if not listed, or when it is a retired version)."""

    entry: LedgerEntry
    listed_size: int | None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seen_content(
    ledger: dict[str, LedgerEntry],
    retired: list[LedgerEntry],
    files: list[RemoteFile],
    changed: set[str],
) -> list[Seen]:
    """What a file of this run may continue (computed once per run): the content of paths
    gone from the listing or `changed` since (a listed unchanged path still holds its own)."""
    sizes = {f.path: f.size for f in files}
    found = [
        Seen(e, sizes.get(e.path))
        for e in ledger.values()
        if (e.path not in sizes or e.path in changed) and _resumable(e)
    ]
    return found + [Seen(e, None) for e in retired if _resumable(e)]


def _resumable(entry: LedgerEntry) -> bool:
    return (
        entry.status in (store.LOADED, store.REJECTED)
        and entry.offset_bytes > 0
        and entry.lines_consumed > 0
        and entry.head_len > 0
        and entry.tail_len > 0
        and entry.head_hash is not None
        and entry.tail_hash is not None
        and entry.format is not None
        and not FileFormat.from_json(entry.format).compressed
    )


def find_predecessor(path: str, size: int, seen: list[Seen], read: Reader) -> LedgerEntry | None:
    """The remembered content `path` (of `size` bytes) starts with, if any."""
    fits = [s for s in seen if s.entry.path != path and s.entry.offset_bytes <= size]
    if not fits:
        return None
    # Never asks past a listed size: a short read is a transient error to the clients.
    head = read(path, 0, min(size, max(s.entry.head_len for s in fits)))
    # One hash per head length, not per remembered file (thousands of them without deletes).
    heads = {n: digest(head[:n]) for n in {s.entry.head_len for s in fits} if n <= len(head)}
    same_head = [s for s in fits if heads.get(s.entry.head_len) == s.entry.head_hash]
    # The longest consumed content first: a later version of the same log wins.
    for item in sorted(same_head, key=lambda s: s.entry.offset_bytes, reverse=True):
        if _tail_matches(read, path, item.entry) and not _still_there(item, read):
            return item.entry
    return None


def _starts_with(head: bytes, read: Reader, path: str, entry: LedgerEntry) -> bool:
    if len(head) < entry.head_len or digest(head[: entry.head_len]) != entry.head_hash:
        return False
    return _tail_matches(read, path, entry)


def _tail_matches(read: Reader, path: str, entry: LedgerEntry) -> bool:
    window = read(path, entry.offset_bytes - entry.tail_len, entry.tail_len)
    return len(window) == entry.tail_len and digest(window) == entry.tail_hash


def _still_there(item: Seen, read: Reader) -> bool:
    """Whether the old path still holds the content (then the new file is a copy)."""
    if item.listed_size is None or item.listed_size < item.entry.offset_bytes:
        return False
    entry = item.entry
    head = read(entry.path, 0, min(entry.head_len, item.listed_size))
    return _starts_with(head, read, entry.path, entry)


def tail_window(handle: IO[bytes], base: int, offset: int) -> tuple[str | None, int]:
    """Hash of the last TAIL_BYTES bytes before `offset` in `handle`, which holds the file
    from byte `base` on. (None, 0) when nothing was consumed."""
    start = max(base, offset - TAIL_BYTES)
    if offset <= start:
        return None, 0
    handle.seek(start - base)
    window = handle.read(offset - start)
    return digest(window), len(window)
