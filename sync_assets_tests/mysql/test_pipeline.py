"""The reader thread's hand-over (pure: no server): `on_end` runs as soon as the source is
exhausted, while the consumer still works on queued chunks; `gather` joins what is queued, in
order, without exceeding the queue's bound; a reader failure reaches the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sync_assets.mysql import stream

CHUNKS = [f"{i}\n".encode() for i in range(20)]


def test_on_end_runs_in_the_reader_before_the_consumer_is_done() -> None:
    ended = threading.Event()
    reader: list[str] = []

    def on_end() -> None:
        reader.append(threading.current_thread().name)
        ended.set()

    got = []
    for item in stream.pipelined(iter(CHUNKS[:3]), name="reader-x", on_end=on_end):
        if not got:  # the first chunk is still being "written": the end arrives meanwhile
            assert ended.wait(5)
        got.append(item)
    assert got == CHUNKS[:3] and reader == ["reader-x"]


def test_gather_joins_queued_chunks_in_order_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "QUEUE_DEPTH", 2)
    full = threading.Event()

    def source() -> Iterator[bytes]:
        for i, chunk in enumerate(CHUNKS):
            if i == 3:
                full.set()  # chunks 1 and 2 queued, 3 read: the queue is full
            yield chunk

    batches = []
    for batch in stream.pipelined(source(), gather=True):
        if not batches:
            assert full.wait(5)
        batches.append(batch)
    assert b"".join(batches) == b"".join(CHUNKS)
    assert len(batches) > 1 and max(len(b.splitlines()) for b in batches) <= 3
    assert len(batches[1].splitlines()) > 1  # what was queued meanwhile came as one batch


def test_a_reader_failure_reaches_the_consumer_and_on_end_is_skipped() -> None:
    ended = threading.Event()

    def broken() -> Iterator[bytes]:
        yield CHUNKS[0]
        raise ConnectionError("lost")

    with pytest.raises(ConnectionError, match="lost"):
        for _ in stream.pipelined(broken(), on_end=ended.set, gather=True):
            pass
    assert not ended.is_set()
