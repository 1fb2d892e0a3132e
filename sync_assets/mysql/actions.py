"""Operator actions on the legacy tables: the asset's run config, and the dry run's plan.

`LegacyTableConfig` is the run config of each `legacy/<t>` asset: empty (the schedule's runs)
changes nothing; `full_refresh` rewrites the table, `verify_values` compares every value with
the MySQL snapshot (the `values_match_source` check), each with a recorded reason.

`preview_table` is the dry run: the mode the next run would use and why, decided by the same
pure `plan_sync` over facts read without writing (no DDL, no state row, no lock taken).
"""

from __future__ import annotations

import dataclasses
from contextlib import closing
from dataclasses import dataclass, field

from pydantic import Field

from sync_assets.core.actions import ActionConfig
from sync_assets.core.pg import META_SCHEMA, check_identifier, table_columns, table_exists
from sync_assets.core.secrets import redact
from sync_assets.mysql import config
from sync_assets.mysql.catalog import read_source_table
from sync_assets.mysql.naming import lower_names
from sync_assets.mysql.plan import PlanInputs, choose_cursor, plan_sync
from sync_assets.mysql.state import STATE_TABLE, TableState, load_state
from sync_assets.mysql.type_rules import normalise_pg_type
from sync_assets.resources import MySQLResource, PostgresResource

FULL_REFRESH_ACTION = "full_refresh"
VERIFY_ACTION = "verify_values"


class LegacyTableConfig(ActionConfig):
    """Run config of a `legacy/<t>` asset (Materialize → Open launchpad in the UI)."""

    full_refresh: bool = Field(
        default=False,
        description="Rewrite the whole table from MySQL (staging table, swapped in atomically).",
    )
    verify_values: bool = Field(
        default=False,
        description="After the sync, compare every value with the MySQL snapshot (asset check"
        " values_match_source).",
    )

    def actions(self) -> list[str]:
        wanted = {FULL_REFRESH_ACTION: self.full_refresh, VERIFY_ACTION: self.verify_values}
        return [name for name, on in wanted.items() if on]

    def apply(self, options: config.TableOptions) -> config.TableOptions:
        """The table's options for this run (the YAML's, with what the run asks on top)."""
        if self.verify_values and not options.verify_values:
            return dataclasses.replace(options, verify_values=True)
        return options

    def full_refresh_reason(self) -> str | None:
        """Why this run is a full refresh (shown as the materialisation's `mode_reason`)."""
        if not self.full_refresh:
            return None
        return f"full refresh requested from the UI: {' '.join(self.reason.split())}"


@dataclass
class TablePreview:
    """What a sync of one table would do; `error` when it would fail (and why)."""

    table: str
    target: str
    mode: str = ""
    reason: str = ""
    watermark: str | None = None
    source_rows_estimate: int | None = None
    columns_to_scan: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    dropped_columns_kept: list[str] = field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.table}: would fail: {self.error}"
        scan = ""
        if self.columns_to_scan:
            scan = f"; would scan {', '.join(self.columns_to_scan)} first"
        return f"{self.table}: {self.mode} ({self.reason}){scan}"


def preview_table(
    mysql: MySQLResource,
    postgres: PostgresResource,
    options: config.TableOptions,
    schema: str,
    force_full: str | None = None,
) -> TablePreview:
    """The plan of one table's next sync, read only: MySQL's catalog, PostgreSQL's columns and
    stored watermark. A table the sync would refuse is reported with the refusal."""
    target = options.name.lower()
    preview = TablePreview(options.name, f"{schema}.{target}")
    try:
        check_identifier(target, "table name")
        with closing(mysql.connect()) as conn:
            source = read_source_table(conn, mysql.database, options.name)
        names = lower_names([c.name for c in source.columns], "column")
        cursor = choose_cursor(source, options)
        existing, state = _target_facts(postgres, schema, target)
        inputs = PlanInputs(
            source, names, cursor, options.mode, existing, state, force_full=force_full
        )
        plan = plan_sync(inputs)
    except Exception as exc:  # reported per table: the dry run shows every table's fate
        message = redact(str(exc), [mysql.password, postgres.password])
        preview.error = f"{type(exc).__name__}: {message}"
        return preview
    preview.mode, preview.reason = plan.mode, plan.reason
    preview.watermark = state.watermark if state else None
    preview.source_rows_estimate = source.row_estimate
    preview.columns_to_scan = plan.to_scan if plan.scan_pending else []
    preview.added_columns = plan.added
    preview.dropped_columns_kept = sorted(plan.dropped)
    return preview


def _target_facts(
    postgres: PostgresResource, schema: str, target: str
) -> tuple[dict[str, str], TableState | None]:
    """The copy's columns and the stored state, without creating anything."""
    with postgres.connection(autocommit=True) as pg:
        existing = {
            name: normalise_pg_type(pg_type)
            for name, pg_type in table_columns(pg, schema, target).items()
        }
        with pg.cursor() as cur:
            has_state = table_exists(cur, META_SCHEMA, STATE_TABLE)
        state = load_state(pg, schema, target) if has_state else None
    return existing, state
