"""The column-schema comparison behind the `column_schema_change` check (pure: no server)."""

from __future__ import annotations

import pytest

from sync_assets.mysql.schema_check import column_changes, describe

BASE = [("id", "integer"), ("name", "text"), ("price", "numeric(10,2)")]


@pytest.mark.parametrize(
    ("current", "added", "removed", "retyped"),
    [
        (BASE, [], [], []),
        ([*BASE, ("colour", "text")], ["colour"], [], []),
        (BASE[:2], [], ["price"], []),
        ([("id", "bigint"), *BASE[1:]], [], [], ["id: integer -> bigint"]),
        (list(reversed(BASE)), [], [], []),  # order alone is no change of schema
        ([("id", "integer"), ("title", "text"), BASE[2]], ["title"], ["name"], []),
    ],
    ids=["same", "added", "removed", "retyped", "reordered", "renamed"],
)
def test_column_changes(current, added, removed, retyped) -> None:
    assert column_changes(BASE, current) == {"added": added, "removed": removed, "retyped": retyped}


def test_description_names_every_change_as_dagsters_check_did() -> None:
    text = describe({"added": ["colour"], "removed": ["price"], "retyped": ["id: int -> bigint"]})
    assert text.startswith("Column schema changed between previous and latest materialization.")
    assert "Added columns: colour" in text and "Removed columns: price" in text
    assert "Column type changes:\n- id: int -> bigint" in text
