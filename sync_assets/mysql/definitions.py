"""Definitions of the MySQL side: per table a source spec `mysql/<t>` and an asset `legacy/<t>`.

Which tables: `MYSQL_TABLES`, else the list stored by `sync-assets refresh-mysql`, else none.
Building the definitions reads only environment variables and local files: no server is
contacted, so the code location loads (with the last known tables) when MySQL is down.

Each table is synced by a step of its own (op `legacy__<t>`), or, with many tables, by a batch
step syncing a group of them (op `legacy_batch_NN`, `batch.py`); `steps.py` decides which. The
assets, checks and metadata are the same either way (`table_asset.py`).

The list the code server loaded, and its step layout, travel with every run as Dagster
reconstruction metadata (stored with the run's execution plan in Dagster's storage): a run
worker, a step process, a Celery worker or a Kubernetes pod with no state file rebuilds
exactly the code server's MySQL assets and ops.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)

from sync_assets import project_config
from sync_assets.core.actions import record_action
from sync_assets.core.errors import run_classified
from sync_assets.mysql import config
from sync_assets.mysql.actions import LegacyTableConfig
from sync_assets.mysql.batch import build_batch_asset
from sync_assets.mysql.naming import lower_names
from sync_assets.mysql.steps import StepLayout, step_layout, tables_per_step
from sync_assets.mysql.sync import SyncReport, sync_table
from sync_assets.mysql.table_asset import (
    GROUP,
    POOL,
    ROW_COUNT_CHECK,
    SOURCE_GROUP,
    VALUES_CHECK,
    report_metadata,
    table_result,
    table_specs,
)
from sync_assets.resources import MySQLResource, PostgresResource

__all__ = [
    "GROUP",
    "POOL",
    "ROW_COUNT_CHECK",
    "SOURCE_GROUP",
    "VALUES_CHECK",
    "build_mysql_defs",
    "build_table_asset",
    "report_metadata",
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


def build_table_asset(
    table: str, options: config.TableOptions, schema: str
) -> tuple[dg.AssetSpec, dg.AssetsDefinition]:
    """The source spec and the one-table step's asset for MySQL table `table`."""
    specs = table_specs(table, options, schema)
    key = specs.key

    # A multi-asset of one, subsettable: so the values check may go unevaluated in a run that
    # does not verify (a plain asset's check outputs are all required).
    @dg.multi_asset(
        name=key.to_python_identifier(),
        specs=[specs.target],
        check_specs=specs.checks,
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
        checks = context.selected_asset_check_keys
        yield table_result(report, key, checks, postgres.database, audit, context.instance)

    return specs.source, sync_legacy_table


TABLES_METADATA_KEY = "sync_assets/mysql_tables"
PER_STEP_METADATA_KEY = "sync_assets/mysql_tables_per_step"


def carried(key: str, configured: Callable[[], Any]) -> Any:
    """The code server's value when reconstructing (run workers, step processes), else the
    configured one.

    Dagster stores what is handed to `add_to_pending_reconstruction_metadata` with each run
    (the pattern of its own state-backed definitions loader).
    """
    if not DefinitionsLoadContext.is_set():
        return configured()  # a plain import (tests, scripts)
    context = DefinitionsLoadContext.get()
    if (
        context.load_type == DefinitionsLoadType.RECONSTRUCTION
        and key in context.reconstruction_metadata
    ):
        value = json.loads(context.reconstruction_metadata[key])
    else:
        value = configured()
    context.add_to_pending_reconstruction_metadata(key, json.dumps(value))
    return value


def tables_for_this_load() -> list[str]:
    return [str(t) for t in carried(TABLES_METADATA_KEY, config.configured_tables)]


def _table_steps(
    layout: StepLayout, section: dict[str, Any], schema: str
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """The sources, and an op per table or per batch of tables as `layout` says."""
    assets: list[dg.AssetSpec | dg.AssetsDefinition] = []
    for index, group in enumerate(layout.groups):
        if not layout.batched:
            [table] = group
            assets.extend(build_table_asset(table, config.table_options(table, section), schema))
            continue
        specs = [table_specs(t, config.table_options(t, section), schema) for t in group]
        assets.extend(s.source for s in specs)
        assets.append(build_batch_asset(layout.op_name(index), specs, schema, layout.workers))
    return assets


def _tables_per_step(tables: list[str]) -> int:
    return int(carried(PER_STEP_METADATA_KEY, lambda: tables_per_step(len(tables))))


def batched_steps() -> bool:
    """Whether this load's tables are synced in batch steps (`steps.py`)."""
    tables = tables_for_this_load()
    return bool(tables) and _tables_per_step(tables) > 1


def build_mysql_defs() -> dg.Definitions:
    tables = tables_for_this_load()
    if not tables:
        return dg.Definitions()
    lower_names(tables, "table")  # two tables equal after lower-casing: a clear error
    section = project_config.section("mysql")
    config.check_table_keys(section, tables)  # a key that selects no table would do nothing
    per_step = _tables_per_step(tables)
    assets = _table_steps(step_layout(tables, per_step), section, config.target_schema())
    return dg.Definitions(assets=assets, asset_checks=[])  # the checks are on the assets
