"""The MySQL dry run's plan (mode and why, without writing) and the column-schema check of the
legacy tables, against real MariaDB and PostgreSQL, in process."""

from __future__ import annotations

import dagster as dg
import psycopg

from sync_assets.mysql import config
from sync_assets.mysql.actions import preview_table
from sync_assets.mysql.definitions import build_mysql_defs
from sync_assets.resources import MySQLResource, PostgresResource
from sync_assets_tests.mysql import conftest as mysql_conftest
from sync_assets_tests.mysql.conftest import run_sql

# The MySQL tests' fixtures: a fresh MariaDB database and a PostgreSQL schema per test.
src_db, src = mysql_conftest.src_db, mysql_conftest.src
src_resource, target_schema = mysql_conftest.src_resource, mysql_conftest.target_schema

SCHEMA_CHECK = "column_schema_change"


def _pg_snapshot(conn: psycopg.Connection) -> list[tuple]:
    """Every relation with its size: a dry run must leave this exactly as it was."""
    return conn.execute(
        "SELECT n.nspname, c.relname, c.relkind, c.reltuples FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' ORDER BY 1, 2"
    ).fetchall()


def test_plan_and_schema_change_check(
    monkeypatch,
    src,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    run_sql(
        src,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), updated_at TIMESTAMP"
        " NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
        "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')",
        "CREATE TABLE nokey (v INT)",
    )
    monkeypatch.setenv("MYSQL_TABLES", "items,nokey")
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    items = config.table_options("items", {})
    before = _pg_snapshot(pg_conn)
    plan = preview_table(src_resource, pg_resource, items, target_schema)
    assert (plan.mode, plan.reason) == ("full_refresh", "first load")
    strict = config.TableOptions(name="nokey", mode="incremental")
    refused = preview_table(src_resource, pg_resource, strict, target_schema)
    assert "incremental impossible: the table has no primary key" in (refused.error or "")
    assert _pg_snapshot(pg_conn) == before  # no schema, table or state row created

    defs = build_mysql_defs()
    everything = [*defs.assets, *defs.asset_checks]
    resources = {"mysql": src_resource, "postgres": pg_resource}
    with dg.instance_for_test() as instance:

        def run() -> dict[str, dg.AssetCheckEvaluation]:
            result = dg.materialize(everything, resources=resources, instance=instance)
            found = result.get_asset_check_evaluations()
            return {c.check_name: c for c in found if c.asset_key.path[-1] == "items"}

        assert run()[SCHEMA_CHECK].passed  # first materialisation: nothing to compare
        assert run()[SCHEMA_CHECK].passed  # same columns
        plan = preview_table(src_resource, pg_resource, items, target_schema)
        assert (plan.mode, plan.reason) == ("incremental", "cursor and primary key")
        run_sql(src, "ALTER TABLE items ADD COLUMN colour VARCHAR(10)")
        plan = preview_table(src_resource, pg_resource, items, target_schema)
        assert plan.mode == "full_refresh" and "'colour' was added" in plan.reason
        changed = run()[SCHEMA_CHECK]
    assert not changed.passed and changed.severity == dg.AssetCheckSeverity.WARN
    assert "Added columns: colour" in (changed.description or "")


def test_schema_change_check_in_a_batch_step_names_only_the_changed_table(
    monkeypatch, src, src_resource: MySQLResource, pg_resource: PostgresResource, target_schema: str
) -> None:
    """The check is evaluated by the step that synced the table, batch steps included: each
    table is compared with its own previous materialisation."""
    run_sql(
        src,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE other (id INT PRIMARY KEY, qty INT)",
        "INSERT INTO items VALUES (1, 'a')",
        "INSERT INTO other VALUES (1, 5)",
    )
    monkeypatch.setenv("MYSQL_TABLES", "items,other")
    monkeypatch.setenv("MYSQL_TABLES_PER_STEP", "2")  # both tables in one batch op
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    defs = build_mysql_defs()
    batch_ops = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and len(a.keys) == 2]
    assert len(batch_ops) == 1
    resources = {"mysql": src_resource, "postgres": pg_resource}
    with dg.instance_for_test() as instance:

        def run() -> dict[str, dg.AssetCheckEvaluation]:
            result = dg.materialize(batch_ops, resources=resources, instance=instance)
            found = result.get_asset_check_evaluations()
            return {c.asset_key.path[-1]: c for c in found if c.check_name == SCHEMA_CHECK}

        first = run()
        assert set(first) == {"items", "other"} and all(c.passed for c in first.values())
        run_sql(src, "ALTER TABLE items MODIFY COLUMN id BIGINT", "ALTER TABLE items DROP name")
        changed = run()
    assert changed["other"].passed
    items = changed["items"]
    assert not items.passed and items.severity == dg.AssetCheckSeverity.WARN
    assert "Column type changes:\n- id: integer -> bigint" in (items.description or "")
    assert items.metadata["type_changes"].value == "id: integer -> bigint"
    # A column dropped in MySQL is kept in PostgreSQL (its history stays): not a removal.
    assert "Removed columns" not in (items.description or "")
