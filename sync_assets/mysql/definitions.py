"""Definitions of the MySQL side: per table a source spec `mysql/<t>` and an asset `legacy/<t>`.

Which tables: `MYSQL_TABLES`, else the list stored by `sync-assets refresh-mysql`, else none.
Building the definitions reads only environment variables and local files: no server is
contacted, so the code location loads (with the last known tables) when MySQL is down.

The list the code server loaded travels with every run as Dagster reconstruction metadata
(stored with the run's execution plan in Dagster's storage): a run worker, or a Kubernetes
run pod with no state file, rebuilds exactly the code server's MySQL assets.
"""

import json
import warnings
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)

from sync_assets import project_config
from sync_assets.core.actions import record_action
from sync_assets.core.errors import run_classified
from sync_assets.core.freshness import mysql_freshness
from sync_assets.core.metadata import table_metadata
from sync_assets.core.names import MYSQL_GROUP, MYSQL_SOURCE_GROUP
from sync_assets.core.placement import placement_metadata
from sync_assets.mysql import config
from sync_assets.mysql.actions import LegacyTableConfig
from sync_assets.mysql.naming import asset_name, lower_names
from sync_assets.mysql.sync import SyncReport, sync_table
from sync_assets.resources import MySQLResource, PostgresResource

SOURCE_GROUP = MYSQL_SOURCE_GROUP
GROUP = MYSQL_GROUP
POOL = "mysql"
ROW_COUNT_CHECK = "row_count_matches_source"
VALUES_CHECK = "values_match_source"


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
    ]


def _run_sync(
    context: dg.AssetExecutionContext,
    run_config: LegacyTableConfig,
    table_sync: tuple[MySQLResource, PostgresResource, config.TableOptions, str],
) -> tuple[SyncReport, dict[str, object]]:
    """The sync with what the run config asks (recorded first: tags and a log line)."""
    mysql, postgres, options, schema = table_sync

    def body() -> tuple[SyncReport, dict[str, object]]:
        audit: dict[str, object] = {}
        if run_config.actions():
            action = "+".join(run_config.actions())
            audit = record_action(context, action, f"{schema}.{options.name.lower()}", run_config)
        report = sync_table(
            mysql,
            postgres,
            run_config.apply(options),
            log=context.log,
            target_schema=schema,
            force_full=run_config.full_refresh_reason(),
        )
        return report, audit

    return run_classified(context, body)


def build_schema_change_checks(assets: list[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """Dagster's column-schema checks (WARN when the columns in `dagster/column_schema`
    differ from the previous materialisation's): a legacy table changed its shape."""
    with warnings.catch_warnings():
        # Beta in 1.13; it reads the schema metadata this project writes on every run.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.build_column_schema_change_checks(assets=assets))


def build_table_asset(
    table: str, options: config.TableOptions, schema: str
) -> tuple[dg.AssetSpec, dg.AssetsDefinition]:
    """The source spec and the PostgreSQL asset for MySQL table `table`."""
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

    # A multi-asset of one, subsettable: so the values check may go unevaluated in a run that
    # does not verify (a plain asset's check outputs are all required).
    @dg.multi_asset(
        name=key.to_python_identifier(),
        specs=[target],
        check_specs=_check_specs(key, options),
        can_subset=True,
        pool=POOL,
    )
    def sync_legacy_table(
        context: dg.AssetExecutionContext,
        config: LegacyTableConfig,
        mysql: MySQLResource,
        postgres: PostgresResource,
    ) -> Iterator[dg.MaterializeResult]:
        if key not in context.selected_asset_keys:
            context.log.info(f"{key.to_user_string()} not selected: its checks need a sync")
            return
        report, audit = _run_sync(context, config, (mysql, postgres, options, schema))
        checks = [row_count_check(report, key)]
        if report.mismatched_rows is not None:  # verified in this run
            checks.append(values_check(report, key))
        selected = context.selected_asset_check_keys
        checks = [c for c in checks if dg.AssetCheckKey(key, c.check_name) in selected]
        metadata = {**report_metadata(report, postgres.database), **audit}
        metadata.update(placement_metadata())  # which host/worker took the table
        yield dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)

    return source, sync_legacy_table


TABLES_METADATA_KEY = "sync_assets/mysql_tables"


def tables_for_this_load() -> list[str]:
    """The code server's list when reconstructing (run workers), else the configured one.

    Dagster stores what is handed to `add_to_pending_reconstruction_metadata` with each run
    (the pattern of its own state-backed definitions loader).
    """
    if not DefinitionsLoadContext.is_set():
        return config.configured_tables()  # a plain import (tests, scripts)
    context = DefinitionsLoadContext.get()
    if (
        context.load_type == DefinitionsLoadType.RECONSTRUCTION
        and TABLES_METADATA_KEY in context.reconstruction_metadata
    ):
        tables = [str(t) for t in json.loads(context.reconstruction_metadata[TABLES_METADATA_KEY])]
    else:
        tables = config.configured_tables()
    context.add_to_pending_reconstruction_metadata(TABLES_METADATA_KEY, json.dumps(tables))
    return tables


def build_mysql_defs() -> dg.Definitions:
    tables = tables_for_this_load()
    if not tables:
        return dg.Definitions()
    lower_names(tables, "table")  # two tables equal after lower-casing: a clear error
    section = project_config.section("mysql")
    config.check_table_keys(section, tables)  # a key that selects no table would do nothing
    schema = config.target_schema()
    assets: list[dg.AssetSpec | dg.AssetsDefinition] = []
    for table in tables:
        assets.extend(build_table_asset(table, config.table_options(table, section), schema))
    tables_defs = [a for a in assets if isinstance(a, dg.AssetsDefinition)]
    return dg.Definitions(assets=assets, asset_checks=build_schema_change_checks(tables_defs))
