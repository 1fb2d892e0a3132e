"""The table metadata Dagster's UI understands, built here for both sides.

Dagster 1.13 keeps its `TableMetadataSet` private, so the `dagster/...` keys are spelled once
here instead of by hand in each side's definitions.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
RELATION_IDENTIFIER = "dagster/relation_identifier"
TABLE_NAME = "dagster/table_name"


def relation_identifier(database: str, schema: str, table: str) -> str:
    """The `db.schema.table` string the Dagster UI shows as the asset's relation."""
    return f"{database}.{schema}.{table}"


def table_metadata(
    *,
    relation: tuple[str, str, str] | None = None,
    row_count: int | None = None,
    columns: Iterable[dg.TableColumn] | None = None,
    table_name: str | None = None,
) -> dict[str, object]:
    """The `dagster/...` entries for what is given: `relation` is (database, schema, table)."""
    metadata: dict[str, object] = {}
    if row_count is not None:
        metadata[ROW_COUNT] = row_count
    if columns is not None:
        metadata[COLUMN_SCHEMA] = dg.TableSchema(columns=list(columns))
    if relation is not None:
        metadata[RELATION_IDENTIFIER] = relation_identifier(*relation)
    if table_name is not None:
        metadata[TABLE_NAME] = table_name
    return metadata
