"""Dagster definitions of the FTP side: per log source, `ftp/<name>` → `logs/<name>`.

Built from the project config only (a local YAML read): no FTP or database I/O at load.
"""

from datetime import UTC, datetime

import dagster as dg

from sync_assets.core.actions import record_action
from sync_assets.core.errors import run_classified
from sync_assets.core.freshness import ftp_freshness
from sync_assets.core.metadata import table_metadata
from sync_assets.core.names import FTP_GROUP
from sync_assets.core.placement import placement_metadata
from sync_assets.ftp import store
from sync_assets.ftp.actions import REINGEST_ACTION, LogSourceConfig, forget_for_reingest
from sync_assets.ftp.config import SourceConfig, load_sources
from sync_assets.ftp.ingest import IngestReport, ingest_source
from sync_assets.ftp.observe import backlog_observation, build_backlog_sensor
from sync_assets.resources import FTPResource, PostgresResource

GROUP = FTP_GROUP
CHECK_NAME = "lines_accounted_for"
LAG_CHECK = "lag_within_bounds"
REJECTS_CHECK = "rejects_within_bounds"
# Bounds of the two WARN checks. Machines write every few minutes: an hour without a newer
# line means a machine, its upload or this sync has stopped. A run rejecting more than 1% of
# the lines it read points at a format change upstream, not at a few damaged lines.
MAX_LAG_SECONDS = 3600.0
MAX_REJECTED_SHARE = 0.01


def source_key(source: SourceConfig) -> dg.AssetKey:
    return dg.AssetKey(["ftp", source.name])


def asset_key(source: SourceConfig) -> dg.AssetKey:
    return dg.AssetKey(["logs", source.name])


def _describe(source: SourceConfig) -> str:
    where = source.directory or "FTP_DIR"
    patterns = ", ".join(source.include)
    return (
        f"Log files under {where} ({'recursive' if source.recursive else 'top level'}, "
        f"{patterns}; format {source.format}) on the FTP server."
    )


def build_source_spec(source: SourceConfig) -> dg.AssetSpec:
    return dg.AssetSpec(
        source_key(source), kinds={"ftp"}, group_name=GROUP, description=_describe(source)
    )


def _metadata(
    report: IngestReport, database: str, newest: datetime | None = None
) -> dict[str, object]:
    """`newest`: the newest loaded line, this run's or (none loaded) an earlier run's, so the
    lag keeps growing in the plot while nothing new arrives."""
    newest = report.newest_record or newest
    freshness: dict[str, object] = {}
    if newest is not None:
        freshness = {
            "newest_record": dg.MetadataValue.timestamp(newest),
            "lag_seconds": dg.MetadataValue.float(round(_lag_seconds(newest), 3)),
        }
    return {
        **freshness,
        "files_seen": report.files_seen,
        "files_loaded": report.files_loaded,
        "files_skipped": report.files_skipped,
        "files_failed": report.files_failed,
        **_failure_metadata(report),
        "backlog_files": report.files_waiting,
        "backlog_bytes": report.backlog_bytes,
        "files_replaced": report.files_replaced,
        "files_deleted": len(report.deleted),
        "delete_errors": len(report.delete_errors),
        "lines_read": report.lines_read,
        "rows_loaded": report.rows_loaded,
        "rows_rejected": report.rows_rejected,
        "bytes_read": report.bytes_read,
        "duration_seconds": dg.MetadataValue.float(round(report.duration_seconds, 3)),
        "stable_wait_seconds": dg.MetadataValue.float(round(report.stable_wait_seconds, 3)),
        "ftp_reconnects": report.reconnects,
        "rows_loaded_this_run": report.rows_loaded,
        # Text columns this run's files would have made numeric (loaded as text): docs/ftp.md.
        "text_columns_with_numeric_values": dg.MetadataValue.json(report.type_warnings),
        **table_metadata(relation=(database, report.schema, report.table)),
    }


# Paths listed in the metadata (the counts are exact; the ledger has every file and its
# whole error), and the characters of each error shown there.
LISTED_FAILED_FILES = 1000
LISTED_ERROR_CHARS = 300


def _failure_metadata(report: IngestReport) -> dict[str, object]:
    """Failed files: newly failed in this run (an alert keys on `newly_failed_files`, once
    per file: an unchanged failed file is not read again, so it never is "new" twice) and
    failed in total (listed files whose ledger status is `failed`)."""
    return {
        "files_newly_failed": len(report.newly_failed),
        "files_failed_total": len(report.failed_files),
        "newly_failed_files": dg.MetadataValue.json(
            [
                {"path": path, "error": report.failed_files.get(path, "")[:LISTED_ERROR_CHARS]}
                for path in report.newly_failed[:LISTED_FAILED_FILES]
            ]
        ),
    }


def _table_metadata(postgres: PostgresResource, report: IngestReport) -> dict[str, object]:
    """Column schema and row count of the whole table (best effort, bounded in time)."""
    with postgres.connection(autocommit=True) as conn, conn.cursor() as cur:
        columns = store.table_columns(cur, report.schema, report.table)
        row_count = report.table_rows
        if row_count is None:  # the run could not count the table in time: estimate
            row_count = store.table_row_estimate(cur, report.schema, report.table)
    return table_metadata(
        row_count=row_count, columns=[dg.TableColumn(n, t) for n, t in columns.items()]
    )


