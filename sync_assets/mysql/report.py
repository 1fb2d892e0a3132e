"""What one sync of a MySQL table did (the asset's metadata and checks are built from it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class SyncReport:
    """What one sync did; `definitions.report_metadata` is what the asset reports."""

    source_table: str
    target_schema: str
    target_table: str
    mode: str = ""
    reason: str = ""
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_replaced: int = 0
    row_count: int = 0
    source_row_count: int = 0
    watermark: str | None = None
    previous_watermark: str | None = None
    duration_seconds: float = 0.0
    adjusted_values: int = 0
    bytes_copied: int = 0
    columns: list[tuple[str, str]] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    widened_columns: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    mismatched_rows: int | None = None  # rows (keys) that differ, when `verify_values` is on
    mismatch_sample: list[str] = field(default_factory=list)  # primary keys of a few of them

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to `phase_seconds[phase]` (where a sync spends its time)."""
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            self.phase_seconds[phase] = round(self.phase_seconds.get(phase, 0.0) + elapsed, 3)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def counts_match(self) -> bool:
        return self.row_count == self.source_row_count
