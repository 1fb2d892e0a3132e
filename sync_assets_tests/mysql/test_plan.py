"""The decision between incremental and full refresh, over facts alone (pure: no server)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.mysql.catalog import SourceColumn, SourceTable
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.plan import (
    FULL_REFRESH,
    INCREMENTAL,
    PlanInputs,
    choose_cursor,
    plan_sync,
)
from sync_assets.mysql.state import TableState

ID = SourceColumn("Id", "int", "int(11)", False)
QTY = SourceColumn("Qty", "smallint", "smallint(6)", True)
CHANGED = SourceColumn(
    "Changed", "timestamp", "timestamp", False, extra="on update current_timestamp()"
)
FLAG = SourceColumn("Flag", "tinyint", "tinyint(1)", True)

TABLE = SourceTable("Orders", [ID, QTY, CHANGED, FLAG], primary_key=["Id"])
NAMES = {"Id": "id", "Qty": "qty", "Changed": "changed", "Flag": "flag"}
SYNCED = {"id": "integer", "qty": "smallint", "changed": "timestamptz", "flag": "boolean"}
STATE = TableState(INCREMENTAL, "changed", "2026-12-04 10:00:00.000000", ["id"])


def inputs(**changes: object) -> PlanInputs:
    """A table synced before, with everything in place for an incremental run."""
    base = PlanInputs(TABLE, NAMES, "Changed", "auto", SYNCED, STATE)
    return replace(base, **changes)


def test_a_synced_table_with_key_cursor_and_watermark_is_incremental() -> None:
    plan = plan_sync(inputs())
    assert (plan.mode, plan.reason) == (INCREMENTAL, "cursor and primary key")
    assert [m.pg_type for m in plan.mappings] == ["integer", "smallint", "timestamptz", "boolean"]
    assert (plan.widened, plan.dropped, plan.added, plan.scan_pending) == ([], {}, [], False)


RESTARTED = "column 'flag' now holds values other than 0/1"
CHANGED_KEY = "primary key or cursor column changed"
WHY_FULL = [
    pytest.param({"force_full": RESTARTED}, RESTARTED, id="restarted"),
    pytest.param({"wanted_mode": "full_refresh"}, "full refresh configured", id="configured"),
    pytest.param(
        {"table": replace(TABLE, primary_key=[])}, "the table has no primary key", id="no_key"
    ),
    pytest.param({"cursor": None}, "no cursor column (configure cursor_column)", id="no_cursor"),
    pytest.param({"existing": {}}, "first load", id="first_load"),
    pytest.param({"state": None}, "no watermark stored yet", id="no_state"),
    pytest.param(
        {"state": replace(STATE, watermark=None)}, "no watermark stored yet", id="no_mark"
    ),
    pytest.param({"state": replace(STATE, primary_key=["qty"])}, CHANGED_KEY, id="key_changed"),
    pytest.param({"state": replace(STATE, cursor_column="qty")}, CHANGED_KEY, id="cursor_changed"),
]


@pytest.mark.parametrize(("changes", "reason"), WHY_FULL)
def test_why_a_run_is_a_full_refresh(changes: dict[str, object], reason: str) -> None:
    plan = plan_sync(inputs(**changes))
    assert (plan.mode, plan.reason) == (FULL_REFRESH, reason)


@pytest.mark.parametrize(
    "changes", [{"table": replace(TABLE, primary_key=[])}, {"cursor": None}], ids=["key", "cursor"]
)
def test_incremental_configured_but_impossible_is_an_error(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"mysql\.tables\.Orders: incremental impossible"):
        plan_sync(inputs(wanted_mode="incremental", **changes))


def test_a_wider_type_stays_incremental_and_is_widened() -> None:
    int_qty = replace(QTY, data_type="int", column_type="int(11)")
    plan = plan_sync(inputs(table=replace(TABLE, columns=[ID, int_qty, CHANGED, FLAG])))
    assert plan.mode == INCREMENTAL
    assert [(m.target, m.pg_type) for m in plan.widened] == [("qty", "integer")]


def test_an_incompatible_type_change_is_a_full_refresh() -> None:
    text_qty = SourceColumn("Qty", "varchar", "varchar(10)", True, charset="utf8mb4")
    plan = plan_sync(inputs(table=replace(TABLE, columns=[ID, text_qty, CHANGED, FLAG])))
    assert (plan.mode, plan.reason) == (
        FULL_REFRESH,
        "type of column 'qty' changed incompatibly: smallint → text",
    )


def test_an_added_column_is_a_full_refresh_naming_it() -> None:
    note = SourceColumn("Note", "text", "text", True)
    table = replace(TABLE, columns=[*TABLE.columns, note])
    plan = plan_sync(inputs(table=table, names={**NAMES, "Note": "note"}))
    assert (plan.mode, plan.reason, plan.added) == (
        FULL_REFRESH,
        "column 'note' was added in MySQL",
        ["note"],
    )


def test_a_column_dropped_in_mysql_is_kept_with_its_type() -> None:
    plan = plan_sync(inputs(existing={**SYNCED, "legacy_code": "text"}))
    assert plan.mode == INCREMENTAL
    assert plan.dropped == {"legacy_code": "text"}


def test_a_first_load_guesses_boolean_without_a_scan() -> None:
    plan = plan_sync(inputs(existing={}))
    assert plan.guessed == {"Flag"} and not plan.scan_pending
    assert plan.mappings[3].pg_type == "boolean"


def test_a_tinyint1_held_as_integer_is_decided_by_the_scan() -> None:
    held_as_integer = {**SYNCED, "flag": "smallint"}
    first = plan_sync(inputs(existing=held_as_integer, wanted_mode="full_refresh"))
    assert (first.to_scan, first.scan_pending, first.guessed) == (["Flag"], True, set())
    only_01 = plan_sync(inputs(existing=held_as_integer, wanted_mode="full_refresh"), set())
    assert not only_01.scan_pending and only_01.mappings[3].pg_type == "boolean"
    other = plan_sync(inputs(existing=held_as_integer, wanted_mode="full_refresh"), {"Flag"})
    assert other.mappings[3].pg_type == "smallint"


def test_after_a_wrong_guess_every_candidate_is_scanned() -> None:
    plan = plan_sync(inputs(existing={}, scan_booleans=True))
    assert (plan.guessed, plan.to_scan, plan.scan_pending) == (set(), ["Flag"], True)


def test_an_incremental_run_keeps_the_copys_boolean_decision() -> None:
    as_smallint = plan_sync(inputs(existing={**SYNCED, "flag": "smallint"}))
    assert as_smallint.mode == INCREMENTAL and as_smallint.mappings[3].pg_type == "smallint"
    assert plan_sync(inputs()).mappings[3].pg_type == "boolean"


def test_the_cursor_is_the_one_auto_updated_timestamp_or_the_configured_column() -> None:
    assert choose_cursor(TABLE, TableOptions("Orders")) == "Changed"
    second = replace(CHANGED, name="Touched")
    assert (
        choose_cursor(replace(TABLE, columns=[*TABLE.columns, second]), TableOptions("Orders"))
        is None
    )
    assert choose_cursor(TABLE, TableOptions("Orders", cursor_column="Id")) == "Id"
    with pytest.raises(ConfigError, match="'Nope' is not a column"):
        choose_cursor(TABLE, TableOptions("Orders", cursor_column="Nope"))
    note = SourceColumn("Note", "text", "text", True)
    with pytest.raises(ConfigError, match="must be a date/time or integer column"):
        choose_cursor(replace(TABLE, columns=[note]), TableOptions("Orders", cursor_column="Note"))
