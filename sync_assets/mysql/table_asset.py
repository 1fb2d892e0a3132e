"""What the UI shows of one legacy table, whichever step syncs it: its source spec `mysql/<t>`,
its asset spec `legacy/<t>` (freshness, lineage), its checks, and the materialisation built
from a `SyncReport` (metadata and check results).

Used by the one-table steps (`definitions.build_table_asset`) and by the batch steps
(`batch.build_batch_asset`), so a table looks the same in the UI however it was run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import dagster as dg

from sync_assets.core.freshness import mysql_freshness
from sync_assets.core.metadata import table_metadata
from sync_assets.core.names import MYSQL_GROUP, MYSQL_SOURCE_GROUP
from sync_assets.core.placement import placement_metadata
from sync_assets.mysql import config
from sync_assets.mysql.naming import asset_name
from sync_assets.mysql.report import SyncReport
from sync_assets.mysql.schema_check import SCHEMA_CHECK, schema_change_check, schema_check_spec

SOURCE_GROUP = MYSQL_SOURCE_GROUP
GROUP = MYSQL_GROUP
POOL = "mysql"
ROW_COUNT_CHECK = "row_count_matches_source"
VALUES_CHECK = "values_match_source"


@dataclass(frozen=True)
class TableSpecs:
    """The specs of one table: source, PostgreSQL copy, and the copy's checks."""

    table: str  # the MySQL name
    options: config.TableOptions
    source: dg.AssetSpec
    target: dg.AssetSpec
    checks: list[dg.AssetCheckSpec]

    @property
    def key(self) -> dg.AssetKey:
        return self.target.key


def table_specs(table: str, options: config.TableOptions, schema: str) -> TableSpecs:
    """The source spec `mysql/<t>`, the asset spec `legacy/<t>` and its check specs."""
    name = asset_name(table.lower())
    source = dg.AssetSpec(
        key=["mysql", name],
        kinds={"mysql"},
        group_name=SOURCE_GROUP,
        description=f"MySQL table `{table}` (read only).",
    )
    key = dg.AssetKey(["legacy", name])
    target = dg.AssetSpec(
        key=key,
        kinds={"postgres"},
        group_name=GROUP,
        deps=[source],
        freshness_policy=mysql_freshness(),
        description=(
            f"PostgreSQL table `{schema}.{table.lower()}`: a copy of MySQL `{table}`"
            f" (mode {options.mode}; incremental on a cursor column when possible)."
        ),
    )
    return TableSpecs(table, options, source, target, _check_specs(key, options))


def _check_specs(key: dg.AssetKey, options: config.TableOptions) -> list[dg.AssetCheckSpec]:
    # The values check is declared for every table: it runs when `verify_values` is
    # configured, or for one run asked from the launchpad (LegacyTableConfig); a run that
    # does not verify leaves it not evaluated.
    when = "every run" if options.verify_values else "runs with verify_values in the run config"
    return [
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=key,
            description="PostgreSQL row count equals MySQL's, counted in the read snapshot.",
        ),
        dg.AssetCheckSpec(
            VALUES_CHECK,
            asset=key,
            description="Every value equals the MySQL snapshot's (compared in PostgreSQL;"
            f" {when}).",
        ),
        schema_check_spec(key),
    ]


def report_metadata(report: SyncReport, database: str) -> dict[str, object]:
    """What the UI shows for one materialisation."""
    pk = set(report.primary_key)
    columns = [
        dg.TableColumn(
            name,
            pg_type,
            constraints=dg.TableColumnConstraints(nullable=name not in pk, unique=pk == {name}),
        )
        for name, pg_type in report.columns
    ]
    return {
        **table_metadata(
            relation=(database, report.target_schema, report.target_table),
            row_count=report.row_count,
            columns=columns,
            table_name=f"{report.target_schema}.{report.target_table}",
        ),
        "mode": report.mode,
        "mode_reason": report.reason,
        "rows_read": report.rows_read,
        "rows_inserted": report.rows_inserted,
        "rows_updated": report.rows_updated,
        "rows_deleted": report.rows_deleted,
        "rows_replaced": report.rows_replaced,
        "source_row_count": report.source_row_count,
        "watermark": report.watermark or "",
        "previous_watermark": report.previous_watermark or "",
        "duration_seconds": dg.MetadataValue.float(round(report.duration_seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(report.rows_per_second, 1)),
        "bytes_copied": report.bytes_copied,
        "adjusted_values": report.adjusted_values,
        "added_columns": ", ".join(report.added_columns),
        "widened_columns": ", ".join(report.widened_columns),
        "dropped_columns_kept": ", ".join(report.dropped_columns),
        "notes": "; ".join(report.notes),
        "phase_seconds": dg.MetadataValue.json(report.phase_seconds),
        # One number per phase as well: the UI plots numeric metadata across runs.
        **{
            f"phase_{phase}_seconds": dg.MetadataValue.float(seconds)
            for phase, seconds in report.phase_seconds.items()
        },
    }


def row_count_check(report: SyncReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROW_COUNT_CHECK,
        passed=report.counts_match,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "postgres_rows": report.row_count,
            "mysql_rows_in_snapshot": report.source_row_count,
        },
    )


def values_check(report: SyncReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    mismatched = report.mismatched_rows or 0
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=VALUES_CHECK,
        passed=report.mismatched_rows == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "mismatched_rows": mismatched,
            "sample_primary_keys": "; ".join(report.mismatch_sample),
            "hint": "a full refresh (mode: full_refresh) rewrites the table" if mismatched else "",
        },
    )


def table_result(
    report: SyncReport,
    key: dg.AssetKey,
    selected_checks: Collection[dg.AssetCheckKey],
    database: str,
    audit: dict[str, object],
    instance: dg.DagsterInstance,
) -> dg.MaterializeResult:
    """The materialisation of one synced table, with the results of its selected checks (the
    column-schema one compares with the materialisation `instance` holds from before)."""
    checks = [row_count_check(report, key)]
    if report.mismatched_rows is not None:  # verified in this run
        checks.append(values_check(report, key))
    if dg.AssetCheckKey(key, SCHEMA_CHECK) in selected_checks:
        checks.append(schema_change_check(instance, key, report.columns))
    checks = [c for c in checks if dg.AssetCheckKey(key, c.check_name) in selected_checks]
    metadata = {**report_metadata(report, database), **audit}
    metadata.update(placement_metadata())  # which host/worker took the table
    return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)
