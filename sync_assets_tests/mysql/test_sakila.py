"""Sakila through the real Dagster assets: every value of all 16 tables equals MariaDB's."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql.definitions import ROW_COUNT_CHECK, build_mysql_defs
from sync_assets.mysql.schema_check import SCHEMA_CHECK
from sync_assets.resources import PostgresResource
from sync_assets_tests.conftest import make_mysql_resource, mysql_admin_connect
from sync_assets_tests.mysql.conftest import assert_same_table

SAKILA_TABLES = [
    "actor", "address", "category", "city", "country", "customer", "film", "film_actor",
    "film_category", "film_text", "inventory", "language", "payment", "rental", "staff", "store",
]  # fmt: skip


def _materialize(defs: dg.Definitions, resources: dict) -> dg.ExecuteInProcessResult:
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(assets, resources=resources, raise_on_error=True)


def test_sakila_every_value_equal(
    monkeypatch: pytest.MonkeyPatch,
    mysql_server: ServerInfo,
    sakila_db: str,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    monkeypatch.setenv("MYSQL_TABLES", ",".join(SAKILA_TABLES))
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    defs = build_mysql_defs()
    resources = {"mysql": make_mysql_resource(mysql_server, sakila_db), "postgres": pg_resource}

    first = _materialize(defs, resources)
    events = first.get_asset_materialization_events()
    assert len(events) == 16
    meta = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata for e in events
    }
    assert meta["payment"]["dagster/row_count"].value == 16044
    assert meta["payment"]["mode"].value == "full_refresh"
    assert meta["film"]["dagster/relation_identifier"].value.endswith(f"{target_schema}.film")
    checks = first.get_asset_check_evaluations()
    # Each table's step evaluates its row-count and column-schema checks (the values check
    # only when a run verifies).
    assert len(checks) == 32 and all(c.passed for c in checks)
    assert {c.check_name for c in checks} == {ROW_COUNT_CHECK, SCHEMA_CHECK}

    my = mysql_admin_connect(mysql_server, sakila_db)
    try:
        total = sum(assert_same_table(my, pg_conn, target_schema, t) for t in SAKILA_TABLES)
    finally:
        my.close()
    assert total == 47268

    # Second run: incremental where Sakila has a cursor, and nothing is written.
    second = _materialize(defs, resources)
    for event in second.get_asset_materialization_events():
        md = event.step_materialization_data.materialization.metadata
        table = event.asset_key.path[-1]
        expected_mode = "full_refresh" if table == "film_text" else "incremental"
        assert md["mode"].value == expected_mode, table
        if expected_mode == "incremental":
            assert md["rows_inserted"].value == md["rows_updated"].value == 0, table
            assert md["rows_deleted"].value == 0, table
