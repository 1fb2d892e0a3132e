"""What one run of a log source did, file by file (the asset's metadata and check)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Outcomes of files left for a later run: growing, too young, unreadable now (the backlog).
WAITING_STATUSES = ("unstable", "too_young", "unreadable")


@dataclass
class FileOutcome:
    """What happened to one remote file in this run."""

    path: str
    status: str  # loaded|rejected|failed|unstable|too_young|unreadable|vanished|unchanged
    version: int = 1
    lines_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    bytes_read: int = 0
    resumed_from: int = 0
    replaced: bool = False
    moved_from: str | None = None  # the path whose loaded content this file continues
    deleted: bool = False
    fast_chunks: int = 0
    error: str | None = None
    # The table's text columns whose values in this file would have made them numeric:
    # (column, would-be type). Loaded as text; reported (see IngestReport.type_warnings).
    type_warnings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class IngestReport:
    source: str
    schema: str
    table: str
    run_id: str
    files_seen: int = 0
    files: list[FileOutcome] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delete_errors: dict[str, str] = field(default_factory=dict)
    newest_record: datetime | None = None
    duration_seconds: float = 0.0
    reconnects: int = 0
    # Rows in the whole table after the run: the rows before its first commit (counted while
    # it worked) plus the rows it committed; None if that count was not possible in time.
    table_rows: int | None = None
    # Files that became `failed` in this run (were not failed before: an alert per file keys
    # on these, once), and every listed file that is `failed` in the ledger now (path: error).
    newly_failed: list[str] = field(default_factory=list)
    failed_files: dict[str, str] = field(default_factory=dict)
    # Bytes of the waiting files not loaded yet (the backlog in bytes).
    backlog_bytes: int = 0
    # How long loaded files waited for the stable-file rule's second look (StableLooks).
    stable_wait_seconds: float = 0.0

    def _count(self, *statuses: str) -> int:
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def files_loaded(self) -> int:
        return self._count("loaded", "rejected")

    @property
    def files_skipped(self) -> int:
        return self._count("unstable", "too_young", "unreadable", "vanished")

    @property
    def files_waiting(self) -> int:
        """The backlog: files left for a later run (growing, too young, unreadable now)."""
        return self._count(*WAITING_STATUSES)

    @property
    def files_failed(self) -> int:
        return self._count("failed")

    @property
    def files_replaced(self) -> int:
        return sum(1 for f in self.files if f.replaced)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def lines_read(self) -> int:
        return sum(f.lines_read for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)

    @property
    def type_warnings(self) -> list[dict[str, object]]:
        """Per (column, would-be type): how many files of the run met it, and the first."""
        counts: Counter[tuple[str, str]] = Counter()
        first: dict[tuple[str, str], str] = {}
        for outcome in self.files:
            for key in outcome.type_warnings:
                counts[key] += 1
                first.setdefault(key, outcome.path)
        return [
            {
                "column": column,
                "table_type": "text",
                "would_be": would_be,
                "files": files,
                "first_file": first[column, would_be],
            }
            for (column, would_be), files in counts.items()
        ]

    @property
    def unbalanced_files(self) -> list[str]:
        """Files whose lines read differ from rows loaded + rows rejected (should be none)."""
        return [f.path for f in self.files if f.lines_read != f.rows_loaded + f.rows_rejected]

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        if self.newest_record is None:
            return None
        return ((now or datetime.now(UTC)) - self.newest_record).total_seconds()
