"""A batch step: one subsettable multi-asset syncing a group of legacy tables (the shape of
dagster-sling's and dagster-dlt's assets), for deployments with many tables (`steps.py`).

Each table keeps what a one-table step gives it in the UI: its own asset `legacy/<t>` with
freshness and lineage from `mysql/<t>`, its materialisation with the full metadata, its
checks. Materialising one table from the UI runs this op with only that table selected, and
only that table is synced. The run config is the one-table `LegacyTableConfig`; it applies to
every table selected in the step (for one table: exactly the one-table action).

A table that fails does not stop the others: they materialise as they finish, and the step
then fails with a message naming each failed table and why (no step retry: transient
failures were already retried per table; see `workers.py`).
"""

# No `from __future__ import annotations`: Dagster reads the op's config class from the
# signature's annotations.
from collections.abc import Iterator

import dagster as dg

from sync_assets.core.actions import record_action
from sync_assets.core.errors import RUN_RETRY_ON_STEP_FAILURE_TAG, run_classified
from sync_assets.core.secrets import redact
from sync_assets.mysql.actions import LegacyTableConfig
from sync_assets.mysql.slots import PoolSlots
from sync_assets.mysql.sync import SyncReport, sync_table
from sync_assets.mysql.table_asset import POOL, TableSpecs, table_result
from sync_assets.mysql.workers import Outcome, attempt_with_retries, run_tables
from sync_assets.resources import MySQLResource, PostgresResource


def _record(
    context: dg.AssetExecutionContext, run_config: LegacyTableConfig, target: str
) -> dict[str, object]:
    """The run config's action, recorded (run tags, log line) before any table is touched."""
    if not run_config.actions():
        return {}
    return record_action(context, "+".join(run_config.actions()), target, run_config)


def _step_retries(context: dg.AssetExecutionContext) -> int:
    """Retries of a table: those the job's policy allows a step (none without a policy)."""
    policy = context.op_execution_context.get_step_execution_context().op_retry_policy
    return policy.max_retries if policy else 0


def _reason(outcome: Outcome[TableSpecs], secrets: list[str]) -> str:
    return f"{type(outcome.error).__name__}: {redact(str(outcome.error), secrets)}"


def batch_failure(
    context: dg.AssetExecutionContext, failed: list[Outcome[TableSpecs]], secrets: list[str]
) -> dg.Failure:
    """The step's failure naming every failed table; a run whose failures are all permanent
    is marked not to be re-launched (as a one-table step's would be)."""
    if all(o.permanent for o in failed):
        context.instance.add_run_tags(context.run.run_id, {RUN_RETRY_ON_STEP_FAILURE_TAG: "false"})
    reasons = [f"{o.item.table} ({_reason(o, secrets)})" for o in failed]
    return dg.Failure(
        description=f"{len(failed)} table(s) failed: {'; '.join(reasons)}",
        allow_retries=False,
        metadata={
            "failed_tables": ", ".join(o.item.table for o in failed),
            "attempts": ", ".join(f"{o.item.table}: {o.attempts}" for o in failed),
        },
    )


def build_batch_asset(
    name: str, tables: list[TableSpecs], schema: str, workers: int
) -> dg.AssetsDefinition:
    """The op `name` syncing `tables` (each `legacy/<t>`), up to `workers` of them at once."""
    names = ", ".join(s.table for s in tables)

    @dg.multi_asset(
        name=name,
        specs=[s.target for s in tables],
        check_specs=[check for s in tables for check in s.checks],
        can_subset=True,
        pool=POOL,
        description=f"Syncs the MySQL tables {names}.",
    )
    def sync_legacy_batch(
        context: dg.AssetExecutionContext,
        config: LegacyTableConfig,
        mysql: MySQLResource,
        postgres: PostgresResource,
    ) -> Iterator[dg.MaterializeResult]:
        selected = [s for s in tables if s.key in context.selected_asset_keys]
        if not selected:
            context.log.info(f"{name}: no table selected: its checks need a sync")
            return
        target = ", ".join(f"{schema}.{s.table.lower()}" for s in selected)
        audit = run_classified(context, lambda: _record(context, config, target))
        force_full = config.full_refresh_reason()

        def sync_one(spec: TableSpecs) -> SyncReport:
            options = config.apply(spec.options)
            return sync_table(
                mysql, postgres, options, context.log, target_schema=schema, force_full=force_full
            )

        retries = _step_retries(context)
        secrets = [mysql.password, postgres.password]
        failed: list[Outcome[TableSpecs]] = []
        with PoolSlots(context, POOL) as slots:
            for outcome in run_tables(
                selected,
                lambda s: attempt_with_retries(s, s.table, sync_one, retries, context.log),
                workers,
                slots,
            ):
                if outcome.report is None:
                    failed.append(outcome)
                    context.log.error(f"{outcome.item.table} failed: {_reason(outcome, secrets)}")
                    continue
                checks = context.selected_asset_check_keys
                database = postgres.database
                yield table_result(
                    outcome.report, outcome.item.key, checks, database, audit, context.instance
                )
        if failed:
            raise batch_failure(context, failed, secrets)

    return sync_legacy_batch