def _check_result(report: IngestReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    """ERROR while a file is unbalanced or a listed file is `failed` (this run's or an
    earlier one's: it stays an ERROR until the file is fixed, re-ingested or removed); WARN
    for rejected lines."""
    unbalanced = report.unbalanced_files
    failed = report.failed_files
    error = bool(unbalanced or failed)
    severity = dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN
    failed_text = "\n".join(f"{path}: {reason}" for path, reason in list(failed.items())[:20])
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=not error and report.rows_rejected == 0 and report.files_failed == 0,
        severity=severity,
        metadata={
            "lines_read": report.lines_read,
            "rows_loaded": report.rows_loaded,
            "rows_rejected": report.rows_rejected,
            "files_failed": report.files_failed,
            "files_newly_failed": len(report.newly_failed),
            "files_failed_total": len(failed),
            "failed_files": dg.MetadataValue.text(failed_text or "none"),
            "backlog_files": report.files_waiting,
            "unbalanced_files": dg.MetadataValue.text(", ".join(unbalanced[:20]) or "none"),
        },
    )


def _lag_seconds(newest: datetime) -> float:
    return (datetime.now(UTC) - newest).total_seconds()


def previous_newest_record(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    """The newest loaded line as the last materialisation recorded it (None if never)."""
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get("newest_record") if materialization else None
    if not isinstance(value, dg.TimestampMetadataValue):
        return None
    return datetime.fromtimestamp(value.value, UTC)


def lag_check(key: dg.AssetKey, newest: datetime | None) -> dg.AssetCheckResult:
    """WARN when the newest loaded line is older than MAX_LAG_SECONDS."""
    lag = _lag_seconds(newest) if newest else None
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=LAG_CHECK,
        passed=lag is None or lag <= MAX_LAG_SECONDS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "lag_seconds": dg.MetadataValue.float(round(lag, 3) if lag is not None else 0.0),
            "max_lag_seconds": dg.MetadataValue.float(MAX_LAG_SECONDS),
            "newest_record": newest.isoformat() if newest else "no line loaded yet",
        },
    )


def rejects_check(report: IngestReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    """WARN when the run rejected more than MAX_REJECTED_SHARE of the lines it read."""
    share = report.rows_rejected / report.lines_read if report.lines_read else 0.0
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=REJECTS_CHECK,
        passed=share <= MAX_REJECTED_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_rejected": report.rows_rejected,
            "lines_read": report.lines_read,
            "rejected_share": dg.MetadataValue.float(round(share, 6)),
            "max_rejected_share": dg.MetadataValue.float(MAX_REJECTED_SHARE),
        },
    )


def _check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=key,
            description="lines read = rows loaded + rows rejected for every file of the run"
            " and no file failed (ERROR otherwise, until the file is fixed, re-ingested or"
            " removed); any rejected line is a warning",
        ),
        dg.AssetCheckSpec(
            LAG_CHECK,
            asset=key,
            description=f"the newest loaded line is at most {MAX_LAG_SECONDS:g} s old (WARN)",
        ),
        dg.AssetCheckSpec(
            REJECTS_CHECK,
            asset=key,
            description=f"a run rejects at most {MAX_REJECTED_SHARE:.0%} of the lines it read"
            " (WARN)",
        ),
    ]


def _reingest_first(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    source: SourceConfig,
    run_config: LogSourceConfig,
) -> dict[str, object]:
    """What the run config asks to load again is forgotten first (recorded: tags, a log line)."""
    if not run_config.wants_reingest:
        return {}
    audit = record_action(context, REINGEST_ACTION, f"source {source.name}", run_config)
    removed = forget_for_reingest(postgres, source, run_config)
    for path, count in removed.items():
        context.log.info(f"re-ingest {path}: {count} row(s) removed; loaded again in this run")
    return {**audit, "reingested_files": dg.MetadataValue.json(sorted(removed))}


def build_log_asset(source: SourceConfig) -> dg.AssetsDefinition:
    key = asset_key(source)

    @dg.asset(
        key=key,
        deps=[source_key(source)],
        kinds={"postgres"},
        group_name=GROUP,
        freshness_policy=ftp_freshness(),
        description=(
            f"Lines of the `{source.name}` log files, loaded exactly once into "
            f"{source.schema}.{source.table_name}; ledger and rejects in sync_meta."
        ),
        check_specs=_check_specs(key),
    )
    def _log_asset(
        context: dg.AssetExecutionContext,
        config: LogSourceConfig,
        postgres: PostgresResource,
        ftp: FTPResource,
    ) -> dg.MaterializeResult:
        def body() -> tuple[IngestReport, dict[str, object]]:
            audit = _reingest_first(context, postgres, source, config)
            run_id = context.run.run_id
            return ingest_source(ftp, postgres, source, context.log, run_id=run_id), audit

        report, audit = run_classified(context, body)
        newest = report.newest_record or previous_newest_record(context.instance, key)
        metadata = {**_metadata(report, postgres.database, newest), **audit}
        context.log_event(
            backlog_observation(
                source_key(source), report.files_waiting, report.backlog_bytes, observed_by="run"
            )
        )
        metadata.update(placement_metadata())  # which host/worker took the source
        try:
            metadata.update(_table_metadata(postgres, report))
        except Exception as exc:  # metadata is best effort; the load is committed
            context.log.warning(f"table metadata not collected: {exc}")
        for path, error in report.delete_errors.items():
            context.log.warning(f"delete of {path} failed, retried next run: {error}")
        checks = [_check_result(report, key), lag_check(key, newest), rejects_check(report, key)]
        return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)

    return _log_asset


def build_ftp_defs() -> dg.Definitions:
    sources = load_sources()
    return dg.Definitions(
        assets=[
            *(build_source_spec(s) for s in sources),
            *(build_log_asset(s) for s in sources),
        ],
        sensors=[build_backlog_sensor([(s, source_key(s)) for s in sources])],
    )
