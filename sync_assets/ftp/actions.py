"""Operator actions on a log source: the asset's run config, and the read-only preview.

`LogSourceConfig` is the run config of each `logs/<name>` asset: empty (the schedule's runs)
changes nothing; `reingest_paths` / `reingest_failed` forget those files first (the same
`reingest` as the `sync-assets reingest` command), so the run loads them again exactly once.

`preview_source` lists the source and compares with the ledger without writing anything: which
files a run would load (and why), which wait, which failed, and which a run would delete with
DELETE_AFTER_SYNC=true. The dry-run job and the backlog observations use it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from pydantic import Field

from sync_assets.core.actions import ActionConfig
from sync_assets.core.pg import META_SCHEMA, table_exists
from sync_assets.ftp import listtime, store
from sync_assets.ftp.cli import reingest
from sync_assets.ftp.client import FTPClient
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.ingest import classify, list_files, pending_bytes, source_root
from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.ftp.sessions import open_client
from sync_assets.resources import FTPResource, PostgresResource

REINGEST_ACTION = "reingest"


class LogSourceConfig(ActionConfig):
    """Run config of a `logs/<name>` asset (Materialize → Open launchpad in the UI)."""

    reingest_paths: list[str] = Field(
        default=[],
        description="Remote paths (as in the ledger: sync-assets ftp-ledger) to load again:"
        " their rows, rejects and ledger row are removed first, in one transaction.",
    )
    reingest_failed: bool = Field(
        default=False, description="Load again every file of the source whose status is failed."
    )

    @property
    def wants_reingest(self) -> bool:
        return bool(self.reingest_paths) or self.reingest_failed


def forget_for_reingest(
    postgres: PostgresResource, source: SourceConfig, run_config: LogSourceConfig
) -> dict[str, int]:
    """`reingest` (ftp/cli.py) of what the run config names: rows removed per path."""
    with postgres.connection(autocommit=True) as conn:
        store.ensure_meta_tables(conn)
        return reingest(conn, source, run_config.reingest_paths, run_config.reingest_failed)


@dataclass(frozen=True)
class PlannedFile:
    """One listed file and what the next run would do with it."""

    path: str
    size: int
    action: str  # load | wait | keep | failed | delete
    why: str
    pending_bytes: int = 0  # bytes not loaded yet (load and wait)
    deleted_if_enabled: bool = False  # deleted by a run with DELETE_AFTER_SYNC=true


@dataclass
class SourcePreview:
    source: str
    delete_after_sync: bool  # the current setting (the preview shows both cases)
    files: list[PlannedFile] = field(default_factory=list)

    def _with(self, *actions: str) -> list[PlannedFile]:
        return [f for f in self.files if f.action in actions]

    @property
    def backlog(self) -> list[PlannedFile]:
        """Files waiting for a run: to load now or once old enough."""
        return self._with("load", "wait")

    @property
    def backlog_bytes(self) -> int:
        return sum(f.pending_bytes for f in self.backlog)

    @property
    def would_delete(self) -> list[str]:
        return [f.path for f in self.files if f.deleted_if_enabled]

    def counts(self) -> dict[str, int]:
        actions = ("load", "wait", "keep", "failed", "delete")
        return {action: len(self._with(action)) for action in actions}

    def line(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in self.counts().items() if n)
        return (
            f"{self.source}: {len(self.files)} file(s) listed ({counts or 'none'}); backlog"
            f" {len(self.backlog)} file(s), {self.backlog_bytes} bytes; with"
            f" DELETE_AFTER_SYNC=true {len(self.would_delete)} file(s) would be deleted"
        )


def preview_source(
    ftp_resource: FTPResource,
    postgres: PostgresResource,
    source: SourceConfig,
    log: logging.Logger | None = None,
    retries: int | None = None,
) -> SourcePreview:
    """What a run of `source` would do now, from one listing and the ledger (read only).
    `retries`: FTP attempts (default: the source's)."""
    with postgres.connection(autocommit=True) as conn:
        ledger = _read_ledger(conn, source)
    attempts = source.retries if retries is None else retries
    policy = RetryPolicy(attempts, source.retry_backoff_seconds)
    logger = log or logging.getLogger(__name__)
    client = open_client(ftp_resource, policy, log)
    try:
        files = list_files(client, client.absolute(source_root(ftp_resource, source)), source)
        if not client.has_mlst:  # LIST times in the server's zone: as the run corrects them
            offset = listtime.parse_offset(ftp_resource.list_time_offset)
            modified = client.modified if isinstance(client, FTPClient) else None
            files, _ = listtime.to_utc(files, ledger, offset, modified, logger)
    finally:
        client.close()
    now = datetime.now(UTC)
    preview = SourcePreview(source.name, ftp_resource.should_delete_after_sync)
    preview.files = [_plan(f, ledger.get(f.path), source, now) for f in files]
    return preview


def _read_ledger(conn: psycopg.Connection, source: SourceConfig) -> dict[str, store.LedgerEntry]:
    with conn.cursor() as cur:
        if not table_exists(cur, META_SCHEMA, store.LEDGER):
            return {}  # no run yet: every file is new (and nothing is created here)
    return store.load_ledger(conn, source.name)


def _plan(
    remote: RemoteFile, entry: store.LedgerEntry | None, source: SourceConfig, now: datetime
) -> PlannedFile:
    verdict = classify(remote, entry, source, delete_after=True)
    if verdict == "delete":
        return PlannedFile(remote.path, remote.size, "delete", "loaded, not deleted yet", 0, True)
    if verdict == "load":
        pending = pending_bytes(remote, entry)
        age = (now - remote.mtime).total_seconds() if remote.mtime else None
        if age is not None and age < source.min_age_seconds:
            why = f"younger than min_age_seconds ({age:.0f} s < {source.min_age_seconds:g} s)"
            return PlannedFile(remote.path, remote.size, "wait", why, pending)
        # Loaded now and, with deletes on, deleted after its commit (unless all rejected).
        why = _load_reason(remote, entry)
        return PlannedFile(remote.path, remote.size, "load", why, pending, True)
    if entry is not None and entry.status == store.FAILED:
        why = f"failed: {(entry.error or '')[:200]} (kept until it changes or is re-ingested)"
        return PlannedFile(remote.path, remote.size, "failed", why)
    if entry is not None and entry.status == store.REJECTED:
        return PlannedFile(remote.path, remote.size, "keep", "every line rejected: kept")
    return PlannedFile(remote.path, remote.size, "keep", "loaded, unchanged")


def _load_reason(remote: RemoteFile, entry: store.LedgerEntry | None) -> str:
    if entry is None:
        return "new file"
    if entry.status == store.DELETED:
        return "back on the server after its delete"
    if entry.status == store.MOVED:
        return "back on the server after its content moved to another name"
    if remote.size > entry.size and entry.status == store.LOADED:
        return f"grew by {remote.size - entry.size} bytes"
    if remote.same_as(entry.size, entry.mtime):
        return "its last line (no newline) is now old enough"
    return "changed since loaded (a new version)"
