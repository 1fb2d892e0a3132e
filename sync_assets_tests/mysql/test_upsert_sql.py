"""The incremental write's SQL, as built from the mappings (pure: no server).

Staged booleans arrive as 0/1 and are converted on the way in; only rows whose values differ
(NULL-aware) are updated; `xmax = 0` tells inserted rows from updated ones.
"""

from __future__ import annotations

from psycopg import sql

from sync_assets.mysql import upsert_sql
from sync_assets.mysql.catalog import SourceColumn
from sync_assets.mysql.types import map_column
from sync_assets.mysql.upsert_sql import Upsert, missing_from

ID = map_column(SourceColumn("Id", "int", "int(11)", False), "id")
FLAG = map_column(SourceColumn("Flag", "tinyint", "tinyint(1)", True), "flag", as_boolean=True)
NAME = map_column(SourceColumn("Name", "varchar", "varchar(9)", True), "name")
TARGET, STAGE = sql.Identifier("legacy", "t"), sql.Identifier("_sync_stage")
UPSERT = Upsert(TARGET, STAGE, [ID, FLAG, NAME], ["id"])
INSERT = (
    'INSERT INTO "legacy"."t" AS t ("id", "flag", "name")'
    ' SELECT "s"."id", ("s"."flag" <> 0), "s"."name" FROM "_sync_stage" AS s'
)
SET_EXCLUDED = 'SET "flag" = EXCLUDED."flag", "name" = EXCLUDED."name"'


def test_update_only_the_rows_whose_values_differ() -> None:
    assert UPSERT.update_changed().as_string(None) == (
        'UPDATE "legacy"."t" AS t SET "flag" = ("s"."flag" <> 0), "name" = "s"."name"'
        ' FROM "_sync_stage" AS s WHERE t."id" = "s"."id"'
        ' AND ROW(t."flag", t."name") IS DISTINCT FROM ROW(("s"."flag" <> 0), "s"."name")'
    )


def test_insert_only_the_keys_the_target_lacks() -> None:
    assert UPSERT.insert_new().as_string(None) == (
        f'{INSERT} WHERE NOT EXISTS (SELECT FROM "legacy"."t" AS t WHERE t."id" = "s"."id")'
        f' ON CONFLICT ("id") DO UPDATE {SET_EXCLUDED}'
    )


def test_one_pass_upsert_counts_inserted_and_updated_rows() -> None:
    assert UPSERT.on_conflict().as_string(None) == (
        f'WITH up AS ({INSERT} ON CONFLICT ("id") DO UPDATE {SET_EXCLUDED}'
        ' WHERE ROW(t."flag", t."name") IS DISTINCT FROM ROW(EXCLUDED."flag", EXCLUDED."name")'
        " RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
    )


def test_a_table_of_key_columns_only_has_nothing_to_update() -> None:
    keys_only = Upsert(TARGET, STAGE, [ID], ["id"])
    assert keys_only.others == []
    assert 'ON CONFLICT ("id") DO NOTHING RETURNING' in keys_only.on_conflict().as_string(None)


def test_vanished_keys_are_those_missing_from_the_streamed_keys() -> None:
    assert missing_from(sql.Identifier("_sync_keys"), [ID]).as_string(None) == (
        'NOT EXISTS (SELECT 1 FROM "_sync_keys" AS k WHERE t."id" = "k"."id")'
    )


def test_one_scan_tells_which_staged_flags_hold_other_values() -> None:
    assert upsert_sql.non_boolean_values(STAGE, ["flag", "on"]).as_string(None) == (
        'SELECT coalesce(bool_or("flag" NOT IN (0, 1)), false),'
        ' coalesce(bool_or("on" NOT IN (0, 1)), false) FROM "_sync_stage"'
    )
