"""The column-schema check of a legacy table, evaluated by the step that synced it.

Dagster's `build_column_schema_change_checks` makes the same comparison in a step of its own:
under the multiprocess executor, one more process (a Python start and the code location's
load) after the table steps of every run, and after every single table materialised from the
UI. Here the sync's step compares the columns it reports with the previous materialisation's,
under the same check name, severity (WARN) and description.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from sync_assets.core.metadata import COLUMN_SCHEMA

SCHEMA_CHECK = "column_schema_change"
Columns = Sequence[tuple[str, str]]  # (name, type) in table order


def schema_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        SCHEMA_CHECK,
        asset=key,
        description="Warns when the table's columns differ from the previous materialisation's"
        " (a legacy table changed its shape).",
    )


def column_changes(previous: Columns, current: Columns) -> dict[str, list[str]]:
    """Added and removed column names, and type changes as `name: old -> new`."""
    before, after = dict(previous), dict(current)
    return {
        "added": [name for name in after if name not in before],
        "removed": [name for name in before if name not in after],
        "retyped": [
            f"{name}: {before[name]} -> {kind}"
            for name, kind in after.items()
            if name in before and before[name] != kind
        ],
    }


def describe(changes: dict[str, list[str]]) -> str:
    """Dagster's wording for a changed schema (the UI and alerts read the same text)."""
    text = "Column schema changed between previous and latest materialization."
    if changes["added"]:
        text += f"\n\nAdded columns: {', '.join(changes['added'])}"
    if changes["removed"]:
        text += f"\n\nRemoved columns: {', '.join(changes['removed'])}"
    if changes["retyped"]:
        text += "\n\nColumn type changes:" + "".join(f"\n- {c}" for c in changes["retyped"])
    return text


def previous_columns(instance: dg.DagsterInstance, key: dg.AssetKey) -> Columns | None:
    """The columns of the asset's latest stored materialisation (None: none stored yet;
    an empty list: one without column metadata)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(COLUMN_SCHEMA)
    if not isinstance(value, dg.TableSchemaMetadataValue):
        return []
    return [(c.name, c.type) for c in value.schema.columns]


def schema_change_check(
    instance: dg.DagsterInstance, key: dg.AssetKey, current: Columns
) -> dg.AssetCheckResult:
    previous = previous_columns(instance, key)
    if previous is None:
        passed, description = True, "First materialization: nothing to compare."
        changes: dict[str, list[str]] = {"added": [], "removed": [], "retyped": []}
    elif not previous:
        passed, description = False, "Previous materialization has no column schema metadata"
        changes = {"added": [], "removed": [], "retyped": []}
    else:
        changes = column_changes(previous, current)
        passed = not any(changes.values())
        description = (
            "No changes to column schema between previous and latest materialization"
            if passed
            else describe(changes)
        )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "added_columns": ", ".join(changes["added"]),
            "removed_columns": ", ".join(changes["removed"]),
            "type_changes": "; ".join(changes["retyped"]),
        },
    )
