"""Cost of FTP format detection (`formats.detect_stream`) on a 21 MB press export, three ways:
every column holds values from the first line (settled in the 64 KiB head), values start
after ~1.4 MB (a night without production), one column empty throughout (look-ahead to the
8 MiB bound). Pure CPU, no server: `.venv/bin/python -m benchmarks.detection`."""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta

from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.formats import detect_stream

LINES = 500_000


def export(empty: int) -> bytes:
    """`empty` lines without energy, then energy values with a decimal comma."""
    start = datetime(2026, 11, 27, 22, 0)
    lines = ["Zeit;Maschine;Energie;Zähler"]
    for i in range(LINES):
        stamp = (start + timedelta(seconds=10 * i)).strftime("%d.%m.%Y %H:%M:%S")
        energy = "" if i < empty else f"{100 + i % 50},{i % 10}"
        lines.append(f"{stamp};Presse 1;{energy};{i}")
    return ("\n".join(lines) + "\n").encode()


def best_ms(data: bytes, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        detect_stream("press.csv", io.BytesIO(data), SourceConfig())
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    for label, empty in (("settled in head", 0), ("late values", 30_000), ("empty", LINES)):
        data = export(empty)
        print(f"{label}: {len(data) / 1e6:.1f} MB file, best of 5: {best_ms(data):.1f} ms")


if __name__ == "__main__":
    main()
